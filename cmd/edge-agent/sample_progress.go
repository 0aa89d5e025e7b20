package main

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress reports how much of the capture window is done: a bar on a
// terminal, one plain line per second of captured data otherwise (logs and
// pipes should not receive carriage-return animations). Used from one
// goroutine; it starts none.
type progress interface {
	update(covered time.Duration, what string)
	finish()
}

func newProgress(w io.Writer, name string, window time.Duration) progress {
	if isTerminal(w) && window > 0 {
		bar := progressbar.NewOptions64(window.Milliseconds(),
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("sampling "+name),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionClearOnFinish(),
		)
		return &barProgress{bar: bar}
	}
	return &lineProgress{w: w, name: name, window: window}
}

type barProgress struct{ bar *progressbar.ProgressBar }

func (p *barProgress) update(covered time.Duration, _ string) {
	_ = p.bar.Set64(covered.Milliseconds())
}
func (p *barProgress) finish() { _ = p.bar.Finish() }

type lineProgress struct {
	w      io.Writer
	name   string
	window time.Duration
	next   time.Duration
}

func (p *lineProgress) update(covered time.Duration, what string) {
	if p.window <= 0 || covered < p.next+time.Second {
		return
	}
	p.next = covered.Truncate(time.Second)
	fmt.Fprintf(p.w, "sample %s: %.0f/%.0f s, %s\n", p.name, p.next.Seconds(), p.window.Seconds(), what)
}

func (p *lineProgress) finish() {}

package console_test

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBrowserPairingAndUploads drives the uploads and Frame.io cards of the
// demo's console in headless Chromium, as a person would: pairing the
// frameio link again against the Frame.io fake shows a six-digit code,
// large, with its countdown, and completes with the project and who
// authorized; switching the frameio uploads to manual keeps the next still
// queued, and cancelling it removes it from the queue (counted); the page
// stays free of errors and fits a 360 px phone. Screenshots go to
// EnvScreenshots.
func TestBrowserPairingAndUploads(t *testing.T) {
	b := startBrowser(t) // skips without Chromium
	rig := startDemo(t)
	dir := screenshotDir(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute) // patience for a loaded machine
	defer cancel()
	card := `document.querySelector('#pairings article.pairing[data-pairing="frameio"]')`
	upload := `document.querySelector('#uploads article.upload[data-upload="frameio"]')`
	// click waits for the element (the scripts draw the buttons on their
	// first refresh) and clicks it.
	click := func(what, js string) {
		t.Helper()
		b.waitFor(ctx, "the "+what, `!!(`+js+`)`)
		var ok bool
		b.mustEval(`(() => { const el = `+js+`; if (!el) return false; el.click(); return true; })()`, &ok)
		if !ok {
			t.Fatalf("no %s to click", what)
		}
	}

	b.viewport(1280, 900, false)
	b.navigate(ctx, rig.url+"/")
	b.waitFor(ctx, "the frameio pairing card, paired by the demo", card+` && `+card+`.dataset.paired === 'true'`)

	// Pairing: the code, then the result.
	click("pair button", card+`.querySelector('button.pair')`)
	b.waitFor(ctx, "the pairing code", card+`.dataset.state === 'waiting' && !!`+card+`.querySelector('.code')`)
	var code string
	b.mustEval(card+`.querySelector('.code').textContent`, &code)
	if !regexp.MustCompile(`^[0-9]{6}$`).MatchString(code) {
		t.Errorf("the pairing code shown is %q, want six digits", code)
	}
	var size float64
	b.mustEval(`parseFloat(getComputedStyle(`+card+`.querySelector('.code')).fontSize)`, &size)
	if size < 32 {
		t.Errorf("the code is %.0f px high; it should be large", size)
	}
	var text string
	b.mustEval(card+`.innerText`, &text)
	if !regexp.MustCompile(`expires in [0-9]+ s`).MatchString(text) || !strings.Contains(text, "/pair?code="+code) {
		t.Errorf("the waiting card lacks the countdown or the verification URL:\n%s", text)
	}
	b.screenshot(filepath.Join(dir, "pairing-code.png"), 1280, 2400, false)
	b.viewport(1280, 900, false)
	b.waitFor(ctx, "the pairing to complete", card+`.dataset.state === 'paired'`)
	b.mustEval(card+`.innerText`, &text)
	if !strings.Contains(text, "Fake Project") || !strings.Contains(text, "Fake User") {
		t.Errorf("the paired card does not name the project and who authorized:\n%s", text)
	}

	// Uploads: manual mode keeps the next still queued; cancel removes it.
	click("pause button", upload+`.querySelector('button.mode')`)
	b.waitFor(ctx, "manual uploading", upload+`.dataset.mode === 'manual'`)
	b.waitFor(ctx, "a still queued (one every 10 s)", `!!`+upload+`.querySelector('li.item')`)
	var id string
	b.mustEval(upload+`.querySelector('li.item').dataset.item`, &id)
	b.screenshot(filepath.Join(dir, "uploads.png"), 1280, 2400, false)
	b.viewport(1280, 900, false)
	click("cancel button", upload+`.querySelector('li.item[data-item="`+id+`"] button.cancel')`)
	b.waitFor(ctx, "the cancelled still gone", `!`+upload+`.querySelector('li.item[data-item="`+id+`"]')`)
	b.mustEval(upload+`.querySelector('.summary').textContent`, &text)
	if !regexp.MustCompile(`[1-9][0-9]* cancelled`).MatchString(text) {
		t.Errorf("the card does not count the cancel: %q", text)
	}
	click("resume button", upload+`.querySelector('button.mode')`)
	b.waitFor(ctx, "auto uploading again", upload+`.dataset.mode === 'auto'`)

	// A phone: the cards fit 360 px.
	b.viewport(360, 740, true)
	b.navigate(ctx, rig.url+"/#overview")
	b.waitFor(ctx, "the cards at 360 px", `!!`+card+` && !!`+upload)
	var wide []string
	b.mustEval(`[...document.querySelectorAll('#uploads *, #pairings *')].filter(e => e.getBoundingClientRect().right > 361).map(e => e.tagName + '.' + e.className).slice(0, 5)`, &wide)
	if len(wide) > 0 {
		t.Errorf("too wide at 360 px: %v", wide)
	}
	b.screenshot(filepath.Join(dir, "phone-uploads.png"), 360, 3000, true)

	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}

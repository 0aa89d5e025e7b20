package infer

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/transport/edgeimpulse"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse/eitest"
)

// TestTrustModelDownload: a Studio (or a proxy) that sends too much, too
// little, lies about the length or stops mid-body makes the update fail
// with an error that names the download and what went wrong, leaves only
// the previous model in the cache, keeps it running and current, counts
// the failure in Status, and does not stop the next update from working
// (docs/SECURITY.md: no peer can stall a link for good or exhaust the
// board).
func TestTrustModelDownload(t *testing.T) {
	a := fakeModel(t, fakeConfig{Project: project(), Params: motionParams(1, 4, 10, "a")})
	// b is the new deployment, a little larger than a.
	b := fakeModel(t, fakeConfig{Project: project(), Params: motionParams(1, 4, 10, "b", "another-label")})
	if len(b) <= len(a) {
		t.Fatalf("the new model (%d bytes) must be larger than the old (%d)", len(b), len(a))
	}
	for _, tc := range []struct {
		name  string
		fault eitest.DownloadFault
		opts  ModelsOptions // MaxBytes, StallTimeout
		// cancelOnHold cancels the update's context once the fake holds
		// the download.
		cancelOnHold bool
		want         []string // in the error, after "models: download v2: "
		is           error
	}{
		{name: "longer than the bound", opts: ModelsOptions{MaxBytes: int64(len(a))},
			want: []string{"edgeimpulse studio: download", "model over the size bound: more than"}, is: ErrTooLarge},
		{name: "longer than the bound, no Content-Length", fault: eitest.DownloadFault{Length: -1},
			opts: ModelsOptions{MaxBytes: int64(len(a))},
			want: []string{"edgeimpulse studio: download", "model over the size bound"}, is: ErrTooLarge},
		{name: "shorter than its Content-Length", fault: eitest.DownloadFault{Cut: len(b) / 2},
			want: []string{"edgeimpulse studio: download", "unexpected EOF"}},
		{name: "Content-Length lies upward", fault: eitest.DownloadFault{Length: int64(len(b)) + 1<<20},
			want: []string{"edgeimpulse studio: download", "unexpected EOF"}},
		{name: "Content-Length lies upward and the server waits",
			fault: eitest.DownloadFault{Length: int64(len(b)) + 4096, Hold: true},
			opts:  ModelsOptions{StallTimeout: 200 * time.Millisecond},
			want:  []string{"download stalled: under 16 KiB in 200ms, after", "edgeimpulse studio: download"}, is: ErrStalled},
		{name: "stalls mid-body", fault: eitest.DownloadFault{Cut: len(b) / 2, Hold: true},
			opts: ModelsOptions{StallTimeout: 200 * time.Millisecond},
			want: []string{"download stalled: under 16 KiB in 200ms, after", "edgeimpulse studio: download"}, is: ErrStalled},
		{name: "trickles a byte at a time", fault: eitest.DownloadFault{Cut: len(b) / 2, Hold: true, Trickle: 5 * time.Millisecond},
			opts: ModelsOptions{StallTimeout: 300 * time.Millisecond},
			want: []string{"download stalled: under 16 KiB in 300ms, after", "edgeimpulse studio: download"}, is: ErrStalled},
		{name: "stalls mid-body, the caller gives up", fault: eitest.DownloadFault{Cut: len(b) / 2, Hold: true},
			cancelOnHold: true, want: []string{"edgeimpulse studio: download", "context canceled"}, is: context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, studio := studioRig(t, "")
			dir := t.TempDir()
			o := tc.opts
			o.Studio, o.Dir = studio, dir
			m, err := NewModels(o)
			if err != nil {
				t.Fatal(err)
			}
			srv.SetDeployment(Target(), a)
			old, _, err := m.Update(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			rt, err := os.MkdirTemp("", "rt") // t.TempDir's long names overflow a socket path
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(rt)
			p, err := Start(context.Background(), old.Path, ProcessOptions{RuntimeDir: rt})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			_, swapped, _ := m.Current()

			srv.SetDeployment(Target(), b)
			srv.FailDownloads(tc.fault)
			err = updateWith(t, srv, m, tc.cancelOnHold)

			if err == nil {
				t.Fatal("the hostile download was taken")
			}
			if !strings.HasPrefix(err.Error(), "models: download v2: ") {
				t.Errorf("the error does not name the download: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want %q in it", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			checkOnlyModel(t, dir, old)
			select {
			case <-swapped:
				t.Error("the running stream was told to swap models")
			default:
			}
			if cur, _, err := m.Current(); err != nil || cur.SHA256 != old.SHA256 || cur.Path != old.Path {
				t.Errorf("current model %+v, %v; want the previous one", cur, err)
			}
			st := m.Status()
			if !st.OK || st.Failures != 1 || st.LastError != err.Error() || st.Current.SHA256 != old.SHA256 {
				t.Errorf("status %+v", st)
			}
			if _, err := p.Classify(context.Background(), ones(4, 1), false, 5*time.Second); err != nil {
				t.Errorf("the previous model stopped answering: %v", err)
			}

			// Once Studio behaves, the next update takes the new model.
			srv.FailDownloads(eitest.DownloadFault{})
			if tc.opts.MaxBytes > 0 {
				return // b stays over this source's bound
			}
			f, ch, err := m.Update(context.Background())
			if err != nil || !ch || f.SHA256 != sum(b) {
				t.Fatalf("after the fault: %+v, changed %v, %v", f, ch, err)
			}
			if st := m.Status(); st.LastError != "" || st.Failures != 1 {
				t.Errorf("status after a success %+v", st)
			}
			checkOnlyModel(t, dir, f)
		})
	}
}

// updateWith runs one update; with cancelOnHold its context is cancelled
// once the fake server holds the download.
func updateWith(t *testing.T, srv *eitest.Server, m *Models, cancelOnHold bool) error {
	t.Helper()
	// A backstop, should the download hang: the error then says deadline
	// exceeded instead of what the case wants.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if !cancelOnHold {
		_, ch, err := m.Update(ctx)
		if ch {
			t.Error("Update reports a change")
		}
		return err
	}
	waited := make(chan error, 1)
	go func() {
		waited <- srv.Wait(ctx, func() bool { return srv.HeldDownloads() > 0 })
		cancel()
	}()
	_, _, err := m.Update(ctx)
	cancel() // the waiter's too, should the download never be held
	if werr := <-waited; werr != nil {
		t.Errorf("the download was never held: %v (update: %v)", werr, err)
	}
	return err
}

// checkOnlyModel checks that dir holds the manifest and f's file, whole,
// and nothing else.
func checkOnlyModel(t *testing.T, dir string, f ModelFile) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{manifestName, filepath.Base(f.Path)}; !slices.Equal(names, slices.Sorted(slices.Values(want))) {
		t.Errorf("cache holds %v, want %v", names, want)
	}
	if s, n, err := hashFile(f.Path); err != nil || s != f.SHA256 || n != f.Size {
		t.Errorf("model file %s: %s, %d bytes, %v; want %s, %d", f.Path, s, n, err, f.SHA256, f.Size)
	}
}

// TestModelsDefaultBounds: without options the bound is the Studio
// client's and a stall ends after DefaultStallTimeout.
func TestModelsDefaultBounds(t *testing.T) {
	_, studio := studioRig(t, "")
	m, err := NewModels(ModelsOptions{Studio: studio, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if m.o.MaxBytes != edgeimpulse.MaxModelBytes || m.o.StallTimeout != DefaultStallTimeout {
		t.Fatalf("bounds %d bytes, stall %v", m.o.MaxBytes, m.o.StallTimeout)
	}
}

// TestTrustModelDeploymentStall: a Studio that stops in the middle of its
// answer about the deployment ends the update after StallTimeout with an
// error saying so, rather than holding it (and every later one) for good.
func TestTrustModelDeploymentStall(t *testing.T) {
	var held atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"success": true, "projects": [`))
		_ = http.NewResponseController(w).Flush()
		held.Add(1)
		<-r.Context().Done()
	}))
	defer srv.Close()
	studio, err := edgeimpulse.NewStudio(edgeimpulse.Config{APIKey: "ei_x", StudioURL: srv.URL}, edgeimpulse.StudioOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModels(ModelsOptions{Studio: studio, Dir: t.TempDir(), StallTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a backstop
	defer cancel()
	_, _, err = m.Update(ctx)
	if err == nil || !strings.HasPrefix(err.Error(), "models: no answer about the deployment in 200ms: ") || held.Load() != 1 {
		t.Fatalf("err = %v (%d answers held)", err, held.Load())
	}
	if st := m.Status(); st.Failures != 1 || st.LastError != err.Error() || st.OK {
		t.Fatalf("status %+v", st)
	}
}

package infer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/transport/edgeimpulse"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse/eitest"
)

// studioRig is the fake Studio with a client for its key.
func studioRig(t *testing.T, key string) (*eitest.Server, *edgeimpulse.Studio) {
	t.Helper()
	srv, err := eitest.New(eitest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if key == "" {
		key = srv.APIKey()
	}
	studio, err := edgeimpulse.NewStudio(edgeimpulse.Config{APIKey: key, StudioURL: srv.IngestionURL()}, edgeimpulse.StudioOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return srv, studio
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func cachedModels(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "model-*.eim"))
	all, _ := filepath.Glob(filepath.Join(dir, ".download-*"))
	if len(all) > 0 {
		t.Fatalf("temporary downloads left behind: %v", all)
	}
	return m
}

func TestModelsDownload(t *testing.T) {
	srv, studio := studioRig(t, "")
	dir := t.TempDir()
	ctx := context.Background()
	m, err := NewModels(ModelsOptions{Studio: studio, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	_, changed, err := m.Current()
	if err == nil || !strings.Contains(err.Error(), "not downloaded yet") {
		t.Fatalf("before any download: %v", err)
	}
	if _, _, err := m.Update(ctx); !errors.Is(err, edgeimpulse.ErrNoDeployment) {
		t.Fatalf("no deployment: %v", err)
	}

	a := fakeModel(t, fakeConfig{Project: project(), Params: motionParams(1, 4, 10, "a")})
	srv.SetDeployment(Target(), a)
	f, ch, err := m.Update(ctx)
	if err != nil || !ch {
		t.Fatalf("first download: changed %v, %v", ch, err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Current's channel not closed by the download")
	}
	got, _ := os.ReadFile(f.Path)
	if f.SHA256 != sum(a) || string(got) != string(a) || f.Version != 1 || f.Project != eitest.StudioProject || f.Size != int64(len(a)) {
		t.Fatalf("model file %+v", f)
	}
	var man ModelFile
	b, _ := os.ReadFile(filepath.Join(dir, manifestName))
	if err := json.Unmarshal(b, &man); err != nil || man.SHA256 != sum(a) || man.Name != filepath.Base(f.Path) || man.Version != 1 {
		t.Fatalf("manifest %s: %v", b, err)
	}
	if fi, _ := os.Stat(f.Path); fi.Mode().Perm() != 0o700 {
		t.Fatalf("model mode %v", fi.Mode())
	}

	// The same version again: nothing downloaded.
	if _, ch, err := m.Update(ctx); err != nil || ch || len(srv.Downloads()) != 1 {
		t.Fatalf("same version: changed %v, %v, %d downloads", ch, err, len(srv.Downloads()))
	}

	// A new deployment replaces it; the old file goes.
	b2 := fakeModel(t, fakeConfig{Project: project(), Params: motionParams(1, 4, 10, "b")})
	srv.SetDeployment(Target(), b2)
	f2, ch, err := m.Update(ctx)
	if err != nil || !ch || f2.SHA256 != sum(b2) || f2.Version != 2 {
		t.Fatalf("second deployment: %+v, changed %v, %v", f2, ch, err)
	}
	if files := cachedModels(t, dir); len(files) != 1 || files[0] != f2.Path {
		t.Fatalf("cache holds %v", files)
	}

	// A rebuild with the same bytes: the version is recorded, the model
	// is not swapped.
	srv.SetDeployment(Target(), b2)
	f3, ch, err := m.Update(ctx)
	if err != nil || ch || f3.Version != 3 || f3.Path != f2.Path {
		t.Fatalf("same bytes: %+v, changed %v, %v", f3, ch, err)
	}

	// Opened again, the cache is checked and used, and a partial download
	// an earlier run left behind (power lost mid-download) is removed.
	if err := os.WriteFile(filepath.Join(dir, ".download-123456"), b2[:len(b2)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	m2, err := NewModels(ModelsOptions{Studio: studio, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if f, _, err := m2.Current(); err != nil || f.SHA256 != sum(b2) || f.Version != 3 {
		t.Fatalf("reopened: %+v, %v", f, err)
	}
	if files := cachedModels(t, dir); len(files) != 1 || files[0] != f2.Path {
		t.Fatalf("cache holds %v", files)
	}
}

// TestModelsCacheHashCheck: a cached model that no longer matches its hash
// is dropped when the cache is opened, and downloaded again.
func TestModelsCacheHashCheck(t *testing.T) {
	srv, studio := studioRig(t, "")
	dir := t.TempDir()
	a := fakeModel(t, fakeConfig{Project: project(), Params: motionParams(1, 4, 10, "a")})
	srv.SetDeployment(Target(), a)
	m, _ := NewModels(ModelsOptions{Studio: studio, Dir: dir})
	f, _, err := m.Update(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), a...)
	bad[len(bad)/2] ^= 0xff
	if err := os.WriteFile(f.Path, bad, 0o700); err != nil {
		t.Fatal(err)
	}
	m2, err := NewModels(ModelsOptions{Studio: studio, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m2.Current(); err == nil {
		t.Fatal("a corrupted cache was used")
	}
	f2, ch, err := m2.Update(context.Background())
	if err != nil || !ch || f2.SHA256 != sum(a) || len(srv.Downloads()) != 2 {
		t.Fatalf("re-download: %+v, changed %v, %v", f2, ch, err)
	}
	if got, _ := os.ReadFile(f2.Path); string(got) != string(a) {
		t.Fatal("the re-downloaded file is not the deployment")
	}
}

func TestModelsRefusals(t *testing.T) {
	t.Run("not an executable", func(t *testing.T) {
		srv, studio := studioRig(t, "")
		dir := t.TempDir()
		m, _ := NewModels(ModelsOptions{Studio: studio, Dir: dir})
		srv.SetDeployment(Target(), []byte("<html>Bad gateway</html>"))
		if _, _, err := m.Update(context.Background()); err == nil || !strings.Contains(err.Error(), "not a Linux executable") {
			t.Fatalf("err = %v", err)
		}
		if files := cachedModels(t, dir); len(files) != 0 {
			t.Fatalf("cache holds %v", files)
		}
		if st := m.Status(); st.OK || !strings.Contains(st.LastError, "not a Linux executable") {
			t.Fatalf("status %+v", st)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		srv, studio := studioRig(t, "ei_wrong")
		srv.SetDeployment(Target(), []byte("x"))
		m, _ := NewModels(ModelsOptions{Studio: studio, Dir: t.TempDir()})
		if _, _, err := m.Update(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("err = %v", err)
		}
	})
}

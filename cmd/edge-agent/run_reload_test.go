package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/internal/logx"
	"github.com/edge-agent/edge-agent/internal/logx/logxtest"
	"github.com/edge-agent/edge-agent/internal/reexec"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse/eitest"
)

// metric returns the value of the unlabelled metric name in a /metrics
// body, or -1 when it is not there.
func metric(body, name string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// TestRunReloadsOnSIGHUP runs `edge-agent run` as a real process, as
// systemd does: stderr is the journal's stream (JOURNAL_STREAM names it),
// memory_limit is in the file. It checks the memory limit and the memory
// figures in /metrics, a SIGHUP that adds a sensor and raises the limit
// while the link keeps its session, a SIGHUP with a broken file that
// changes nothing and names file:line, the journal priorities of the log
// lines, and a clean exit on SIGTERM.
func TestRunReloadsOnSIGHUP(t *testing.T) {
	fake, err := eitest.New(eitest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte(fake.APIKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	config := func(memory string, sensors ...string) string {
		s := fmt.Sprintf(`device: {id: e2e, name: bench, type: TEST}
state_dir: %s
status: {listen: "127.0.0.1:0"}
memory_limit: %s
sensors:
  - {name: accel, kind: synthetic, synthetic: {signal: motion}}
`, filepath.Join(dir, "state"), memory)
		for _, n := range sensors {
			s += fmt.Sprintf("  - {name: %s, kind: synthetic, synthetic: {signal: motion}}\n", n)
		}
		return s + fmt.Sprintf(`links:
  - name: studio
    kind: edgeimpulse
    edgeimpulse: {api_key_file: %s, remote_mgmt_url: %q, ingestion_url: %q, sensors: [accel]}
`, key, fake.WSURL(), fake.IngestionURL())
	}
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(config("150MiB"))

	// The child's stderr is a pipe whose dev:inode the test hands it as
	// JOURNAL_STREAM, as systemd does with its journal socket.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := pw.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	stderr := &logxtest.Buffer{}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(stderr, pr)
	}()
	cmd := reexec.Command("run", "-config", path)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, EnvMemoryLimit+"=") && !strings.HasPrefix(e, logx.EnvJournalStream+"=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, "EDGE_AGENT_MAIN=1", fmt.Sprintf("%s=%d:%d", logx.EnvJournalStream, st.Dev, st.Ino))
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	var waitErr error
	exited := make(chan struct{}) // closed when the process has exited, waitErr set
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	defer func() {
		cmd.Process.Kill() // no-op once it has exited
		<-exited
		<-copied
	}()

	var base string
	re := regexp.MustCompile(`agent started.* status=(\S+)`)
	agenttest.Eventually(t, "the agent's start line", func() bool {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			base = "http://" + m[1]
		}
		select {
		case <-exited:
			t.Fatalf("the agent exited (%v):\n%s", waitErr, stderr)
		default:
		}
		return base != ""
	})
	type snapshot struct {
		Links []struct {
			Name, State          string
			Sessions, Reconnects int
		}
		Sensors []struct{ Name string }
		Reload  *struct {
			Error   string
			Links   struct{ Unchanged, Restarted []string }
			Sensors struct{ Added []string }
			Applied []string
		}
	}
	status := func() snapshot {
		t.Helper()
		var s snapshot
		resp, err := http.Get(base + "/status")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&s)
			resp.Body.Close()
		}
		if err != nil {
			t.Fatalf("GET /status: %v\nthe agent's log:\n%s", err, stderr)
		}
		return s
	}
	agenttest.Eventually(t, "the link up", func() bool {
		s := status()
		return len(s.Links) == 1 && s.Links[0].State == "up"
	})

	body := get(t, base+"/metrics")
	if got := metric(body, "go_gc_gomemlimit_bytes"); got != 150<<20 {
		t.Errorf("go_gc_gomemlimit_bytes = %v, want memory_limit 150MiB (%d)", got, 150<<20)
	}
	for _, name := range []string{"process_resident_memory_bytes", "go_memstats_heap_inuse_bytes"} {
		v := metric(body, name)
		// qemu-user's /proc/self/stat reads 0 for the emulated process's
		// RSS; the metric must still be there.
		if v < 0 || (v == 0 && (name != "process_resident_memory_bytes" || os.Getenv("EDGE_AGENT_EMULATED") == "")) {
			t.Errorf("/metrics: %s = %v, want the process's figure", name, v)
		}
	}

	// Reload: a sensor more, a higher limit; the link keeps its session.
	write(config("160MiB", "extra"))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	agenttest.Eventually(t, "the reload in /status", func() bool { return status().Reload != nil })
	s := status()
	if r := s.Reload; r.Error != "" || strings.Join(r.Sensors.Added, ",") != "extra" ||
		strings.Join(r.Links.Unchanged, ",") != "studio" || !strings.Contains(strings.Join(r.Applied, ","), "memory_limit") {
		t.Errorf("reload = %+v", *r)
	}
	if len(s.Sensors) != 2 || s.Links[0].State != "up" || s.Links[0].Sessions != 1 || s.Links[0].Reconnects != 0 {
		t.Errorf("after the reload: %+v", s)
	}
	if got := metric(get(t, base+"/metrics"), "go_gc_gomemlimit_bytes"); got != 160<<20 {
		t.Errorf("go_gc_gomemlimit_bytes after the reload = %v, want %d", got, 160<<20)
	}

	// A broken file: refused with file:line, nothing changes.
	write(config("160MiB", "extra") + "sensorz: []\n")
	line := strings.Count(config("160MiB", "extra"), "\n") + 1
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	where := fmt.Sprintf("%s:%d", path, line)
	agenttest.Eventually(t, "the refused reload in /status", func() bool {
		r := status().Reload
		return r != nil && strings.Contains(r.Error, where)
	})
	s = status()
	if len(s.Sensors) != 2 || s.Links[0].Sessions != 1 || s.Links[0].Reconnects != 0 || len(fake.Hellos()) != 1 {
		t.Errorf("after the refused reload: %+v, %d hellos", s, len(fake.Hellos()))
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("exit: %v\n%s", waitErr, stderr)
		}
	case <-time.After(agenttest.Patience):
		t.Fatalf("still running after SIGTERM\n%s", stderr)
	}
	<-copied

	// Every line carries its journal priority.
	logs := stderr.String()
	for _, tc := range []struct{ prefix, text string }{
		{"<6>", "agent started"},
		{"<6>", "config reloaded"},
		{"<3>", "config reload refused"},
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(tc.prefix) + `.*` + regexp.QuoteMeta(tc.text)).MatchString(logs) {
			t.Errorf("no %q line starting with %s:\n%s", tc.text, tc.prefix, logs)
		}
	}
	if !strings.Contains(logs, where) {
		t.Errorf("the log does not name %s", where)
	}
	for _, l := range strings.Split(strings.TrimSuffix(logs, "\n"), "\n") {
		if !regexp.MustCompile(`^<[3467]>`).MatchString(l) {
			t.Errorf("line without a priority: %q", l)
		}
	}
}

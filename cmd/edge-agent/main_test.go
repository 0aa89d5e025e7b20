package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/kinds"
	"github.com/edge-agent/edge-agent/internal/logx/logxtest"
	"github.com/edge-agent/edge-agent/internal/reexec"
)

// TestMain lets the test binary act as edge-agent itself (EDGE_AGENT_MAIN=1),
// so the end-to-end tests run the real process without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("EDGE_AGENT_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := dispatch(context.Background(), args, &out, &out)
	return code, out.String()
}

func repoPath(rel string) string { return filepath.Join("..", "..", rel) }

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		path string
		code int
		want []string
	}{
		{"example config", repoPath("deploy/config.example.yaml"), 0, []string{"ok (5 sensors, 4 links)"}},
		{"misspelt key", write("typo.yaml", "log:\n  level: info\n  fromat: json\n"), 2,
			[]string{`typo.yaml:3: log.fromat: unknown key "fromat" (did you mean "format"?)`}},
		{"missing required field", write("req.yaml", "sensors:\n  - name: v\n    kind: synthetic\n    synthetic: {signal: h264}\nlinks:\n  - name: rec\n    kind: rtm\n    rtm: {token: t, video: v}\n"), 2,
			[]string{"req.yaml:8: links[0].rtm.url: required", "links[0].rtm.client_id: required"}},
		{"no such file", filepath.Join(dir, "absent.yaml"), 2, []string{"no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := run(t, "check-config", tt.path)
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s", code, tt.code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestRunWithBadConfigExits2(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte("sensors: 5\n"), 0o600)
	if code, out := run(t, "run", "-config", p); code != 2 || !strings.Contains(out, "bad.yaml:1") {
		t.Errorf("exit %d: %s", code, out)
	}
	if code, _ := run(t, "-config", p); code != 2 {
		t.Errorf("-config form: exit %d", code)
	}
}

func TestVersionAndUsage(t *testing.T) {
	code, out := run(t, "version")
	if code != 0 || !strings.Contains(out, "edge-agent ") || !strings.Contains(out, "microphone:") || !strings.Contains(out, "platform:") {
		t.Errorf("version: %d %s", code, out)
	}
	if code, _ := run(t, "frobnicate"); code != 2 {
		t.Errorf("unknown command exit %d", code)
	}
}

// TestVersionOutput: `edge-agent version` prints one line per fact, in this
// order, the board's device-tree model among them (without the NUL the
// kernel keeps), or says there is none.
func TestVersionOutput(t *testing.T) {
	noTree := t.TempDir()
	tests := []struct {
		name, proc, board string
	}{
		{"raspberry pi", fakeProc(t), regexp.QuoteMeta(pi4Model)},
		{"no device tree", noTree, regexp.QuoteMeta("unknown (no " + filepath.Join(noTree, "device-tree", "model") + ")")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := run(t, "version", "-proc-root", tt.proc)
			want := []string{`edge-agent \S+`, `commit:     \S+`, `go:         go\S+`, `platform:   linux/\w+( \(GOARM=\S+\))?`,
				`board:      ` + tt.board, `microphone: (yes|no) .+`}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if code != 0 || len(lines) != len(want) {
				t.Fatalf("exit %d, %d lines, want %d:\n%s", code, len(lines), len(want), out)
			}
			for i, w := range want {
				if !regexp.MustCompile("^" + w + "$").MatchString(lines[i]) {
					t.Errorf("line %d = %q, want %s", i+1, lines[i], w)
				}
			}
		})
	}
	if code, out := run(t, "version", "-no-such-flag"); code != 2 {
		t.Errorf("unknown flag: exit %d\n%s", code, out)
	}
}

// TestDemoEndToEnd runs `edge-agent demo` as a real process under a fake
// systemd: it must notify READY=1 and WATCHDOG=1, serve /status listing the
// synthetic sensors, and exit 0 within 5 s of SIGTERM with STOPPING=1.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo process")
	}
	dir := t.TempDir()
	sockPath := filepath.Join(dir, "notify.sock")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	notes := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := sock.Read(buf)
			if err != nil {
				close(notes)
				return
			}
			notes <- string(buf[:n])
		}
	}()

	cmd := reexec.Command("demo", "-status", "127.0.0.1:0", "-dir", filepath.Join(dir, "work"))
	cmd.Env = append(os.Environ(), "EDGE_AGENT_MAIN=1", "NOTIFY_SOCKET="+sockPath, "WATCHDOG_USEC=200000")
	stdout, _ := cmd.StdoutPipe()
	stderr := &logxtest.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	var base string
	re := regexp.MustCompile(`status page (http://[^/ ]+)/`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
			break
		}
	}
	if base == "" {
		t.Fatalf("no status URL printed; stderr:\n%s", stderr.String())
	}
	go io.Copy(io.Discard, stdout)

	waitNote(t, notes, "READY=1")
	waitNote(t, notes, "WATCHDOG=1")

	var statusDump string
	var snap struct {
		Device  map[string]string `json:"device"`
		Sensors []struct {
			Name, Kind, State string
			Subscribers       int
		} `json:"sensors"`
		Links []struct{ Name, Kind, State string } `json:"links"`
	}
	statusDump = get(t, base+"/status") + get(t, base+"/metrics") + get(t, base+"/")
	getJSON(t, base+"/status", &snap)
	names := map[string]string{}
	for _, s := range snap.Sensors {
		names[s.Name] = s.Kind
	}
	for _, want := range []string{"accel", "mic", "cam", "video"} {
		if names[want] != "synthetic" {
			t.Errorf("/status sensors = %+v, missing synthetic %q", snap.Sensors, want)
		}
	}
	if snap.Device["id"] == "" || snap.Device["id"] == "auto" || snap.Device["type"] == "auto" {
		t.Errorf("device not resolved: %v", snap.Device)
	}
	for _, l := range snap.Links {
		switch l.State {
		case "connecting", "up", "backoff", "stopped", "failed":
		default:
			t.Errorf("link %s has state %q outside the contract", l.Name, l.State)
		}
	}
	if body := get(t, base+"/metrics"); !strings.Contains(body, "edge_agent_sensor_samples_total") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics lacks agent or Go metrics")
	}
	if body := get(t, base+"/healthz"); strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz = %q", body)
	}
	if body := get(t, base+"/"); !strings.Contains(body, "<table>") || !strings.Contains(body, "accel") {
		t.Errorf("status page lacks the sensor table")
	}

	// Every link kind has its fake in the demo, and every link comes up
	// against it (so the run's logs include each handshake, with its
	// credentials, for the secrets check below).
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st struct {
			Links []struct{ Name, State string }
		}
		getJSON(t, base+"/status", &st)
		up := 0
		for _, l := range st.Links {
			if l.State == "up" {
				up++
			}
		}
		if len(st.Links) != len(kinds.Links) {
			t.Fatalf("the demo runs %d links, want one per link kind (%v): %+v", len(st.Links), kinds.Names(kinds.Links), st.Links)
		}
		if up == len(st.Links) {
			t.Logf("%d links up", up)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("links not all up: %+v", st.Links)
		}
		time.Sleep(100 * time.Millisecond)
	}
	statusDump += get(t, base+"/status")
	checkDemoRule(t, base, stderr)

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo exited with %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("demo still running 5 s after SIGTERM; stderr:\n%s", stderr.String())
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	waitNote(t, notes, "STOPPING=1")
	logs := stderr.String()
	if strings.Contains(logs, "panic") || strings.Contains(logs, "DATA RACE") {
		t.Errorf("stderr:\n%s", logs)
	}
	checkNoSecretsLeaked(t, filepath.Join(dir, "work"), logs+statusDump)
	checkStatePermissions(t, filepath.Join(dir, "work", "state"))
}

// checkNoSecretsLeaked greps every log line and status document of the run
// for every secret the demo configured (the files in its secrets dir).
func checkNoSecretsLeaked(t *testing.T, work, output string) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(work, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(work, "secrets", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		secrets := []string{strings.TrimSpace(string(b))}
		var doc map[string]any
		if json.Unmarshal(b, &doc) == nil { // a token file: check each value
			secrets = secrets[:0]
			for _, v := range doc {
				if s, ok := v.(string); ok {
					secrets = append(secrets, s)
				}
			}
		}
		for _, secret := range secrets {
			if len(secret) < 6 || strings.HasPrefix(secret, "-----BEGIN CERTIFICATE") {
				continue // too short to grep for meaningfully, or public
			}
			checked++
			if strings.Contains(output, secret) {
				t.Errorf("secret from %s appears in the logs or status output", e.Name())
			}
		}
	}
	t.Logf("checked %d secrets against %d bytes of logs and status output", checked, len(output))
	if checked == 0 {
		t.Error("the demo configured no secrets to check")
	}
}

// checkStatePermissions: everything under state_dir is private to the agent.
func checkStatePermissions(t *testing.T, state string) {
	t.Helper()
	err := filepath.WalkDir(state, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s is mode %04o: state must not be group/world accessible", path, perm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func waitNote(t *testing.T, notes <-chan string, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case n, ok := <-notes:
			if !ok {
				t.Fatalf("notify socket closed before %s", want)
			}
			if strings.Contains(n, want) {
				return
			}
		case <-timeout:
			t.Fatalf("no %s from the agent", want)
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(get(t, url)), v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestSimWritesAConfigForAnotherProcess: `sim -config DIR` writes the demo's
// agent config for its fakes, with a concrete status port and the profiler
// on, and the config passes check-config.
func TestSimWritesAConfigForAnotherProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cfg")
	ctx, cancel := context.WithCancel(context.Background())
	out := &logxtest.Buffer{}
	done := make(chan int, 1)
	go func() { done <- dispatch(ctx, []string{"sim", "-config", dir, "-pprof"}, out, io.Discard) }()
	var line struct{ Config, Status string }
	deadline := time.Now().Add(20 * time.Second)
	for line.Config == "" {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no config line in: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, `"config"`) {
				_ = json.Unmarshal([]byte(l), &line)
			}
		}
	}
	if code, msg := run(t, "check-config", line.Config); code != exitOK {
		t.Errorf("check-config = %d: %s", code, msg)
	}
	b, err := os.ReadFile(line.Config)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(line.Status, "http://"), "/")
	if !strings.Contains(string(b), "listen: "+addr) || strings.HasSuffix(addr, ":0") || !strings.Contains(string(b), "pprof: true") {
		t.Errorf("status %q; config:\n%s", line.Status, b)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("sim exited %d", code)
	}
}

// checkDemoRule: the demo's model sees the synthetic camera's visitor and
// its rule acts on three links: an RTM recording starts, the frame reaches
// the Frame.io fake, and the camera-server fake holds the message.
func checkDemoRule(t *testing.T, base string, stderr *logxtest.Buffer) {
	t.Helper()
	if os.Getenv("EDGE_AGENT_EMULATED") != "" {
		t.Log("under qemu-user: the demo's model is this test binary started directly, which the host kernel cannot run without binfmt_misc; the rule is checked natively")
		return
	}
	type rule struct {
		Name    string
		Fired   uint64
		Actions []struct {
			Do         string
			OK, Failed uint64
			LastError  string `json:"last_error"`
		}
	}
	var last []rule
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct{ Rules []rule }
		getJSON(t, base+"/status", &st)
		last = st.Rules
		done := len(st.Rules) == 1 && st.Rules[0].Fired >= 1 && len(st.Rules[0].Actions) == 3
		for _, a := range st.Rules[0].Actions {
			done = done && a.OK >= 1
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo's rule did not act on every link: %+v\n%s", last, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	metrics := get(t, base+"/metrics")
	for _, want := range []string{`edge_agent_rule_fired_total{label="visitor",model="visitor-detector",rule="visitor"}`,
		`edge_agent_rule_actions_total{action="frameio.upload_still",link="frameio",outcome="ok",rule="visitor"}`,
		`edge_agent_inference_label_total{label="visitor",model="visitor-detector"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var queues []struct{ Link string }
	getJSON(t, base+"/api/uploads", &queues)
	if got := fmt.Sprint(queues); got != "[{edgeimpulse} {frameio} {camserver}]" {
		t.Errorf("upload queues = %s, want those of the links that upload (not rtm's, which streams)", got)
	}
	if page := get(t, base+"/"); !strings.Contains(page, `<tr data-rule="visitor">`) {
		t.Errorf("the console's page does not list the rule")
	}
	for _, want := range []string{`msg="rule fired" rule=visitor model=visitor-detector label=visitor`,
		`msg="rtm recording started"`, `msg="frameio fake: asset complete" name=visitor_visitor_`, `msg="camserver fake: message"`} {
		agenttest.Eventually(t, want, func() bool { return strings.Contains(stderr.String(), want) })
	}
}

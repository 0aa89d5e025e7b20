package rtm_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/edge-agent/edge-agent/transport/rtm"
)

const chromiumPath = "/usr/bin/chromium"

// browserRelay is a minimal RTM service whose answering peer is a headless
// Chromium page: the agent speaks RTM over the WebSocket, the page polls
// the offer and the agent's candidates over HTTP and posts its answer, its
// candidates, "connected" and finally its getStats() verdict.
type browserRelay struct {
	t     *testing.T
	token string

	mu        sync.Mutex
	conn      *websocket.Conn
	offer     *webrtc.SessionDescription
	agentCand []webrtc.ICECandidateInit
	started   time.Time
	connected time.Duration

	stats chan browserStats
}

type browserStats struct {
	FramesDecoded      int      `json:"framesDecoded"`
	KeyFramesDecoded   int      `json:"keyFramesDecoded"`
	FrameWidth         int      `json:"frameWidth"`
	FrameHeight        int      `json:"frameHeight"`
	AudioPackets       int      `json:"audioPacketsReceived"`
	AudioCodec         string   `json:"audioCodec"`
	VideoCodec         string   `json:"videoCodec"`
	FirstFrameMs       float64  `json:"firstFrameMs"`
	FirstAudioMs       float64  `json:"firstAudioMs"`
	ConnectedMs        float64  `json:"connectedMs"`
	Error              string   `json:"error"`
	ConnectionStateLog []string `json:"states"`
}

const browserPage = `<!doctype html><html><body>
<video id=v autoplay muted playsinline></video><audio id=a autoplay></audio>
<script>
const t0 = performance.now();
const sleep = ms => new Promise(r => setTimeout(r, ms));
const post = (p, b) => fetch(p, {method: 'POST', body: JSON.stringify(b)});
const res = {states: []};
async function main() {
  const pc = new RTCPeerConnection({iceServers: []});
  pc.onicecandidate = e => { if (e.candidate) post('/candidate', e.candidate.toJSON()); };
  pc.ontrack = e => {
    const el = e.track.kind === 'video' ? document.getElementById('v') : document.getElementById('a');
    el.srcObject = new MediaStream([e.track]); el.play().catch(() => {});
  };
  pc.onconnectionstatechange = () => {
    res.states.push(pc.connectionState);
    if (pc.connectionState === 'connected') { res.connectedMs = performance.now() - t0; post('/state', {state: 'connected'}); }
  };
  let offer;
  while (!offer) { const r = await fetch('/offer'); if (r.status === 200) offer = await r.json(); else await sleep(50); }
  await pc.setRemoteDescription(offer);
  await pc.setLocalDescription(await pc.createAnswer());
  await post('/answer', pc.localDescription);
  let next = 0;
  const deadline = performance.now() + 25000;
  while (performance.now() < deadline) {
    const cs = await (await fetch('/candidates?from=' + next)).json();
    for (const c of cs) { try { await pc.addIceCandidate(c); } catch (e) {} next++; }
    const st = await pc.getStats();
    st.forEach(s => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {
        res.framesDecoded = s.framesDecoded || 0; res.keyFramesDecoded = s.keyFramesDecoded || 0;
        res.frameWidth = s.frameWidth || 0; res.frameHeight = s.frameHeight || 0;
        if (res.framesDecoded > 0 && !res.firstFrameMs) res.firstFrameMs = performance.now() - t0;
        const c = st.get(s.codecId); if (c) res.videoCodec = c.mimeType;
      } else if (s.kind === 'audio') {
        res.audioPacketsReceived = s.packetsReceived || 0;
        if (res.audioPacketsReceived > 0 && !res.firstAudioMs) res.firstAudioMs = performance.now() - t0;
        const c = st.get(s.codecId); if (c) res.audioCodec = c.mimeType;
      }
    });
    if (res.framesDecoded >= 15 && res.audioPacketsReceived >= 25) break;
    await sleep(100);
  }
  await post('/stats', res);
}
main().catch(e => post('/stats', {error: String(e)}));
</script></body></html>`

func (b *browserRelay) handler() http.Handler {
	mux := http.NewServeMux()
	up := websocket.Upgrader{}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, browserPage)
	})
	mux.HandleFunc("GET /api/v2/io", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+b.token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conn = c
		b.mu.Unlock()
		for {
			_, raw, err := c.ReadMessage()
			if err != nil {
				return
			}
			m, err := rtm.DecodeMessage(raw)
			if err != nil {
				b.t.Errorf("agent sent a bad message: %v", err)
				return
			}
			switch m.Type {
			case rtm.TypeSessionStart:
				sd, err := m.SDP()
				if err != nil {
					b.t.Errorf("session_start: %v", err)
					return
				}
				b.mu.Lock()
				b.offer, b.started = &sd, time.Now()
				b.mu.Unlock()
				b.send(rtm.TypeSessionState, rtm.SessionStateData{State: rtm.StateSetup})
			case rtm.TypeCandidate:
				cand, err := m.Candidate()
				if err == nil {
					b.mu.Lock()
					b.agentCand = append(b.agentCand, cand)
					b.mu.Unlock()
				}
			case rtm.TypeSessionStop:
				b.send(rtm.TypeSessionState, rtm.SessionStateData{State: rtm.StateTerminated, TerminationCause: rtm.CauseTermByClient})
			}
		}
	})
	mux.HandleFunc("GET /offer", func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.offer == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		json.NewEncoder(w).Encode(b.offer)
	})
	mux.HandleFunc("GET /candidates", func(w http.ResponseWriter, r *http.Request) {
		from, _ := strconv.Atoi(r.URL.Query().Get("from"))
		b.mu.Lock()
		defer b.mu.Unlock()
		out := []webrtc.ICECandidateInit{}
		if from >= 0 && from < len(b.agentCand) {
			out = b.agentCand[from:]
		}
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("POST /answer", func(w http.ResponseWriter, r *http.Request) {
		var sd webrtc.SessionDescription
		if err := json.NewDecoder(r.Body).Decode(&sd); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b.send(rtm.TypeSDPUpdate, rtm.SDPData{SDP: &sd})
	})
	mux.HandleFunc("POST /candidate", func(w http.ResponseWriter, r *http.Request) {
		var c webrtc.ICECandidateInit
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b.send(rtm.TypeCandidate, rtm.CandidateData{Candidate: &c})
	})
	mux.HandleFunc("POST /state", func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.connected = time.Since(b.started)
		b.mu.Unlock()
		b.send(rtm.TypeSessionState, rtm.SessionStateData{State: rtm.StateActive})
	})
	mux.HandleFunc("POST /stats", func(w http.ResponseWriter, r *http.Request) {
		var st browserStats
		if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
			st.Error = "bad stats: " + err.Error()
		}
		select {
		case b.stats <- st:
		default:
		}
	})
	return mux
}

func (b *browserRelay) send(typ string, data any) {
	m, err := rtm.NewMessage(typ, "", "browser-session", data)
	if err != nil {
		b.t.Error(err)
		return
	}
	raw, _ := json.Marshal(m)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		_ = b.conn.WriteMessage(websocket.TextMessage, raw)
	}
}

func (b *browserRelay) closeConn() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		b.conn.Close()
	}
}

// TestChromiumReceives publishes the synthetic camera and microphone to a
// headless Chromium and takes its getStats() as the verdict: decoded video
// frames at the source's size and received PCMU packets.
func TestChromiumReceives(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("skipping: %s not found (CI installs Debian's chromium; apt-get install -y chromium)", chromiumPath)
	}
	e := newEnv(t, time.Second)
	relay := &browserRelay{t: t, token: "browser-token", stats: make(chan browserStats, 1)}
	srv := httptest.NewServer(relay.handler())
	defer srv.Close()
	defer relay.closeConn()

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	profile := t.TempDir()
	cmd := exec.Command(chromiumPath, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-dev-shm-usage", "--allow-loopback-in-peer-connection",
		"--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required",
		"--user-data-dir="+profile, srv.URL+"/")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // so the whole browser tree can be stopped
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // our own process group only
		<-exited
	}()

	cfg := e.cfg
	cfg.URL = "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/v2/io"
	cfg.Token = relay.token
	cfg.Record.UploadURL = "" // the browser does not record
	link, err := rtm.New(cfg, e.deps, rtm.Options{FirstPingTimeout: time.Minute, SetupTimeout: 30 * time.Second, StopWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	type dialRes struct {
		s   interface{ Close() error }
		err error
	}
	dialed := make(chan dialRes, 1)
	go func() {
		s, err := link.Dial(ctx)
		dialed <- dialRes{s, err}
	}()
	var d dialRes
	select {
	case d = <-dialed:
	case err := <-exited:
		t.Fatalf("chromium exited early: %v\n%s", err, stderr.String())
	}
	if d.err != nil {
		t.Fatalf("dial: %v\nchromium stderr:\n%s", d.err, stderr.String())
	}
	defer d.s.Close()

	var st browserStats
	select {
	case st = <-relay.stats:
	case <-ctx.Done():
		t.Fatalf("no stats from the browser: %v\n%s", ctx.Err(), stderr.String())
	}
	t.Logf("chromium: %+v", st)
	if st.Error != "" {
		t.Fatalf("page error: %s", st.Error)
	}
	if st.FramesDecoded < 15 || st.KeyFramesDecoded < 1 {
		t.Errorf("framesDecoded %d keyFramesDecoded %d, want >= 15 and >= 1", st.FramesDecoded, st.KeyFramesDecoded)
	}
	if st.FrameWidth != 320 || st.FrameHeight != 240 {
		t.Errorf("decoded %dx%d, want 320x240", st.FrameWidth, st.FrameHeight)
	}
	if st.AudioPackets < 25 {
		t.Errorf("audio packetsReceived %d, want >= 25", st.AudioPackets)
	}
	if !strings.EqualFold(st.VideoCodec, "video/H264") || !strings.EqualFold(st.AudioCodec, "audio/PCMU") {
		t.Errorf("codecs %q %q, want video/H264 and audio/PCMU", st.VideoCodec, st.AudioCodec)
	}
}

type limitedWriter struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n <= 0 {
		return len(p), nil
	}
	q := p
	if len(q) > l.n {
		q = q[:l.n]
	}
	l.n -= len(q)
	if _, err := l.w.Write(q); err != nil {
		return 0, errors.Join(err)
	}
	return len(p), nil
}

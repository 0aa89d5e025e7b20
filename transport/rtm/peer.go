package rtm

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport/rtm/internal/pionapi"
)

// peerConfig is what one session's peer connection is made from.
type peerConfig struct {
	ice      []webrtc.ICEServer
	loopback bool      // offer loopback host candidates (the service runs on this host)
	udpPorts [2]uint16 // ephemeral ICE ports (0,0 = any)
	h264Fmtp string    // the H.264 format offered: the stream's profile-level-id
	audio    bool      // add a PCMU track beside the H.264 one
	// sdpErrorWait is how long the supervisor waits after a description
	// pion cannot apply or answer (a codec or config bug that a quick retry
	// will not fix).
	sdpErrorWait time.Duration
	counters     *mediaCounters // PLI/FIR are counted here
	log          *slog.Logger
}

// peer owns one session's pion PeerConnection: the sendonly H.264 (and PCMU)
// tracks the pumps write to, an RTCP reader per sender (the interceptors need
// RTCP read, and PLI/FIR arrive there), the offer and answer, the remote
// candidates that arrive before the remote description, and pion's callbacks,
// which only post to bounded channels so they never block pion. The settings
// and the steps are those of docs/protocols/webrtc-rtm.md §5 and §6.3.
//
// Concurrency: newPeer and close are called by the session's owner; every
// other method by one goroutine at a time (dial until the event loop starts,
// then the loop). The channels may be read from any goroutine.
type peer struct {
	pc           *webrtc.PeerConnection
	video, audio *webrtc.TrackLocalStaticSample // audio is nil without audio
	keyReq       chan struct{}                  // PLI/FIR; 1 slot: requests pending together merge
	cands        chan webrtc.ICECandidateInit   // local candidates for the signalling
	changed      chan struct{}                  // 1 slot: the connection state changed
	candDrops    atomic.Int64                   // local candidates dropped on a full cands

	sdpErrorWait time.Duration
	h264Fmtp     string // the H.264 format offered
	log          *slog.Logger
	pending      []webrtc.ICECandidateInit // remote candidates before the remote description

	wg        sync.WaitGroup // the RTCP readers
	closeOnce sync.Once
}

// newPeer creates the peer connection with sendonly H.264 (and PCMU when
// audio) transceivers and starts its RTCP readers. On error nothing is left
// running.
func newPeer(cfg peerConfig) (_ *peer, err error) {
	api, err := pionapi.New(pionapi.Config{H264: []string{cfg.h264Fmtp}, Loopback: cfg.loopback, UDPPorts: cfg.udpPorts})
	if err != nil {
		return nil, retry.Permanent(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: cfg.ice})
	if err != nil {
		return nil, fmt.Errorf("rtm peer connection: %w", err)
	}
	p := &peer{
		pc: pc, keyReq: make(chan struct{}, 1), cands: make(chan webrtc.ICECandidateInit, 64),
		changed: make(chan struct{}, 1), sdpErrorWait: cfg.sdpErrorWait, h264Fmtp: cfg.h264Fmtp, log: cfg.log,
	}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	var vtr, atr *webrtc.RTPTransceiver
	p.video, vtr, err = p.addTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: cfg.h264Fmtp}, "video")
	if err != nil {
		return nil, err
	}
	if cfg.audio {
		p.audio, atr, err = p.addTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1}, "audio")
		if err != nil {
			return nil, err
		}
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return // end of gathering: the protocol has no message for it
		}
		select {
		case p.cands <- c.ToJSON():
		default:
			p.candDrops.Add(1)
		}
	})
	pc.OnConnectionStateChange(func(webrtc.PeerConnectionState) {
		select {
		case p.changed <- struct{}{}:
		default: // a notification is pending; the reader reads the current state
		}
	})
	p.readRTCP(vtr, p.keyReq, cfg.counters)
	if atr != nil {
		p.readRTCP(atr, nil, cfg.counters)
	}
	return p, nil
}

// addTrack adds a sendonly track of codec, named kind.
func (p *peer) addTrack(codec webrtc.RTPCodecCapability, kind string) (*webrtc.TrackLocalStaticSample, *webrtc.RTPTransceiver, error) {
	track, err := webrtc.NewTrackLocalStaticSample(codec, kind, "edge-agent")
	if err != nil {
		return nil, nil, fmt.Errorf("rtm %s track: %w", kind, err)
	}
	tr, err := p.pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return nil, nil, fmt.Errorf("rtm %s transceiver: %w", kind, err)
	}
	return track, tr, nil
}

// readRTCP starts tr's RTCP reader; close stops it (closing the peer
// connection closes the sender) and waits for it.
func (p *peer) readRTCP(tr *webrtc.RTPTransceiver, keyReq chan<- struct{}, c *mediaCounters) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		rtcpReader(tr.Sender(), keyReq, c)
	}()
}

// candidates delivers the local candidates to trickle as candidate
// messages; over 64 unsent ones are dropped and counted.
func (p *peer) candidates() <-chan webrtc.ICECandidateInit { return p.cands }

// stateChanged is signalled when the connection state changed; state says
// what it is now (notifications pending together merge).
func (p *peer) stateChanged() <-chan struct{} { return p.changed }

// state is the connection state now.
func (p *peer) state() webrtc.PeerConnectionState { return p.pc.ConnectionState() }

// offer creates the offer and applies it locally; what it returns goes in
// session_start at once, before gathering ends (candidates trickle).
func (p *peer) offer() (*webrtc.SessionDescription, error) {
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		return nil, retry.Permanent(fmt.Errorf("rtm create offer: %w", err))
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		return nil, fmt.Errorf("rtm set local description: %w", err)
	}
	return p.pc.LocalDescription(), nil
}

// apply applies the service's description: the answer to our offer, or an
// offer of its own (renegotiation), which it answers; answer is then what
// goes back in sdp_update, else nil. The remote candidates that waited for a
// description are added after it. A description pion cannot apply or
// answer asks the supervisor to wait sdpErrorWait.
func (p *peer) apply(sd webrtc.SessionDescription) (answer *webrtc.SessionDescription, err error) {
	if err := p.pc.SetRemoteDescription(sd); err != nil {
		if errors.Is(err, webrtc.ErrUnsupportedCodec) && videoRefused(sd.SDP) {
			// What a browser without a decoder for the profile answers
			// (docs/protocols/webrtc-rtm.md §6.1): say which one.
			err = fmt.Errorf("the peer takes none of the H.264 we offered (%s), so it does not decode the camera's profile; encode constrained baseline, which every browser decodes: %w", p.h264Fmtp, err)
		}
		return nil, retry.RetryAfter(fmt.Errorf("rtm apply %s: %w", sd.Type, err), p.sdpErrorWait)
	}
	if sd.Type == webrtc.SDPTypeOffer {
		ans, err := p.pc.CreateAnswer(nil)
		if err != nil {
			return nil, retry.RetryAfter(fmt.Errorf("rtm answer renegotiation: %w", err), p.sdpErrorWait)
		}
		if err := p.pc.SetLocalDescription(ans); err != nil {
			return nil, fmt.Errorf("rtm set local answer: %w", err)
		}
		answer = p.pc.LocalDescription()
	}
	for _, c := range p.pending {
		if err := p.pc.AddICECandidate(c); err != nil {
			p.log.Debug("rtm buffered remote candidate rejected", "err", err)
		}
	}
	p.pending = nil
	return answer, nil
}

// videoRefused reports whether a description refuses its video section
// (port 0, RFC 3264 §6).
func videoRefused(sdp string) bool {
	for line := range strings.Lines(sdp) {
		if strings.HasPrefix(line, "m=video 0 ") {
			return true
		}
	}
	return false
}

// addCandidate adds a remote candidate, or keeps it until the remote
// description is applied. The caller bounds how many it passes.
func (p *peer) addCandidate(c webrtc.ICECandidateInit) {
	if p.pc.RemoteDescription() == nil {
		p.pending = append(p.pending, c)
		return
	}
	if err := p.pc.AddICECandidate(c); err != nil {
		p.log.Debug("rtm remote candidate rejected", "err", err)
	}
}

// close closes the peer connection, waiting for pion's own goroutines
// (GracefulClose), and then for the RTCP readers, which end with it. Safe to
// call more than once.
func (p *peer) close() {
	p.closeOnce.Do(func() {
		_ = p.pc.GracefulClose()
		p.wg.Wait()
	})
}

// candDropsOrZero is candDrops, 0 for a session that made no peer.
func (p *peer) candDropsOrZero() int64 {
	if p == nil {
		return 0
	}
	return p.candDrops.Load()
}

// rtcpReader drains RTCP from one sender (the interceptors need it read) and
// turns PLI/FIR into a keyframe request. keyReq is a 1-slot signal: requests
// that arrive while one is pending merge.
func rtcpReader(sender *webrtc.RTPSender, keyReq chan<- struct{}, c *mediaCounters) {
	buf := make([]byte, 1500)
	for {
		n, _, err := sender.Read(buf)
		if err != nil {
			return // the sender was closed with the peer connection
		}
		if keyReq == nil {
			continue
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				c.keyRequests.Add(1)
				select {
				case keyReq <- struct{}{}:
				default:
				}
			}
		}
	}
}

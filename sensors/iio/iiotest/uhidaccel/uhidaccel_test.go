package uhidaccel

import (
	"bytes"
	"encoding/binary"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeKernel stands in for /dev/uhid: the test queues the events the kernel
// would send and reads what the device wrote.
type fakeKernel struct {
	toDev   chan []byte
	fromDev chan []byte
	closed  chan struct{}
	once    sync.Once
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{toDev: make(chan []byte, 16), fromDev: make(chan []byte, 4096), closed: make(chan struct{})}
}

func (k *fakeKernel) Read(b []byte) (int, error) {
	select {
	case ev := <-k.toDev:
		return copy(b, ev), nil
	case <-k.closed:
		return 0, os.ErrClosed
	}
}

func (k *fakeKernel) Write(b []byte) (int, error) {
	select {
	case <-k.closed:
		return 0, os.ErrClosed
	default:
	}
	k.fromDev <- append([]byte(nil), b...)
	return len(b), nil
}

func (k *fakeKernel) Close() error { k.once.Do(func() { close(k.closed) }); return nil }

// next returns the next event the device wrote of type typ, skipping input
// reports unless typ is evInput2.
func (k *fakeKernel) next(t *testing.T, typ uint32) []byte {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-k.fromDev:
			got := binary.NativeEndian.Uint32(ev)
			if got == typ {
				return ev
			}
			if got != evInput2 {
				t.Fatalf("device wrote event %d, want %d", got, typ)
			}
		case <-deadline:
			t.Fatalf("no event %d from the device", typ)
		}
	}
}

func (k *fakeKernel) send(ev []byte) { k.toDev <- ev }

func getReport(id uint32, rnum, rtype byte) []byte {
	b := make([]byte, 10)
	binary.NativeEndian.PutUint32(b, evGetReport)
	binary.NativeEndian.PutUint32(b[4:], id)
	b[8], b[9] = rnum, rtype
	return b
}

func setReport(id uint32, rnum, rtype byte, data []byte) []byte {
	b := make([]byte, 12+len(data))
	binary.NativeEndian.PutUint32(b, evSetReport)
	binary.NativeEndian.PutUint32(b[4:], id)
	b[8], b[9] = rnum, rtype
	binary.NativeEndian.PutUint16(b[10:], uint16(len(data)))
	copy(b[12:], data)
	return b
}

func event(typ uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, typ)
	return b
}

// checkReply checks a GET_REPORT reply and returns its data.
func checkReply(t *testing.T, ev []byte, id uint32) []byte {
	t.Helper()
	if gid, errno := binary.NativeEndian.Uint32(ev[4:]), binary.NativeEndian.Uint16(ev[8:]); gid != id || errno != 0 {
		t.Fatalf("reply id %d errno %d, want id %d errno 0", gid, errno, id)
	}
	size := binary.NativeEndian.Uint16(ev[10:])
	return ev[12 : 12+size]
}

// TestProtocol walks the device through what the drivers do: create,
// property reads and writes (with a rate too fast, clamped), open → input
// reports at the interval with the chosen values and drops, a synchronous
// read of the input report, close → silence, destroy.
func TestProtocol(t *testing.T) {
	k := newFakeKernel()
	d, err := newDevice(k, Options{
		Name:   "test accel",
		Drop:   func(n uint64) bool { return n == 3 },
		Values: func(n uint64) [3]int16 { return [3]int16{int16(n), -int16(n), 1000} },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	ev := k.next(t, evCreate2)
	if len(ev) != eventSize || !bytes.HasPrefix(ev[4:], []byte("test accel\x00")) {
		t.Fatalf("create2: %d bytes, name %q", len(ev), ev[4:20])
	}
	o := 4 + 128 + 64 + 64
	if rd := binary.NativeEndian.Uint16(ev[o:]); int(rd) != len(descriptor) || !bytes.Equal(ev[o+20:o+20+int(rd)], descriptor) {
		t.Fatalf("create2 carries a %d-byte descriptor, not ours", rd)
	}

	k.send(getReport(7, featureReportID, rtypeFeature))
	f, ok := decodeFeatures(checkReply(t, k.next(t, evGetReportReply), 7))
	if !ok || f.intervalMs != 10 || f.reporting != ReportingNoEvents || f.power != PowerD4Off {
		t.Fatalf("initial features %+v", f)
	}

	// The driver asks for 1 kHz (1 ms): the device does 5 ms at most.
	k.send(setReport(8, featureReportID, rtypeFeature, features{reporting: ReportingAllEvents, power: PowerD0, intervalMs: 1}.encode()))
	if rep := k.next(t, evSetReportReply); binary.NativeEndian.Uint32(rep[4:]) != 8 || binary.NativeEndian.Uint16(rep[8:]) != 0 {
		t.Fatalf("set report reply %v", rep)
	}
	k.send(getReport(9, featureReportID, rtypeFeature))
	if f, _ := decodeFeatures(checkReply(t, k.next(t, evGetReportReply), 9)); f.intervalMs != 5 {
		t.Fatalf("interval read back %d ms, want the clamped 5", f.intervalMs)
	}
	if d.Streaming() {
		t.Fatal("streaming before the driver opened the device")
	}

	k.send(event(evOpen))
	for i := range 6 {
		in := k.next(t, evInput2)
		if size := binary.NativeEndian.Uint16(in[4:]); size != inputLen || in[6] != inputReportID {
			t.Fatalf("input report %d: size %d id %d", i, size, in[6])
		}
		x := int16(binary.LittleEndian.Uint16(in[7:]))
		y := int16(binary.LittleEndian.Uint16(in[9:]))
		want := int16(i)
		if i >= 3 {
			want++ // report 3 dropped
		}
		if x != want || y != -want {
			t.Fatalf("report %d carries x=%d y=%d, want %d", i, x, y, want)
		}
	}
	if d.Dropped() != 1 {
		t.Fatalf("Dropped() = %d", d.Dropped())
	}

	k.send(event(evClose))
	for deadline := time.Now().Add(5 * time.Second); d.Streaming(); {
		if time.Now().After(deadline) {
			t.Fatal("still streaming after close")
		}
		time.Sleep(time.Millisecond)
	}
	d.Set(1, 2, 3)
	k.send(getReport(10, inputReportID, rtypeInput))
	if got := checkReply(t, k.next(t, evGetReportReply), 10); !bytes.Equal(got, encodeInput([3]int16{1, 2, 3}, 0)) {
		t.Fatalf("input report read %v", got)
	}
	k.send(getReport(11, 5, rtypeFeature))
	if rep := k.next(t, evGetReportReply); binary.NativeEndian.Uint16(rep[8:]) == 0 {
		t.Fatal("unknown report answered without error")
	}

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	k.next(t, evDestroy)
}

// TestFixedRateAndLateness: with Options.Rate the device ignores the
// driver's interval; a late report does not shift the grid, so the count
// over a span is rate × span; device timestamps are the grid's times, the
// late ones late.
func TestFixedRateAndLateness(t *testing.T) {
	k := newFakeKernel()
	d, err := newDevice(k, Options{Rate: 200, DeviceTimestamps: true, Late: func(n uint64) time.Duration {
		if n%10 == 9 {
			return 3 * time.Millisecond
		}
		return 0
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	k.next(t, evCreate2)
	k.send(setReport(1, featureReportID, rtypeFeature, features{reporting: ReportingAllEvents, power: PowerD0, intervalMs: 100}.encode()))
	k.next(t, evSetReportReply)
	k.send(event(evOpen))
	start := time.Now()
	var t0 uint64
	for n := range uint64(100) {
		in := k.next(t, evInput2)
		ts := binary.LittleEndian.Uint64(in[6+7:])
		if n == 0 {
			t0 = ts
		}
		want := t0 + n*5000
		if n%10 == 9 {
			want += 3000
		}
		if monotonicNow() > 0 && ts != want {
			t.Fatalf("report %d stamped %d µs, want %d", n, ts, want)
		}
	}
	// 100 reports at 200 Hz take 0.5 s on the grid; the scheduler can only
	// make them later, and a 10 Hz interval would take 10 s.
	if el := time.Since(start); el < 450*time.Millisecond || el > 5*time.Second {
		t.Fatalf("100 reports took %v at 200 Hz", el)
	}
}

// TestDescriptorMatchesReports parses the descriptor's main items and checks
// that the feature and input report sizes are the bytes the device encodes,
// and that collections balance.
func TestDescriptorMatchesReports(t *testing.T) {
	bits := map[[2]int]int{} // (report id, main tag) → bits
	var size, count, id, depth int
	for i := 0; i < len(descriptor); {
		prefix := descriptor[i]
		n := int(prefix & 3)
		if n == 3 {
			n = 4
		}
		if i+1+n > len(descriptor) {
			t.Fatalf("item at %d runs past the end", i)
		}
		var v int
		for j := n - 1; j >= 0; j-- {
			v = v<<8 | int(descriptor[i+1+j])
		}
		switch prefix &^ 3 {
		case 0x74:
			size = v
		case 0x94:
			count = v
		case 0x84:
			id = v
		case 0x80, 0xB0: // Input, Feature
			bits[[2]int{id, int(prefix &^ 3)}] += size * count
		case 0xA0:
			depth++
		case 0xC0:
			depth--
		}
		i += 1 + n
	}
	if depth != 0 {
		t.Fatalf("collections unbalanced by %d", depth)
	}
	if got := bits[[2]int{featureReportID, 0xB0}]; got != 8*(featureLen-1) {
		t.Fatalf("feature report: descriptor %d bits, encoder %d", got, 8*(featureLen-1))
	}
	if got := bits[[2]int{inputReportID, 0x80}]; got != 8*(inputLen-1) {
		t.Fatalf("input report: descriptor %d bits, encoder %d", got, 8*(inputLen-1))
	}
}

package iio

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseScanType(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ScanType
		wantErr bool
	}{
		{name: "le s16", in: "le:s16/16>>0", want: ScanType{Signed: true, RealBits: 16, StorageBits: 16, Repeat: 1}},
		{name: "be s12 shift 4", in: "be:s12/16>>4", want: ScanType{BigEndian: true, Signed: true, RealBits: 12, StorageBits: 16, Shift: 4, Repeat: 1}},
		{name: "unsigned upper case", in: "le:U10/16>>6\n", want: ScanType{RealBits: 10, StorageBits: 16, Shift: 6, Repeat: 1}},
		{name: "repeat", in: "le:s16/16X2>>0", want: ScanType{Signed: true, RealBits: 16, StorageBits: 16, Repeat: 2}},
		{name: "timestamp", in: "le:s64/64>>0", want: ScanType{Signed: true, RealBits: 64, StorageBits: 64, Repeat: 1}},
		{name: "no colon", in: "les16/16>>0", wantErr: true},
		{name: "bad endian", in: "me:s16/16>>0", wantErr: true},
		{name: "bad sign", in: "le:x16/16>>0", wantErr: true},
		{name: "storage 12", in: "le:s12/12>>0", wantErr: true},
		{name: "real above storage", in: "le:s24/16>>0", wantErr: true},
		{name: "shift past storage", in: "le:s12/16>>8", wantErr: true},
		{name: "no shift", in: "le:s16/16", wantErr: true},
		{name: "zero repeat", in: "le:s16/16X0>>0", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseScanType(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseScanType(%q) err = %v, wantErr %v", tc.in, err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Fatalf("ParseScanType(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	// neg12 is the 16-bit two's complement pattern of a small negative v.
	neg12 := func(v int) uint16 { return uint16(int16(v)) }
	be16 := func(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
	le16 := func(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
	tests := []struct {
		name string
		typ  string
		b    []byte
		elem int
		want int64
	}{
		{name: "le s16 negative", typ: "le:s16/16>>0", b: le16(0xfffe), want: -2},
		{name: "le u16", typ: "le:u16/16>>0", b: le16(0xfffe), want: 65534},
		// -100 in 12 bits shifted left by 4 into a big-endian word.
		{name: "be s12>>4 negative", typ: "be:s12/16>>4", b: be16(neg12(-100)<<4 | 0x000f), want: -100},
		{name: "be s12>>4 positive", typ: "be:s12/16>>4", b: be16(2047 << 4), want: 2047},
		{name: "le s10>>6 masks low bits", typ: "le:s10/16>>6", b: le16(neg12(-3)<<6 | 0x3f), want: -3},
		{name: "u8", typ: "le:u8/8>>0", b: []byte{200}, want: 200},
		{name: "s8", typ: "le:s8/8>>0", b: []byte{200}, want: -56},
		{name: "s32 be", typ: "be:s32/32>>0", b: binary.BigEndian.AppendUint32(nil, uint32(0xfffffff0)), want: -16},
		{name: "s64", typ: "le:s64/64>>0", b: binary.LittleEndian.AppendUint64(nil, 1_700_000_000_123_456_789), want: 1_700_000_000_123_456_789},
		{name: "repeat second element", typ: "le:s16/16X2>>0", b: append(le16(1), le16(0xffff)...), elem: 1, want: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ParseScanType(tc.typ)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Decode(tc.b, tc.elem); got != tc.want {
				t.Fatalf("Decode = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestNewLayout(t *testing.T) {
	ty := func(s string) ScanType {
		st, err := ParseScanType(s)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	s16, s64, u8 := ty("le:s16/16>>0"), ty("le:s64/64>>0"), ty("le:u8/8>>0")
	tests := []struct {
		name    string
		chans   []Channel
		offsets []int // in index order
		size    int
		wantErr bool
	}{
		{name: "xyz + timestamp", chans: []Channel{{Name: "timestamp", Index: 3, Type: s64}, {Name: "accel_x", Index: 0, Type: s16}, {Name: "accel_y", Index: 1, Type: s16}, {Name: "accel_z", Index: 2, Type: s16}},
			offsets: []int{0, 2, 4, 8}, size: 16},
		{name: "xyz only", chans: []Channel{{Name: "accel_x", Index: 0, Type: s16}, {Name: "accel_y", Index: 1, Type: s16}, {Name: "accel_z", Index: 2, Type: s16}},
			offsets: []int{0, 2, 4}, size: 6},
		{name: "u8 then s16 aligns", chans: []Channel{{Name: "a", Index: 0, Type: u8}, {Name: "b", Index: 1, Type: s16}},
			offsets: []int{0, 2}, size: 4},
		{name: "repeat", chans: []Channel{{Name: "q", Index: 0, Type: ty("le:s16/16X3>>0")}, {Name: "timestamp", Index: 1, Type: s64}},
			offsets: []int{0, 8}, size: 16},
		{name: "index gap keeps order", chans: []Channel{{Name: "z", Index: 7, Type: s16}, {Name: "x", Index: 2, Type: s16}},
			offsets: []int{0, 2}, size: 4},
		{name: "empty", wantErr: true},
		{name: "duplicate index", chans: []Channel{{Name: "a", Index: 0, Type: s16}, {Name: "b", Index: 0, Type: s16}}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLayout(tc.chans)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			var offs []int
			for _, c := range l.Channels {
				offs = append(offs, c.Offset)
			}
			if !slices.Equal(offs, tc.offsets) || l.Size != tc.size {
				t.Fatalf("offsets %v size %d, want %v size %d", offs, l.Size, tc.offsets, tc.size)
			}
		})
	}
}

func TestParseAvailable(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []float64
		wantErr bool
	}{
		{name: "list", in: "12.5 25 50 100 200 400\n", want: []float64{12.5, 25, 50, 100, 200, 400}},
		{name: "range expanded", in: "[100 100 400]", want: []float64{100, 200, 300, 400}},
		{name: "long range ends", in: "[4 1 1000]", want: []float64{4, 1000}},
		{name: "empty", in: "", want: nil},
		{name: "garbage", in: "fast slow", wantErr: true},
		{name: "bad range", in: "[1 2]", wantErr: true},
		{name: "unterminated", in: "[1 2 3", wantErr: true},
		{name: "inverted range", in: "[400 1 100]", wantErr: true},
		{name: "nan range", in: "[NaN 1 2]", wantErr: true},
		{name: "inf step", in: "[1 Inf 2]", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAvailable(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseMountMatrix(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    [3][3]float64
		wantErr bool
	}{
		{name: "identity", in: "1, 0, 0; 0, 1, 0; 0, 0, 1", want: identity()},
		{name: "rotated", in: "0, -1, 0; 1, 0, 0; 0, 0, 1\n", want: [3][3]float64{{0, -1, 0}, {1, 0, 0}, {0, 0, 1}}},
		{name: "two rows", in: "1, 0, 0; 0, 1, 0", wantErr: true},
		{name: "bad number", in: "1, x, 0; 0, 1, 0; 0, 0, 1", wantErr: true},
		{name: "nan", in: "NaN, 0, 0; 0, 1, 0; 0, 0, 1", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMountMatrix(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestChooseRate(t *testing.T) {
	tests := []struct {
		name  string
		want  float64
		avail []float64
		got   float64
	}{
		{name: "no list", want: 62.5, got: 62.5},
		{name: "listed", want: 100, avail: []float64{50, 100, 200}, got: 100},
		{name: "next faster", want: 62.5, avail: []float64{50, 100, 200}, got: 100},
		{name: "above all", want: 800, avail: []float64{50, 100, 400}, got: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := chooseRate(tc.want, tc.avail); got != tc.got {
				t.Fatalf("chooseRate = %g, want %g", got, tc.got)
			}
		})
	}
}

func TestDiscover(t *testing.T) {
	ft := newTree(t)
	gyro := ft.add(t, fakeDev{Index: 0, Name: "lsm6ds3_gyro", Freq: "104"})
	acc := ft.add(t, fakeDev{Index: 1, Name: "adxl345", Accel: true, Scale: "0.038300", Freq: "100", Available: "12.5 25 50 100 200 400", Buffered: true})
	acc2 := ft.add(t, fakeDev{Index: 2, Name: "mpu6050", Accel: true, Scale: "0.000598", Freq: "50", Buffered: true, Buffer0: true})
	// A trigger directory the kernel lists next to devices.
	must(t, os.MkdirAll(filepath.Join(ft.sys, "bus", "iio", "devices", "trigger0"), 0o755))

	devs, err := Discover(ft.sys)
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{
		{Name: "lsm6ds3_gyro", Dir: gyro, Index: 0, Channels: []string{"anglvel_x"}, SamplingFrequency: 104},
		{Name: "adxl345", Dir: acc, Index: 1, Channels: []string{"accel_x", "accel_y", "accel_z", "temp", "timestamp"}, SamplingFrequency: 100,
			Available: []float64{12.5, 25, 50, 100, 200, 400}, Buffered: true},
		{Name: "mpu6050", Dir: acc2, Index: 2, Channels: []string{"accel_x", "accel_y", "accel_z", "temp", "timestamp"}, SamplingFrequency: 50, Buffered: true},
	}
	if len(devs) != len(want) {
		t.Fatalf("got %d devices, want %d: %+v", len(devs), len(want), devs)
	}
	for i := range want {
		g, w := devs[i], want[i]
		if g.Name != w.Name || g.Dir != w.Dir || g.Index != w.Index || !slices.Equal(g.Channels, w.Channels) ||
			g.SamplingFrequency != w.SamplingFrequency || !slices.Equal(g.Available, w.Available) || g.Buffered != w.Buffered {
			t.Errorf("device %d = %+v, want %+v", i, g, w)
		}
	}

	if devs, err := Discover(filepath.Join(ft.root, "nowhere")); err != nil || len(devs) != 0 {
		t.Fatalf("missing IIO dir: %v, %v; want no devices and no error", devs, err)
	}
}

func TestFind(t *testing.T) {
	ft := newTree(t)
	ft.add(t, fakeDev{Index: 0, Name: "lsm6ds3_gyro"})
	ft.add(t, fakeDev{Index: 3, Name: "lis3dh", Accel: true, Scale: "0.01"})
	tests := []struct {
		name    string
		want    string
		wantErr bool
	}{
		{name: "auto skips gyro", want: "auto"},
		{name: "by name", want: "lis3dh"},
		{name: "missing", want: "bmi160", wantErr: true},
		{name: "no accel channels", want: "lsm6ds3_gyro", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Find(ft.sys, tc.want)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && (d.Name != "lis3dh" || d.Index != 3) {
				t.Fatalf("found %+v", d)
			}
		})
	}
}

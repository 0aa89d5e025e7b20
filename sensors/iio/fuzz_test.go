package iio

import (
	"testing"
	"time"
)

// FuzzParseScanType: any accepted type string must round-trip through
// String and decode any bytes without panicking, within its real bits.
func FuzzParseScanType(f *testing.F) {
	for _, s := range []string{"le:s16/16>>0", "be:s12/16>>4", "le:u8/8>>0", "le:s64/64>>0", "le:s16/16X2>>0", "be:U10/32>>22", "le:s0/16>>0", ":", "le:s16/16>>-1"} {
		f.Add(s, []byte{0x80, 0x01, 0xff, 0x7f, 0, 0, 0, 0x80})
	}
	f.Fuzz(func(t *testing.T, s string, data []byte) {
		st, err := ParseScanType(s)
		if err != nil {
			return
		}
		again, err := ParseScanType(st.String())
		if err != nil || again != st {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, st, st.String(), again, err)
		}
		if len(data) < st.Bytes() {
			return
		}
		v := st.Decode(data, 0)
		if st.RealBits < 64 {
			lim := int64(1) << uint(st.RealBits)
			if st.Signed && (v < -lim/2 || v >= lim/2) || !st.Signed && (v < 0 || v >= lim) {
				t.Fatalf("%s decoded %d outside %d bits", st, v, st.RealBits)
			}
		}
	})
}

// FuzzScanDecoder: arbitrary bytes from the char device decode into rows of
// three finite-or-not values without panicking, one row per whole scan.
func FuzzScanDecoder(f *testing.F) {
	f.Add([]byte("0123456789abcdef0123456789abcdef"), "be:s12/16>>4")
	f.Add(make([]byte, 48), "le:s16/16>>0")
	f.Fuzz(func(t *testing.T, data []byte, axisType string) {
		st, err := ParseScanType(axisType)
		if err != nil {
			return
		}
		ts, _ := ParseScanType("le:s64/64>>0")
		l, err := NewLayout([]Channel{{Name: "accel_x", Index: 0, Type: st}, {Name: "accel_y", Index: 1, Type: st}, {Name: "accel_z", Index: 2, Type: st}, {Name: "timestamp", Index: 3, Type: ts}})
		if err != nil {
			t.Fatal(err)
		}
		d := newScanDecoder(l, calibration{scale: [3]float64{1, 1, 1}, mount: identity()}, 400, "monotonic")
		whole := len(data) / l.Size * l.Size
		rows := d.decode(data[:whole], time.Now())
		if len(rows) != whole/l.Size {
			t.Fatalf("%d rows from %d scans", len(rows), whole/l.Size)
		}
		for _, r := range rows {
			if len(r.Values) != 3 {
				t.Fatalf("row %v", r.Values)
			}
		}
	})
}

// FuzzParseAvailable: no panic, and no unbounded expansion.
func FuzzParseAvailable(f *testing.F) {
	for _, s := range []string{"12.5 25 50", "[100 100 400]", "[0 0 1e308]", "[1 1e-300 2]", "[NaN 1 2]", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseAvailable(s)
		if err == nil && len(v) > 65 && s[0] == '[' {
			t.Fatalf("range %q expanded to %d values", s, len(v))
		}
	})
}

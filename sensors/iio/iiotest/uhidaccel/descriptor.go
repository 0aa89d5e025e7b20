package uhidaccel

import "encoding/binary"

// Enum values of the reporting and power states as they appear in the
// feature report. The kernel writes an enum as its usage's index in the
// descriptor + 1 (it forces the logical minimum to 1), so the descriptor
// declares logical minimum 1: reporting state selectors 0x0840…0x0845 (no,
// all, threshold events, then the same with wake), power state selectors
// 0x0850…0x0855 (undefined, D0 full power, D1 low power, D2 standby, D3
// sleep, D4 off).
const (
	ReportingNoEvents     = 1
	ReportingAllEvents    = 2
	ReportingNoEventsWake = 4
	PowerD0               = 2
	PowerD3Sleep          = 5
	PowerD4Off            = 6
)

// Report IDs: one feature report (the properties) and one input report
// (the three axes).
const (
	featureReportID = 1
	inputReportID   = 2

	featureLen = 1 + 1 + 1 + 4 + 2 // id, reporting, power, interval u32, sensitivity u16
	inputLen   = 1 + 3*2 + 8       // id, x, y, z as s16, timestamp u64 (µs)
)

// UnitExponent is the exponent of the acceleration fields: -3 with the
// default unit (g) makes one count a milli-g. hid-sensor-accel-3d turns it
// into in_accel_scale = 9.80665 × 10⁻³ m/s² per count.
const UnitExponent = -3

// Scale is what in_accel_scale reads for this device: m/s² per count.
const Scale = 9.80665e-3

// descriptor is the HID report descriptor of a sensor-hub 3D accelerometer:
// one physical collection of usage Accelerometer 3D on the Sensors page (what
// makes hid-core put the device in HID_GROUP_SENSOR_HUB, so hid-sensor-hub
// binds it and creates the HID-SENSOR-200073 platform device that
// hid-sensor-accel-3d drives), with the properties the driver looks up
// (reporting state, power state, report interval, change sensitivity) in
// feature report 1 and acceleration X/Y/Z as signed 16-bit milli-g in input
// report 2, followed by an optional timestamp. The driver reads the scan
// type from the field size: le:s16/32>>0.
var descriptor = []byte{
	0x05, 0x20, //            Usage Page (Sensors)
	0x09, 0x73, //            Usage (Motion: Accelerometer 3D)
	0xA1, 0x00, //            Collection (Physical)

	0x85, featureReportID, // Report ID
	// Reporting state: an 8-bit array (enum) of six selectors.
	0x0A, 0x16, 0x03, //      Usage (Property: Reporting State)
	0x15, 0x01, //            Logical Minimum (1)
	0x25, 0x06, //            Logical Maximum (6)
	0x75, 0x08, //            Report Size (8)
	0x95, 0x01, //            Report Count (1)
	0xA1, 0x02, //            Collection (Logical)
	0x0A, 0x40, 0x08, 0x0A, 0x41, 0x08, 0x0A, 0x42, 0x08, // no / all / threshold events
	0x0A, 0x43, 0x08, 0x0A, 0x44, 0x08, 0x0A, 0x45, 0x08, // the same, with wake
	0xB1, 0x00, //              Feature (Data, Array, Absolute)
	0xC0, //                  End Collection
	// Power state: the same shape.
	0x0A, 0x19, 0x03, //      Usage (Property: Power State)
	0xA1, 0x02, //            Collection (Logical)
	0x0A, 0x50, 0x08, 0x0A, 0x51, 0x08, 0x0A, 0x52, 0x08, // undefined, D0, D1
	0x0A, 0x53, 0x08, 0x0A, 0x54, 0x08, 0x0A, 0x55, 0x08, // D2, D3, D4
	0xB1, 0x00, //              Feature (Data, Array, Absolute)
	0xC0, //                  End Collection
	// Report interval in milliseconds (no unit item: the driver's default).
	0x0A, 0x0E, 0x03, //      Usage (Property: Report Interval)
	0x15, 0x00, //            Logical Minimum (0)
	0x27, 0xFF, 0xFF, 0xFF, 0x7F, // Logical Maximum (2^31-1)
	0x75, 0x20, //            Report Size (32)
	0x95, 0x01, //            Report Count (1)
	0x55, 0x00, //            Unit Exponent (0)
	0xB1, 0x02, //            Feature (Data, Variable, Absolute)
	// Change sensitivity of the acceleration, in the data fields' unit.
	0x0A, 0x52, 0x14, //      Usage (Acceleration | Change Sensitivity Absolute)
	0x15, 0x00, //            Logical Minimum (0)
	0x26, 0xFF, 0x7F, //      Logical Maximum (32767)
	0x75, 0x10, //            Report Size (16)
	0x55, 0x0D, //            Unit Exponent (-3)
	0xB1, 0x02, //            Feature (Data, Variable, Absolute)

	0x85, inputReportID, //   Report ID
	0x0A, 0x53, 0x04, //      Usage (Acceleration X)
	0x16, 0x01, 0x80, //      Logical Minimum (-32767)
	0x26, 0xFF, 0x7F, //      Logical Maximum (32767)
	0x75, 0x10, //            Report Size (16)
	0x95, 0x01, //            Report Count (1)
	0x55, 0x0D, //            Unit Exponent (-3)
	0x81, 0x02, //            Input (Data, Variable, Absolute)
	0x0A, 0x54, 0x04, //      Usage (Acceleration Y)
	0x81, 0x02, //            Input (Data, Variable, Absolute)
	0x0A, 0x55, 0x04, //      Usage (Acceleration Z)
	0x81, 0x02, //            Input (Data, Variable, Absolute)
	// The time the sample was taken, in µs on the IIO device's clock; 0
	// lets the driver stamp the report when it arrives.
	0x0A, 0x29, 0x05, //      Usage (Time: Timestamp)
	0x15, 0x00, //            Logical Minimum (0)
	0x27, 0xFF, 0xFF, 0xFF, 0x7F, // Logical Maximum (2^31-1; the field is wider)
	0x75, 0x40, //            Report Size (64)
	0x55, 0x0A, //            Unit Exponent (-6)
	0x81, 0x02, //            Input (Data, Variable, Absolute)

	0xC0, // End Collection
}

// Descriptor returns a copy of the report descriptor.
func Descriptor() []byte { return append([]byte(nil), descriptor...) }

// features is the device side of feature report 1.
type features struct {
	reporting, power uint8
	intervalMs       uint32
	sensitivity      uint16
}

func (f features) encode() []byte {
	b := make([]byte, featureLen)
	b[0] = featureReportID
	b[1] = f.reporting
	b[2] = f.power
	binary.LittleEndian.PutUint32(b[3:], f.intervalMs)
	binary.LittleEndian.PutUint16(b[7:], f.sensitivity)
	return b
}

// decodeFeatures parses feature report 1 as the kernel sends it with
// SET_REPORT (report ID first).
func decodeFeatures(b []byte) (features, bool) {
	if len(b) < featureLen || b[0] != featureReportID {
		return features{}, false
	}
	return features{
		reporting:   b[1],
		power:       b[2],
		intervalMs:  binary.LittleEndian.Uint32(b[3:]),
		sensitivity: binary.LittleEndian.Uint16(b[7:]),
	}, true
}

// encodeInput builds input report 2; tsMicros 0 means "no timestamp".
func encodeInput(v [3]int16, tsMicros uint64) []byte {
	b := make([]byte, inputLen)
	b[0] = inputReportID
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[1+2*i:], uint16(x))
	}
	binary.LittleEndian.PutUint64(b[7:], tsMicros)
	return b
}

// streams says whether a device in these states sends input reports: the
// driver asked for events and did not put it to sleep.
func (f features) streams() bool {
	switch f.reporting {
	case ReportingNoEvents, ReportingNoEventsWake:
		return false
	}
	return f.power != PowerD3Sleep && f.power != PowerD4Off
}

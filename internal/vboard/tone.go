package vboard

import (
	"encoding/binary"
	"math"
)

// ToneWAV is a mono s16le PCM WAV file of seconds of a sine at hz with
// peak amp (of 32767), sampled at rate: what the microphone cases play into
// the loopback sound card with aplay.
func ToneWAV(hz, amp float64, rate, seconds int) []byte {
	n := rate * seconds
	b := make([]byte, 44+2*n)
	le := binary.LittleEndian
	copy(b, "RIFF")
	le.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	le.PutUint32(b[16:], 16) // fmt chunk size
	le.PutUint16(b[20:], 1)  // PCM
	le.PutUint16(b[22:], 1)  // mono
	le.PutUint32(b[24:], uint32(rate))
	le.PutUint32(b[28:], uint32(2*rate)) // bytes per second
	le.PutUint16(b[32:], 2)              // bytes per frame
	le.PutUint16(b[34:], 16)             // bits per sample
	copy(b[36:], "data")
	le.PutUint32(b[40:], uint32(2*n))
	for i := range n {
		v := int16(math.Round(amp * math.Sin(2*math.Pi*hz*float64(i)/float64(rate))))
		le.PutUint16(b[44+2*i:], uint16(v))
	}
	return b
}

package iio

import (
	"fmt"
	"sort"
)

// Channel is one enabled channel of a buffered scan.
type Channel struct {
	Name   string // e.g. accel_x, timestamp
	Index  int    // scan_elements/*_index
	Type   ScanType
	Offset int // byte offset inside the scan
}

// Layout is where each enabled channel sits inside one scan read from
// /dev/iio:deviceN.
type Layout struct {
	Channels []Channel
	// Size is the scan size in bytes, including padding.
	Size int
}

// NewLayout orders the enabled channels by index and places each one at an
// offset that is a multiple of its element size, then pads the scan to the
// largest element size, as the kernel does (and as tools/iio's
// size_from_channelarray decodes it). A repeated channel ("X<n>") occupies n
// elements, aligned to one element.
func NewLayout(chans []Channel) (Layout, error) {
	if len(chans) == 0 {
		return Layout{}, fmt.Errorf("scan layout: no enabled channels")
	}
	cs := append([]Channel(nil), chans...)
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Index < cs[j].Index })
	off, largest := 0, 1
	for i := range cs {
		if i > 0 && cs[i].Index == cs[i-1].Index {
			return Layout{}, fmt.Errorf("scan layout: channels %s and %s share index %d", cs[i-1].Name, cs[i].Name, cs[i].Index)
		}
		n := cs[i].Type.Bytes()
		if n == 0 {
			return Layout{}, fmt.Errorf("scan layout: channel %s has no storage size", cs[i].Name)
		}
		if r := off % n; r != 0 {
			off += n - r
		}
		cs[i].Offset = off
		off += n * cs[i].Type.Repeat
		largest = max(largest, n)
	}
	if r := off % largest; r != 0 {
		off += largest - r
	}
	return Layout{Channels: cs, Size: off}, nil
}

// Find returns the position of the named channel, or -1.
func (l Layout) Find(name string) int {
	for i, c := range l.Channels {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// Value decodes element 0 of channel i from one scan.
func (l Layout) Value(scan []byte, i int) int64 {
	c := l.Channels[i]
	return c.Type.Decode(scan[c.Offset:], 0)
}

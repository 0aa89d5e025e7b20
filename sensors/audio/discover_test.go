package audio

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeCard is one card of a fake /proc/asound tree.
type fakeCard struct {
	index                  int
	id, driver, name, long string
	capture                []pcmInfo
	playback               []int // device numbers with only a playback side
}

// testCards is a Pi-like board: HDMI (playback only) at 0, snd-aloop at 1
// (two capture devices with one name), a USB microphone at 2, and a
// HiFiBerry whose id fills the 15 characters /proc/asound/cards shows.
var testCards = []fakeCard{
	{index: 0, id: "vc4hdmi", driver: "vc4-hdmi", name: "vc4-hdmi", long: "vc4-hdmi", playback: []int{0}},
	{index: 1, id: "Loopback", driver: "Loopback", name: "Loopback", long: "Loopback 1",
		capture: []pcmInfo{{dev: 0, name: "Loopback PCM", subdevices: 8}, {dev: 1, name: "Loopback PCM", subdevices: 8}}, playback: []int{0, 1}},
	{index: 2, id: "Device", driver: "USB-Audio", name: "USB PnP Sound Device", long: "C-Media Electronics Inc. USB PnP Sound Device at usb-3f980000.usb-1.3, full speed",
		capture: []pcmInfo{{dev: 0, name: "USB Audio", subdevices: 1}}},
	{index: 3, id: "sndrpihifiberry", driver: "snd_rpi_hifiberry_dacplusadc", name: "snd_rpi_hifiberry_dacplusadc", long: "snd_rpi_hifiberry_dacplusadc",
		capture: []pcmInfo{{dev: 0, name: "HiFiBerry DAC+ADC HiFi multicodec-0", subdevices: 1}}},
}

// writeProc writes cards as the kernel shows them under /proc/asound and
// returns the root.
func writeProc(t *testing.T, cards []fakeCard) string {
	t.Helper()
	root := t.TempDir()
	var list strings.Builder
	if len(cards) == 0 {
		list.WriteString("--- no soundcards ---\n")
	}
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cards {
		// sound/core/init.c: card_info_read.
		fmt.Fprintf(&list, "%2d [%-15s]: %s - %s\n                      %s\n", c.index, c.id, c.driver, c.name, c.long)
		dir := fmt.Sprintf("card%d", c.index)
		write(dir+"/id", c.id+"\n")
		for _, p := range c.capture {
			// sound/core/pcm.c: snd_pcm_proc_info_read.
			write(fmt.Sprintf("%s/pcm%dc/info", dir, p.dev), fmt.Sprintf("card: %d\ndevice: %d\nsubdevice: 0\nstream: CAPTURE\nid: %s\nname: %s\nsubname: subdevice #0\nclass: 0\nsubclass: 0\nsubdevices_count: %d\nsubdevices_avail: %d\n",
				c.index, p.dev, p.name, p.name, p.subdevices, p.subdevices))
			write(fmt.Sprintf("%s/pcm%dc/sub0/status", dir, p.dev), "closed\n")
		}
		for _, d := range c.playback {
			write(fmt.Sprintf("%s/pcm%dp/info", dir, d), fmt.Sprintf("card: %d\ndevice: %d\nstream: PLAYBACK\nname: out\n", c.index, d))
		}
	}
	write("cards", list.String())
	return root
}

func TestReadCards(t *testing.T) {
	cards, err := readCards(writeProc(t, testCards))
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{
		{ID: "hw:Loopback,0", Name: "Loopback PCM", Card: 1, CardID: "Loopback", CardName: "Loopback", PCM: 0},
		{ID: "hw:Loopback,1", Name: "Loopback PCM", Card: 1, CardID: "Loopback", CardName: "Loopback", PCM: 1},
		{ID: "hw:Device,0", Name: "USB Audio", Card: 2, CardID: "Device", CardName: "USB PnP Sound Device", PCM: 0},
		{ID: "hw:sndrpihifiberry,0", Name: "HiFiBerry DAC+ADC HiFi multicodec-0", Card: 3, CardID: "sndrpihifiberry", CardName: "snd_rpi_hifiberry_dacplusadc", PCM: 0},
	}
	if got := cardDevices(cards); !reflect.DeepEqual(got, want) {
		t.Fatalf("devices\n got %+v\nwant %+v", got, want)
	}
	if len(cards) != 4 || cards[0].id != "vc4hdmi" || len(cards[0].capture) != 0 || cards[2].driver != "USB-Audio" ||
		!strings.HasPrefix(cards[2].long, "C-Media") || cards[1].capture[1].subdevices != 8 {
		t.Fatalf("cards %+v", cards)
	}
}

func TestReadCardsNone(t *testing.T) {
	for name, root := range map[string]string{
		"no /proc/asound": filepath.Join(t.TempDir(), "absent"),
		"no soundcards":   writeProc(t, nil),
	} {
		t.Run(name, func(t *testing.T) {
			cards, err := readCards(root)
			if err != nil || len(cards) != 0 {
				t.Fatalf("readCards = %+v, %v", cards, err)
			}
			if d := describeCards(cards); !strings.Contains(d, "no sound card is present") {
				t.Fatalf("describeCards = %q", d)
			}
		})
	}
}

func TestDescribeCards(t *testing.T) {
	cards, err := readCards(writeProc(t, testCards[:1]))
	if err != nil {
		t.Fatal(err)
	}
	if d := describeCards(cards); d != "no sound card has a capture device (cards: 0 [vc4hdmi] vc4-hdmi)" {
		t.Fatalf("playback-only board: %q", d)
	}
	cards, err = readCards(writeProc(t, testCards))
	if err != nil {
		t.Fatal(err)
	}
	d := describeCards(cards)
	for _, want := range []string{"hw:Loopback,0 (Loopback: Loopback PCM)", "hw:Loopback,1 (Loopback: Loopback PCM)", "hw:Device,0 (USB PnP Sound Device: USB Audio)"} {
		if !strings.Contains(d, want) {
			t.Errorf("describeCards = %q, want it to list %q", d, want)
		}
	}
}

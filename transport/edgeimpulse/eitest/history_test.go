package eitest

import (
	"net/http"
	"slices"
	"testing"
)

// TestMaxHistory: a bounded fake keeps the newest messages, Hellos and
// stored-file hashes, while absolute message indices (MessageCount,
// MessageTypes, the sim's cycleEnded) keep meaning the same message.
func TestMaxHistory(t *testing.T) {
	s, err := New(Options{MaxHistory: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	types := []string{"sampleStarted", "sampleProcessing", "sampleUploading", "sampleStarted", "sampleProcessing",
		"sampleUploading", "sampleStarted", "sampleProcessing", "sampleUploading", "sampleFinished"}
	for _, typ := range types {
		s.record(map[string]any{typ: true})
	}
	if n := len(s.Messages()); n > 4 || n == 0 {
		t.Errorf("%d messages kept, want 1..4", n)
	}
	if got := s.MessageCount(); got != len(types) {
		t.Errorf("MessageCount = %d, want %d", got, len(types))
	}
	if got := s.MessageTypes(8); !slices.Equal(got, []string{"sampleUploading", "sampleFinished"}) {
		t.Errorf("MessageTypes(8) = %v", got)
	}
	if got := s.MessageTypes(0); got[len(got)-1] != "sampleFinished" || len(got) > 4 {
		t.Errorf("MessageTypes(0) = %v: the kept ones, newest last", got)
	}
	if !s.cycleEnded(7) || s.cycleEnded(len(types)) {
		t.Error("cycleEnded does not follow absolute indices")
	}
	r, _ := http.NewRequest("POST", "/", nil)
	r.Header.Set("x-disallow-duplicates", "1")
	for i := range 10 {
		s.duplicate(r, string(rune('a'+i)))
	}
	if len(s.stored) > 4 {
		t.Errorf("%d hashes kept, want <= 4", len(s.stored))
	}
	if !s.duplicate(r, "j") {
		t.Error("the newest hash was forgotten")
	}
}

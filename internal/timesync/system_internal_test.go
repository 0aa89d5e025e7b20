package timesync

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestSystemSyncedCombines: either systemd-timesyncd's file or the kernel
// saying synchronized is enough; the kernel's error is reported only when
// nothing says yes.
func TestSystemSyncedCombines(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "synchronized")
	if err := os.WriteFile(present, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(dir, "missing")
	kernel := func(ok bool, err error) func() (bool, error) { return func() (bool, error) { return ok, err } }
	eperm := errors.New("adjtimex: operation not permitted")
	tests := []struct {
		name    string
		file    string
		kernel  func() (bool, error)
		want    bool
		wantErr bool
	}{
		{name: "timesyncd file, kernel unsynced", file: present, kernel: kernel(false, nil), want: true},
		{name: "timesyncd file, kernel fails", file: present, kernel: kernel(false, eperm), want: true},
		{name: "no file, kernel synced (chrony, ntpd)", file: absent, kernel: kernel(true, nil), want: true},
		{name: "no file, kernel unsynced", file: absent, kernel: kernel(false, nil), want: false},
		{name: "no file, kernel fails", file: absent, kernel: kernel(false, eperm), want: false, wantErr: true},
		{name: "no kernel status (not Linux)", file: absent, want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &system{file: tc.file, kernel: tc.kernel}
			got, err := s.Synced()
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("Synced() = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

//go:build !linux

package serial

import (
	"fmt"

	bugserial "go.bug.st/serial"
)

// openPort opens the port and drops input queued before the open. The
// checks and the echo notes of the Linux version do not apply here: the
// agent runs on Linux, other systems only build it.
func openPort(path string, baud int, sysRoot string) (bugserial.Port, error) {
	port, err := bugserial.Open(path, &bugserial.Mode{BaudRate: baud})
	if err != nil {
		return nil, err
	}
	if err := port.ResetInputBuffer(); err != nil {
		_ = port.Close()
		return nil, fmt.Errorf("flush input: %w", err)
	}
	return port, nil
}

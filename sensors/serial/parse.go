package serial

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// MaxLine bounds one line; longer input is discarded up to the next newline
// and counted as malformed, so a board printing garbage cannot grow memory.
const MaxLine = 1024

// MaxAxes bounds the number of columns a line may carry.
const MaxAxes = 64

var (
	errEmpty    = errors.New("empty line")
	errTooMany  = fmt.Errorf("more than %d values", MaxAxes)
	errTooLong  = fmt.Errorf("line longer than %d bytes", MaxLine)
	errBadCount = errors.New("wrong number of values")
)

// isSep reports the separators a reading may use: comma, space, tab (and
// semicolon, which some locales' boards print). Runs of separators count as
// one, so "1, 2, 3" and "1\t2\t3" both give three values.
func isSep(c byte) bool { return c == ',' || c == ' ' || c == '\t' || c == ';' }

// ParseLine parses one reading ("1.0,-2,3e2", CR/LF already stripped or
// not) into dst[:0], returning the values. It rejects empty lines,
// non-numbers (a header line like "x,y,z"), NaN/Inf and more than MaxAxes
// values. It does not allocate when dst has room.
func ParseLine(line []byte, dst []float64) ([]float64, error) {
	dst = dst[:0]
	for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
		line = line[:len(line)-1]
	}
	i := 0
	for {
		for i < len(line) && isSep(line[i]) {
			i++
		}
		if i == len(line) {
			break
		}
		j := i
		for j < len(line) && !isSep(line[j]) {
			j++
		}
		if len(dst) == MaxAxes {
			return dst, errTooMany
		}
		f, err := strconv.ParseFloat(string(line[i:j]), 64)
		if err != nil {
			return dst, fmt.Errorf("value %d: %w", len(dst)+1, err)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return dst, fmt.Errorf("value %d: not a finite number", len(dst)+1)
		}
		dst = append(dst, f)
		i = j
	}
	if len(dst) == 0 {
		return dst, errEmpty
	}
	return dst, nil
}

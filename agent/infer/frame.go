package infer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// maxAnswer bounds one answer from a model: the .eim's own buffers are
// 32 MiB (docs/protocols/eim.md §3), and a bigger "answer" is a runaway
// process, not a result.
const maxAnswer = 32 << 20

// frameReader splits the model's byte stream into JSON objects as the
// model and the Node SDK do: bytes outside an object (the newline and NUL
// after each answer, docs/protocols/eim.md §3) are skipped, and an object
// ends when its braces balance. Unlike the SDKs it knows about strings, so
// a label holding a brace does not cut an answer short.
//
// Concurrency: one reader goroutine at a time.
type frameReader struct {
	r   *bufio.Reader
	buf []byte
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// errTooLong is an answer over maxAnswer.
var errTooLong = errors.New("answer longer than 32 MiB")

// next returns the next complete object; the slice is valid until the
// following call.
func (f *frameReader) next() ([]byte, error) {
	f.buf = f.buf[:0]
	depth := 0
	inString, escaped := false, false
	for {
		c, err := f.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && depth > 0 {
				return nil, fmt.Errorf("%w: connection closed inside an answer", io.ErrUnexpectedEOF)
			}
			return nil, err
		}
		if depth == 0 {
			switch c {
			case '{':
				depth = 1
				f.buf = append(f.buf, c)
			case ' ', '\t', '\r', '\n', 0:
				// Between answers.
			default:
				return nil, fmt.Errorf("%w: byte %q outside an answer", errGarbage, c)
			}
			continue
		}
		f.buf = append(f.buf, c)
		if len(f.buf) > maxAnswer {
			return nil, fmt.Errorf("%w: %w", errGarbage, errTooLong)
		}
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				return f.buf, nil
			}
		}
	}
}

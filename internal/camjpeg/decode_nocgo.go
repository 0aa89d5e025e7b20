//go:build !cgo || nolibjpeg

package camjpeg

// Without libjpeg-turbo DecodeReduced never gets here (turbo is nil).
func decodeReduced(dst, _ []byte, _ int, _ bool) ([]byte, int, int, bool, error) {
	return dst, 0, 0, false, nil
}

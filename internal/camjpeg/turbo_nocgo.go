//go:build !cgo || nolibjpeg

package camjpeg

// Without cgo, or with -tags nolibjpeg, there is no libjpeg-turbo: Default
// is the Go codec.
var turbo Codec

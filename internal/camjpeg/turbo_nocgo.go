//go:build !cgo

package camjpeg

// Without cgo there is no libjpeg-turbo: Default is the Go codec.
var turbo Codec

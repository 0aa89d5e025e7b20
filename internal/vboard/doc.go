// Package vboard holds what the virtual board's cases share (see
// scripts/vboard/README.md): loading kernel modules for one test and
// removing them, and everything they pulled in, afterwards; waiting for the
// kernel to get somewhere; the tone the microphone cases play. It is
// imported only by test files built with the vboard tag.
package vboard

package iio

import "syscall"

func mkfifo(path string) error {
	_ = syscall.Unlink(path)
	return syscall.Mkfifo(path, 0o644)
}

//go:build unix

package cluster

import "syscall"

// rawWriteSupported: a peer link writes without blocking through the
// connection's raw descriptor (tcpsend.go).
const rawWriteSupported = true

// rawWrite is one write(2) on a non-blocking socket.
func rawWrite(fd uintptr, b []byte) (int, error) { return syscall.Write(int(fd), b) }

//go:build !unix

package cluster

// rawWriteSupported: without a raw non-blocking write every message goes
// through the peer's goroutine (tcpsend.go).
const rawWriteSupported = false

func rawWrite(uintptr, []byte) (int, error) { panic("unreachable: rawWriteSupported is false") }

package client

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is wrapped by Get when the key is absent (HTTP 404).
	ErrNotFound = errors.New("kvtool/client: key not found")
	// ErrCheckFailed is matched by every *CheckFailedError.
	ErrCheckFailed = errors.New("kvtool/client: transaction check failed")
	// ErrNoServer is wrapped when nothing answers at the address
	// (connection refused, unknown host, unreachable network).
	ErrNoServer = errors.New("no kvtool server")
)

// Error is an error answer of the server: its HTTP status and message.
type Error struct {
	Status  int    // HTTP status code
	Message string // the server's "error" field, or the status text
}

func (e *Error) Error() string {
	return fmt.Sprintf("server answered %d: %s", e.Status, e.Message)
}

// CheckFailedError is the answer 409: the transaction was aborted by the
// check at operation Op and nothing changed.
type CheckFailedError struct {
	Op      int    // index of the failed operation
	Key     string // its key
	Reason  string // why it failed
	Message string // the server's whole message
}

func (e *CheckFailedError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrCheckFailed) true.
func (e *CheckFailedError) Is(target error) bool { return target == ErrCheckFailed }

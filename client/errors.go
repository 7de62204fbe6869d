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
	// ErrNotKvtool is matched by every *NotKvtoolError: something answers
	// at the address, but it is not a kvtool server's HTTP API.
	ErrNotKvtool = errors.New("not a kvtool server")
)

// NotKvtoolError says that what answered at Addr is not a kvtool server's
// HTTP API: another HTTP server (Status is its answer), or something that
// does not speak HTTP at all (Status 0), such as a kvtool transfer port.
type NotKvtoolError struct {
	Addr   string
	Status int    // the HTTP status it answered, 0 if it did not answer HTTP
	What   string // what it answered, for a person
}

func (e *NotKvtoolError) Error() string {
	return fmt.Sprintf("%s is not a kvtool server (%s)", e.Addr, e.What)
}

// Is makes errors.Is(err, ErrNotKvtool) true.
func (e *NotKvtoolError) Is(target error) bool { return target == ErrNotKvtool }

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

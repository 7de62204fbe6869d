package transfer

import (
	"errors"
	"fmt"

	"github.com/kvtool/kvtool/format"
)

var (
	// ErrAuth is returned (wrapped) when the peer's proof of the shared
	// secret is wrong: the two ends were given different secrets.
	ErrAuth = errors.New("kvtool/transfer: authentication failed: the peers' secrets differ")
	// ErrStoreMismatch is returned (wrapped) by a receiver given a stream
	// from another store than the one its data directory holds or is
	// receiving.
	ErrStoreMismatch = errors.New("kvtool/transfer: the stream is from another store than the data directory holds")
	// ErrStaleEpoch is returned (wrapped) by a receiver given a stream whose
	// epoch or term is older than one it has already seen.
	ErrStaleEpoch = errors.New("kvtool/transfer: the stream's epoch or term is older than the data directory has seen")
	// ErrTooFarBehind is returned (wrapped) when the source no longer holds
	// the log a receiver with a complete store needs to catch up.
	ErrTooFarBehind = errors.New("kvtool/transfer: the source no longer has the log entries the receiver needs")
	// ErrPeerGone is returned (wrapped) when the connection ended or broke
	// before the transfer finished. Everything verified so far is durable:
	// connecting again resumes the transfer.
	ErrPeerGone = errors.New("kvtool/transfer: the peer went away before the transfer finished; it can be resumed")
	// ErrProtocol is returned (wrapped) for a well-formed frame in the wrong
	// place, or a protocol version this build does not speak.
	ErrProtocol = errors.New("kvtool/transfer: protocol violation")
	// ErrNotEmpty is returned (wrapped) by a receiver whose data directory
	// already holds a store it cannot catch up (no ReceiveOptions.Open).
	ErrNotEmpty = errors.New("kvtool/transfer: the data directory already holds a store")
	// ErrNoSecret is returned by NewSecret for a secret too short to be one.
	ErrNoSecret = errors.New("kvtool/transfer: the shared secret is missing or shorter than 16 bytes")
)

// PeerError is the reason the peer gave (in an error frame) for ending the
// session. It matches errors.Is with the sentinel of its code, and with
// format.ErrCorruption when the peer found the stream corrupt.
type PeerError struct {
	Peer    string
	Code    format.XferErrorCode
	Message string
}

// Error says which peer gave up and why.
func (e *PeerError) Error() string {
	return fmt.Sprintf("kvtool/transfer: %s gave up: %s", e.Peer, e.Message)
}

// Is maps the peer's error code to this package's sentinels.
func (e *PeerError) Is(target error) bool {
	want, ok := codeSentinel[e.Code]
	return ok && target == want
}

var codeSentinel = map[format.XferErrorCode]error{
	format.XferErrAuth:          ErrAuth,
	format.XferErrStoreMismatch: ErrStoreMismatch,
	format.XferErrStaleEpoch:    ErrStaleEpoch,
	format.XferErrProtocol:      ErrProtocol,
	format.XferErrCorrupt:       format.ErrCorruption,
	format.XferErrTooFarBehind:  ErrTooFarBehind,
}

// errorCode is the code an error frame carries for err.
func errorCode(err error) format.XferErrorCode {
	for code, sentinel := range codeSentinel {
		if errors.Is(err, sentinel) {
			return code
		}
	}
	return format.XferErrInternal
}

// protocolf is an ErrProtocol naming the peer.
func protocolf(peer, f string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrProtocol, peer, fmt.Sprintf(f, args...))
}

// gone wraps a connection failure as ErrPeerGone.
func gone(peer string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrPeerGone, peer, err)
}

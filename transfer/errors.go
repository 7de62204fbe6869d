package transfer

import (
	"context"
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
	// ErrLocalStore is returned (wrapped) by a receiver whose own store
	// failed: opening the installed directory, or applying the source's
	// log to it (a store fails stop after a failed write or fsync).
	ErrLocalStore = errors.New("kvtool/transfer: the local store failed")
)

// permanent are the errors that a new session would meet again.
var permanent = []error{ErrAuth, ErrProtocol, ErrStoreMismatch, ErrStaleEpoch, ErrNotEmpty, ErrTooFarBehind, ErrLocalStore, ErrNoSecret}

// Permanent reports whether err ended a transfer in a way that connecting
// again cannot mend, so a node that retries (serve --join) should stop
// and say why: the peers' secrets differ (or frames were forged), the
// peer is not a kvtool transfer listener or speaks another protocol
// version, it serves another store or an older epoch, the source no
// longer has the log the receiver's store needs, the directory holds a
// store that cannot be caught up, or the local store failed. Everything
// else (the connection, a busy or stopping source, damage in transit, a
// local I/O error while receiving) is worth another try. This holds for
// errors from either side: a peer's error frame carries its class.
func Permanent(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	for _, p := range permanent {
		if errors.Is(err, p) {
			return true
		}
	}
	return false
}

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

package format

import (
	"errors"
	"fmt"
)

// ErrCorruption is matched (errors.Is) by every *CorruptionError.
var ErrCorruption = errors.New("kvtool/format: corruption")

// ErrUnknownVersion is returned (wrapped) when a file header carries a format
// version this build does not know. It is not corruption: a newer kvtool wrote
// the file.
var ErrUnknownVersion = errors.New("kvtool/format: unknown format version")

// CorruptionError says that the bytes of a file at Offset are not what a
// writer could have produced.
type CorruptionError struct {
	Path   string // file the damage is in ("" when reading a stream)
	Offset int64  // byte offset of the damaged header, frame or field
	Reason string // what was wrong, for a person
}

// Error formats the path, offset and reason.
func (e *CorruptionError) Error() string {
	path := e.Path
	if path == "" {
		path = "<stream>"
	}
	return fmt.Sprintf("%s: corruption at offset %d: %s", path, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrCorruption) true for a *CorruptionError.
func (e *CorruptionError) Is(target error) bool { return target == ErrCorruption }

// Corruptf returns a *CorruptionError with a formatted reason.
func Corruptf(path string, offset int64, format string, args ...any) *CorruptionError {
	return &CorruptionError{Path: path, Offset: offset, Reason: fmt.Sprintf(format, args...)}
}

// AsCorruption returns the *CorruptionError inside err, or nil.
func AsCorruption(err error) *CorruptionError {
	var ce *CorruptionError
	if errors.As(err, &ce) {
		return ce
	}
	return nil
}

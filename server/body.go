package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// readBody reads the whole request body, at most limit bytes. A larger body
// is answered 413 (without reading it when its length is declared) and
// readBody returns false; what names the body in the message, and shown is
// the limit the message names: the one the user knows (a value's, not the
// body's slack above it).
func readBody(w http.ResponseWriter, r *http.Request, limit int64, what string, shown int64) ([]byte, bool) {
	if r.ContentLength > limit {
		tooLarge(w, what, shown)
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		tooLarge(w, what, shown)
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("read %s: %v", what, err))
		return nil, false
	}
	return b, true
}

func tooLarge(w http.ResponseWriter, what string, limit int64) {
	// The rest of the body is not read; the connection is closed after
	// the answer.
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s is over the limit of %d bytes", what, limit))
}

package server

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/store"
)

// get answers the raw value of the key from one snapshot.
func (s *Server) get(w http.ResponseWriter, r *http.Request, key string) {
	if msg := badKey(key); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	snap, ok := s.readSnapshot(w, r)
	if !ok {
		return
	}
	h := w.Header()
	h[api.IndexHeader] = []string{strconv.FormatUint(snap.Index(), 10)}
	val, ok := snap.Get(key)
	if !ok {
		writeError(w, http.StatusNotFound, "key not found")
		return
	}
	h["Content-Type"] = octetType
	h["Content-Length"] = []string{strconv.Itoa(len(val))}
	w.Write(val)
}

// octetType is the Content-Type of a raw value (shared, never modified).
var octetType = []string{"application/octet-stream"}

// put sets the key to the request body.
func (s *Server) put(w http.ResponseWriter, r *http.Request, key string) {
	if msg := badKey(key); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	val, done, ok := s.readBody(w, r, s.opts.MaxPutBody, min(s.opts.MaxPutBody, format.MaxValueSize), "value")
	defer done()
	if !ok {
		return
	}
	if len(val) > format.MaxValueSize {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("value of %d bytes is over the limit of %d bytes", len(val), format.MaxValueSize))
		return
	}
	s.commitOne(w, r, store.Op{Kind: store.OpPut, Key: key, Value: val})
}

// del removes the key (an absent key is not an error).
func (s *Server) del(w http.ResponseWriter, r *http.Request, key string) {
	if msg := badKey(key); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	s.commitOne(w, r, store.Op{Kind: store.OpDelete, Key: key})
}

// badKey says what is wrong with a key from the path, or "".
func badKey(key string) string {
	switch {
	case key == "":
		return "empty key: use /v1/kv/{key}"
	case len(key) > format.MaxKeySize:
		return fmt.Sprintf("key of %d bytes is over the limit of %d bytes", len(key), format.MaxKeySize)
	}
	return ""
}

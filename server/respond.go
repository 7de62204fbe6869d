package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/kvtool/kvtool/api"
)

// writeJSON writes v as the JSON body of a status answer. A failure to
// write means the client went away; there is nobody left to tell.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(api.ErrorBody{Error: "encode answer: " + err.Error()})
	}
	body = append(body, '\n')
	writeBody(w, status, body)
}

// writeBody answers status with a JSON body. A 200 is written without
// WriteHeader: net/http copies the header map when a handler calls it
// explicitly (issue 16's profile of the write path).
func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	if status != http.StatusOK {
		w.WriteHeader(status)
	}
	w.Write(body)
}

// jsonType is the Content-Type of every JSON answer (shared, never
// modified).
var jsonType = []string{"application/json"}

// writeIndex answers 200 {"index": N}, the answer to every write, as
// json.Marshal of api.IndexResult would, without reflection.
func writeIndex(w http.ResponseWriter, idx uint64) {
	var buf [40]byte
	b := append(buf[:0], `{"index":`...)
	b = strconv.AppendUint(b, idx, 10)
	b = append(b, "}\n"...)
	writeBody(w, http.StatusOK, b)
}

// writeError answers status with {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeErrorBody(w, status, api.ErrorBody{Error: msg})
}

func writeErrorBody(w http.ResponseWriter, status int, eb api.ErrorBody) {
	if rec, ok := w.(*recorder); ok && status >= 500 {
		rec.errMsg = eb.Error
	}
	writeJSON(w, status, eb)
}

// recorder remembers the status of an answer for metrics and logs, and the
// message of a server-side error (never a 4xx message: those may quote
// values).
type recorder struct {
	http.ResponseWriter
	status int
	start  time.Time
	errMsg string
}

func newRecorder(w http.ResponseWriter) *recorder {
	return &recorder{ResponseWriter: w, status: http.StatusOK, start: time.Now()}
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) elapsed() time.Duration { return time.Since(r.start) }

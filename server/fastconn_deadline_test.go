package server

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestFastPathDeadlines checks the fast path's read deadlines on a
// connection that served a request before: a head that stalls is cut
// after ReadHeaderTimeout, a body that stalls after ReadTimeout, an idle
// connection after IdleTimeout (each far shorter than the others, so a
// deadline left unset shows as a connection still open when the test
// gives up).
func TestFastPathDeadlines(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
		}
		io.WriteString(w, "ok")
	})
	serve := func(header, read, idle time.Duration) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: h, ReadHeaderTimeout: header, ReadTimeout: read, IdleTimeout: idle}
		cs := newConnServer(h, hs, ln, slog.New(slog.NewTextHandler(io.Discard, nil)))
		done := make(chan error, 2)
		go func() { done <- cs.serve() }()
		go func() { done <- hs.Serve(cs.handoff) }() // a head it cannot read goes to net/http, as in Run
		t.Cleanup(func() {
			if err := shutdown(hs, cs, 10*time.Second); err != nil {
				t.Error(err)
			}
			<-done
			<-done
		})
		return ln.Addr().String()
	}
	const long = time.Minute
	cases := []struct {
		name               string
		header, read, idle time.Duration
		then               string // sent after one whole request, then the client stalls
	}{
		{"stalled head", 100 * time.Millisecond, long, long, "GET /v1/kv/a HTTP/1.1\r\nHo"},
		{"stalled body", long, 200 * time.Millisecond, long, "PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"},
		{"idle", long, long, 300 * time.Millisecond, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", serve(tc.header, tc.read, tc.idle))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second)) // the test gives up: the server never cut it
			br := bufio.NewReader(c)
			for range 3 { // whole requests first: the deadlines of a connection in use
				io.WriteString(c, "PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
			}
			io.WriteString(c, tc.then)
			// The server closes the connection (after an answer, for the
			// body): the reads end with EOF, not with the test's deadline.
			_, err = io.Copy(io.Discard, br)
			if err != nil {
				t.Fatalf("the server did not close the connection: %v", err)
			}
		})
	}
}

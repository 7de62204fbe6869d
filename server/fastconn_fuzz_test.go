package server

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
)

// FuzzFastRequest feeds hostile bytes to the fast path's request parser,
// as a connection would send them: it never panics; a request it takes is
// one the fast path serves (method, target, Host, a length), and its body
// yields at most that length; a request it refuses is handed to net/http
// with exactly the bytes read from the connection for it (fc.raw), so
// nothing is lost or invented at the handover.
func FuzzFastRequest(f *testing.F) {
	f.Add([]byte("GET /v1/kv/a HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /v1/kv/a HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("POST /v1/txn HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"))
	f.Add([]byte("PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
	f.Add([]byte("GET /v1/kv/a HTTP/1.1\r\nHost: x\r\nHost: y\r\nContent-Length: -1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rd := bytes.NewReader(data)
		fc := &fastConn{br: bufio.NewReaderSize(rd, 4<<10), ctx: context.Background(), remote: "127.0.0.1:1"}
		consumed := func() int { return len(data) - rd.Len() - fc.br.Buffered() }
		for range 8 {
			start := consumed()
			req, _, ok := fc.readRequest()
			if !ok {
				if !bytes.Equal(fc.raw, data[start:start+len(fc.raw)]) || consumed() != start+len(fc.raw) {
					t.Fatalf("handover bytes %q are not what was read from offset %d", fc.raw, start)
				}
				return
			}
			switch req.Method {
			case http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPost:
			default:
				t.Fatalf("took method %q", req.Method)
			}
			if req.Host == "" || req.ContentLength < 0 || req.URL == nil {
				t.Fatalf("took a request without Host, length or URL: %+v", req)
			}
			n, _ := io.Copy(io.Discard, req.Body)
			if n > req.ContentLength {
				t.Fatalf("body gave %d bytes, Content-Length %d", n, req.ContentLength)
			}
			if n < req.ContentLength {
				return // the connection ended inside the body
			}
		}
	})
}

package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The key path's connection server. Run serves every connection here
// first: a keep-alive connection whose requests are simple HTTP/1.1 GET,
// PUT or DELETE of /v1/kv/{key} or POST /v1/txn (a declared
// Content-Length, no query, no Expect, no Transfer-Encoding, no Upgrade)
// is served by this loop, which
// parses the request line and headers itself and calls the same handler
// (metrics, logs and answers are the handler's). The first request that is
// anything else — another path, a query, HTTP/1.0, a chunked body, a
// header this parser does not take, or a malformed request — hands the
// connection, with the bytes already read, to the net/http server for the
// rest of its life, so every other behaviour (and every error answer to a
// malformed request) is net/http's.
//
// Why: under serverbench on 2 shared cores net/http's per-request work (a
// goroutine for the background read, the header map and request copies,
// the context per request) was the largest part of the server's CPU per
// request, and every microsecond of it keeps a writer out of the next
// group commit (issue 16's profile).

const (
	// fastMaxHeader bounds the request line and headers the fast path
	// reads before it hands the connection over.
	fastMaxHeader = 8 << 10
	// fastMaxHeaders bounds the number of header lines.
	fastMaxHeaders = 64
	// fastMaxDrain is the unread body the fast path reads past after an
	// answer to keep the connection; beyond it the connection closes (as
	// net/http does).
	fastMaxDrain = 256 << 10
	// fastLinger and fastLingerBytes bound how long and how much a
	// connection closed with a body left unread goes on reading, so its
	// client gets the answer instead of a reset (closeWriteAndWait).
	fastLinger      = 500 * time.Millisecond
	fastLingerBytes = 64 << 20
	// fastKeepBody is the largest answer buffer a connection keeps for its
	// next answer.
	fastKeepBody = 64 << 10
	// fastMaxLines bounds the header lines a connection remembers
	// (fastConn.lines).
	fastMaxLines = 32
)

// fastServed counts the requests the fast path served (for tests).
var fastServed atomic.Int64

// connServer accepts the connections of Run.
type connServer struct {
	h   http.Handler
	hs  *http.Server // serves the connections handed over
	log *slog.Logger
	// handoff is the listener hs serves: connections handed over.
	handoff *chanListener

	mu      sync.Mutex
	conns   map[*fastConn]bool // true while serving a request
	closing bool
	ln      net.Listener
	done    chan struct{} // closed when conns becomes empty after closing
}

func newConnServer(h http.Handler, hs *http.Server, ln net.Listener, log *slog.Logger) *connServer {
	return &connServer{h: h, hs: hs, log: log, ln: ln, handoff: newChanListener(ln.Addr()),
		conns: map[*fastConn]bool{}, done: make(chan struct{})}
}

// serve accepts until the listener fails or shutdown closes it.
func (cs *connServer) serve() error {
	var delay time.Duration
	for {
		c, err := cs.ln.Accept()
		if err != nil {
			cs.mu.Lock()
			closing := cs.closing
			cs.mu.Unlock()
			if closing {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// As net/http: out of file descriptors and the like pass.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				cs.log.Warn("accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		fc := &fastConn{cs: cs, c: c}
		cs.mu.Lock()
		if cs.closing {
			cs.mu.Unlock()
			c.Close()
			continue
		}
		cs.conns[fc] = false
		cs.mu.Unlock()
		go fc.serve()
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// setActive marks fc as serving a request (or idle). It reports false if
// the server is shutting down and fc must close instead of starting one.
func (cs *connServer) setActive(fc *fastConn, active bool) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closing {
		return false
	}
	cs.conns[fc] = active
	return true
}

// forget removes fc (closed, or handed over).
func (cs *connServer) forget(fc *fastConn) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.conns, fc)
	if cs.closing && len(cs.conns) == 0 {
		select {
		case <-cs.done:
		default:
			close(cs.done)
		}
	}
}

// shutdown stops accepting, closes idle connections and waits for the
// requests in flight until ctx ends; then it closes what is left and
// returns ctx's error. The connections handed over are hs's to shut down.
func (cs *connServer) shutdown(ctx context.Context) error {
	cs.mu.Lock()
	cs.closing = true
	cs.ln.Close()
	for fc, active := range cs.conns {
		if !active {
			fc.c.Close()
		}
	}
	if len(cs.conns) == 0 {
		close(cs.done)
	}
	cs.mu.Unlock()
	select {
	case <-cs.done:
		return nil
	case <-ctx.Done():
	}
	cs.mu.Lock()
	for fc := range cs.conns {
		fc.c.Close()
		fc.cancel()
	}
	cs.mu.Unlock()
	return ctx.Err()
}

// fastConn is one connection served by the fast path.
type fastConn struct {
	cs     *connServer
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	ctx    context.Context // the requests' context: ends when the connection is cut
	cancel context.CancelFunc
	raw    []byte // the bytes of the current request's head, for a handover
	w      fastWriter
	remote string // c.RemoteAddr().String(), formatted once
	bm     batchMember
	unread bool // the connection closes with a request body left unread
	// deadline is the read deadline set on c (setDeadline).
	deadline time.Time

	// The current request, reused from one request to the next (the
	// handler is done with it when answer returns): tmpl holds the
	// connection's context, req is reset from it, and url, hdr and body
	// are req's. Allocating them per request was a third of the fast
	// path's allocations under serverbench's gets (issue 16's profile).
	tmpl http.Request
	req  http.Request
	url  url.URL
	hdr  http.Header
	body fastBody
	// lines remembers the header lines seen on the connection, parsed
	// and validated: a client sends the same few lines with every
	// request, and each cost two strings and a slice to parse. The
	// handler must not modify req.Header's values (none does).
	lines map[string]headerLine
}

// headerLine is one header line, parsed: its canonical name and its value
// (vals has length and capacity 1, shared by the requests that sent the
// line).
type headerLine struct {
	key  string
	vals []string
}

func (fc *fastConn) serve() {
	fc.ctx, fc.cancel = context.WithCancel(withBatchMember(context.Background(), &fc.bm))
	defer fc.cancel()
	handed := false
	defer func() {
		fc.bm.leave() // its client will not write again on it
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			fc.cs.log.Error("panic serving a request", "remote", fc.remote, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
		if !handed {
			if fc.unread {
				fc.closeWriteAndWait()
			}
			fc.c.Close()
		}
		fc.cs.forget(fc)
	}()
	fc.remote = fc.c.RemoteAddr().String()
	fc.br = bufio.NewReaderSize(fc.c, 4<<10)
	fc.bw = bufio.NewWriterSize(fc.c, 4<<10)
	fc.w.header = http.Header{}
	hs := fc.cs.hs
	for {
		// The idle deadline moves at most once a second (a connection
		// idle for IdleTimeout closes within a second, or a sixteenth
		// of it, before); the head's
		// and the body's deadlines are set only if a read is left to do:
		// a request that arrived whole in the buffer reads nothing more.
		// Three deadline updates per request (each a runtime timer
		// change) were 4% of the fast path's CPU under serverbench's
		// gets (issue 16's profile).
		now := time.Now()
		if idle := now.Add(hs.IdleTimeout); idle.Sub(fc.deadline) > min(time.Second, hs.IdleTimeout/16) {
			fc.setDeadline(idle)
		}
		if _, err := fc.br.Peek(1); err != nil {
			return
		}
		if !fc.cs.setActive(fc, true) {
			return
		}
		start := time.Now()
		if !fc.headBuffered() {
			fc.setDeadline(start.Add(hs.ReadHeaderTimeout))
		}
		req, closeAfter, ok := fc.readRequest()
		if !ok {
			handed = fc.handOver()
			return
		}
		if req.ContentLength > int64(fc.br.Buffered()) {
			fc.setDeadline(start.Add(hs.ReadTimeout))
		}
		keep := fc.answer(req, closeAfter)
		if !keep || !fc.cs.setActive(fc, false) {
			return
		}
	}
}

// setDeadline sets the connection's read deadline.
func (fc *fastConn) setDeadline(t time.Time) {
	fc.deadline = t
	fc.c.SetReadDeadline(t)
}

// headBuffered reports whether the buffer holds the whole head of the
// next request (up to its blank line), so reading it needs no read from
// the connection.
func (fc *fastConn) headBuffered() bool {
	b, _ := fc.br.Peek(fc.br.Buffered())
	return bytes.Contains(b, []byte("\r\n\r\n"))
}

// answer runs the handler on req and writes its answer. It reports whether
// the connection can serve another request.
func (fc *fastConn) answer(req *http.Request, closeAfter bool) bool {
	body := req.Body.(*fastBody)
	fastServed.Add(1)
	fc.w.reset()
	fc.cs.h.ServeHTTP(&fc.w, req)
	// Read what the handler left of the body, so the next request
	// starts at its first byte; too much, and the connection closes.
	if body.n > 0 {
		if body.n > fastMaxDrain || body.err != nil {
			closeAfter, fc.unread = true, true
		} else if _, err := io.CopyN(io.Discard, fc.br, body.n); err != nil {
			closeAfter = true
		}
	}
	if connClose(fc.w.header) {
		closeAfter = true
	}
	if err := fc.w.writeTo(fc.bw, closeAfter); err != nil {
		return false
	}
	// Flushed after every answer, as net/http does: a client may wait for
	// it before sending the rest of a pipelined request.
	if err := fc.bw.Flush(); err != nil {
		return false
	}
	if cap(fc.w.body) > fastKeepBody {
		fc.w.body = nil
	}
	return !closeAfter
}

// closeWriteAndWait ends a connection whose client may still be sending
// a body the server will not read (an answer such as 413 was written
// first): closing at once with unread bytes makes the kernel reset the
// connection, and a reset can reach the client before it read the answer,
// which it then never sees ("connection reset by peer"). As net/http does,
// shut the sending side, so the client reads the answer and its end, and
// go on reading (and dropping) what it sends for a bounded time and amount
// before the close.
func (fc *fastConn) closeWriteAndWait() {
	cw, ok := fc.c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	fc.c.SetReadDeadline(time.Now().Add(fastLinger))
	io.CopyN(io.Discard, fc.c, fastLingerBytes)
}

// connClose reports whether a handler asked to close the connection.
func connClose(h http.Header) bool {
	for _, v := range h["Connection"] {
		if strings.EqualFold(strings.TrimSpace(v), "close") {
			return true
		}
	}
	return false
}

// readRequest reads the head of the next request. It returns ok false if
// the request is not one the fast path serves (or the head could not be
// read): the caller hands the connection over with fc.raw.
func (fc *fastConn) readRequest() (req *http.Request, closeAfter, ok bool) {
	if fc.hdr == nil { // the connection's first request
		fc.hdr, fc.lines = http.Header{}, map[string]headerLine{}
		fc.tmpl = *(&http.Request{Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}).WithContext(fc.ctx)
	}
	fc.raw = fc.raw[:0]
	line, ok := fc.line()
	if !ok {
		return nil, false, false
	}
	method, rest, ok1 := strings.Cut(string(trimCRLF(line)), " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || proto != "HTTP/1.1" {
		return nil, false, false
	}
	switch {
	case method == http.MethodPost && target == "/v1/txn":
	case method == http.MethodGet || method == http.MethodPut || method == http.MethodDelete:
		if !fastTarget(target) {
			return nil, false, false
		}
	default:
		return nil, false, false
	}
	withBody := method == http.MethodPut || method == http.MethodPost
	hdr := fc.hdr
	clear(hdr)
	var host string
	cl := int64(-1)
	for n := 0; ; n++ {
		line, ok := fc.line()
		if !ok || n > fastMaxHeaders {
			return nil, false, false
		}
		line = trimCRLF(line)
		if len(line) == 0 {
			break
		}
		e, seen := fc.lines[string(line)] // no allocation for the lookup
		if !seen {
			name, value, found := bytes.Cut(line, []byte(":"))
			if !found || !validHeaderName(name) {
				return nil, false, false
			}
			v := string(bytes.TrimSpace(value))
			if !validHeaderValue(v) {
				return nil, false, false
			}
			e = headerLine{key: textproto.CanonicalMIMEHeaderKey(string(name)), vals: []string{v}}
			if len(fc.lines) < fastMaxLines {
				fc.lines[string(line)] = e
			}
		}
		key, v := e.key, e.vals[0]
		switch key {
		case "Host":
			if host != "" {
				return nil, false, false
			}
			host = v
			continue
		case "Content-Length":
			if cl >= 0 {
				return nil, false, false
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || v[0] == '+' {
				return nil, false, false
			}
			cl = n
		case "Connection":
			switch {
			case strings.EqualFold(v, "close"):
				closeAfter = true
			case strings.EqualFold(v, "keep-alive"):
			default:
				return nil, false, false
			}
		case "Transfer-Encoding", "Expect", "Upgrade", "Trailer", "Te":
			return nil, false, false
		}
		if prev, ok := hdr[key]; ok {
			hdr[key] = append(slices.Clip(prev), v) // never into e.vals
		} else {
			hdr[key] = e.vals
		}
	}
	if host == "" {
		return nil, false, false // net/http answers 400: HTTP/1.1 needs Host
	}
	if cl < 0 {
		if withBody {
			return nil, false, false // no length: net/http's rules
		}
		cl = 0
	}
	if !withBody && cl > 0 {
		return nil, false, false
	}
	if !requestURL(&fc.url, target) {
		return nil, false, false
	}
	fc.req = fc.tmpl
	req = &fc.req
	req.Method, req.URL, req.Header = method, &fc.url, hdr
	req.Host, req.RequestURI, req.RemoteAddr = host, target, fc.remote
	req.ContentLength = cl
	fc.body = fastBody{r: fc.br, n: cl}
	req.Body = &fc.body
	req.Close = closeAfter
	return req, closeAfter, true
}

// line reads one line of the head, keeping its bytes in fc.raw.
func (fc *fastConn) line() ([]byte, bool) {
	line, err := fc.br.ReadSlice('\n')
	fc.raw = append(fc.raw, line...)
	if err != nil || len(fc.raw) > fastMaxHeader {
		return nil, false
	}
	return line, true
}

func trimCRLF(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// fastTarget reports whether target is a key path the fast path serves:
// under /v1/kv/, of URL path characters and valid percent-escapes only (no
// query, no fragment), so that net/http would parse it to the same path.
func fastTarget(target string) bool {
	if !strings.HasPrefix(target, kvPrefix) {
		return false
	}
	for i := 0; i < len(target); i++ {
		c := target[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
		case c == '%':
			if i+2 >= len(target) || !isHex(target[i+1]) || !isHex(target[i+2]) {
				return false
			}
			i += 2
		default:
			return false
		}
	}
	return true
}

// requestURL sets u to the URL net/http parses from a target that
// fastTarget accepts (url.ParseRequestURI), without its allocations in
// the common case: a target with no percent-escape and no character that
// URL.EscapedPath would escape is its own Path.
func requestURL(u *url.URL, target string) bool {
	if strings.ContainsAny(target, "%!'()*") {
		p, err := url.ParseRequestURI(target)
		if err != nil {
			return false
		}
		*u = *p
		return true
	}
	*u = url.URL{Path: target}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// validHeaderName is RFC 7230's token.
func validHeaderName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters (net/http answers 400).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// handOver gives the connection, with the head bytes read, to the net/http
// server. It reports whether it did (false: the server is closing, and the
// connection is closed).
func (fc *fastConn) handOver() bool {
	if fc.bw.Flush() != nil { // the answers to pipelined requests before it
		return false
	}
	fc.c.SetReadDeadline(time.Time{})
	raw := append([]byte(nil), fc.raw...)
	hc := &handedConn{Conn: fc.c, r: io.MultiReader(bytes.NewReader(raw), fc.br)}
	return fc.cs.handoff.give(hc)
}

// handedConn is a connection whose first bytes were read already.
type handedConn struct {
	net.Conn
	r io.Reader
}

func (c *handedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// fastBody is the body of a fast-path request: the next n bytes.
type fastBody struct {
	r   *bufio.Reader
	n   int64
	err error
}

func (b *fastBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	if err == io.EOF && b.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.err = err
	}
	if b.n == 0 && err == nil {
		return n, nil
	}
	return n, err
}

func (b *fastBody) Close() error { return nil }

// fastWriter collects a handler's answer; the connection writes it whole.
type fastWriter struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        []byte
}

func (w *fastWriter) reset() {
	clear(w.header)
	w.status, w.wroteHeader, w.body = http.StatusOK, false, w.body[:0]
}

func (w *fastWriter) Header() http.Header { return w.header }

func (w *fastWriter) WriteHeader(code int) {
	if w.wroteHeader || code < 200 {
		return
	}
	w.status, w.wroteHeader = code, true
}

func (w *fastWriter) Write(p []byte) (int, error) {
	w.wroteHeader = true
	w.body = append(w.body, p...)
	return len(p), nil
}

// writeTo writes the answer: the status line, the handler's headers (with
// the framing set here: Content-Length is the body's), Date, and the body.
func (w *fastWriter) writeTo(bw *bufio.Writer, closeAfter bool) error {
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(w.status))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(w.status))
	bw.WriteString("\r\n")
	h := w.header
	delete(h, "Content-Length")
	delete(h, "Transfer-Encoding")
	delete(h, "Connection")
	if _, ok := h["Content-Type"]; !ok && len(w.body) > 0 {
		h["Content-Type"] = []string{http.DetectContentType(w.body)}
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	for k, vs := range h {
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(headerValue(v))
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("Content-Length: ")
	bw.WriteString(strconv.Itoa(len(w.body)))
	if closeAfter {
		bw.WriteString("\r\nConnection: close")
	}
	bw.WriteString("\r\n\r\n")
	_, err := bw.Write(w.body)
	return err
}

// headerValue replaces line breaks with spaces, as net/http does.
func headerValue(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		return strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	return v
}

// httpDate is the Date header's value, formatted once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.unix == now {
		return d.s
	}
	d := &dateValue{unix: now, s: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.s
}

type dateValue struct {
	unix int64
	s    string
}

var cachedDate atomic.Pointer[dateValue]

// chanListener is the listener of the net/http server: the connections
// the fast path hands over.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

// give hands c to the server, or closes it if the server has stopped.
func (l *chanListener) give(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		c.Close()
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

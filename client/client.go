package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kvtool/kvtool/api"
)

// Client talks to one kvtool server.
type Client struct {
	addr    string // as given, for messages
	base    string // scheme://host:port, no trailing slash
	hc      *http.Client
	retries int // times a write answered 503 with Retry-After is sent again
}

// DefaultWriteRetries is how many times a Client sends a write again after
// an answer 503 with Retry-After (a cluster without a quorum for now, or a
// server with too many request bodies in flight).
const DefaultWriteRetries = 4

// maxRetryWait caps the wait a Retry-After asks for.
const maxRetryWait = 5 * time.Second

// New returns a client for the server at addr: "HOST:PORT", or a URL
// "http://HOST:PORT". Requests are bounded only by their contexts.
func New(addr string) *Client {
	base := strings.TrimRight(addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{addr: addr, base: base, hc: &http.Client{Transport: newTransport()}, retries: DefaultWriteRetries}
}

// SetWriteRetries sets how many times a write answered 503 with
// Retry-After is sent again (0: never); call it before using the client.
func (c *Client) SetWriteRetries(n int) { c.retries = max(n, 0) }

// newTransport is a transport for many concurrent requests to one host. It
// ignores HTTP_PROXY: a kvtool server is reached directly.
func newTransport() *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &sniffConn{Conn: c}, nil
		},
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
	}
}

// Addr returns the address the client was created with.
func (c *Client) Addr() string { return c.addr }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// KeyPath returns the request path of key: /v1/kv/ followed by the key with
// every byte other than ASCII letters, digits, '-', '_' and '~' percent-
// encoded (so '/', '.', '%' and non-UTF-8 bytes all survive routing).
func KeyPath(key string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len("/v1/kv/") + len(key)*3)
	b.WriteString("/v1/kv/")
	for i := 0; i < len(key); i++ {
		c := key[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '~'
}

// Get returns the value of key and the applied index of the snapshot it was
// read from. An absent key is an error wrapping ErrNotFound (the index is
// still returned).
func (c *Client) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	return c.GetWith(ctx, key, ReadOptions{})
}

// ReadOptions qualify a read.
type ReadOptions struct {
	// Linearizable asks a cluster member for a value that includes every
	// write acknowledged before the request (?consistency=linearizable:
	// it waits for the leader's confirmation); without it the member
	// answers from its latest published state at once, which may lag.
	Linearizable bool
}

// GetWith is Get with options.
func (c *Client) GetWith(ctx context.Context, key string, o ReadOptions) ([]byte, uint64, error) {
	path := KeyPath(key)
	if o.Linearizable {
		path += "?consistency=linearizable"
	}
	resp, err := c.do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return nil, 0, err
	}
	defer drain(resp)
	idx := indexOf(resp)
	if resp.StatusCode == http.StatusNotFound {
		return nil, idx, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	if err := checkStatus(resp); err != nil {
		return nil, idx, err
	}
	val, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, idx, c.transportErr(err)
	}
	return val, idx, nil
}

// Put sets key to value and returns the index it committed at, once durable.
func (c *Client) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	return c.index(ctx, http.MethodPut, KeyPath(key), bytes.NewReader(value), "application/octet-stream")
}

// Delete removes key and returns the index it committed at, once durable.
// Deleting an absent key succeeds and changes nothing.
func (c *Client) Delete(ctx context.Context, key string) (uint64, error) {
	return c.index(ctx, http.MethodDelete, KeyPath(key), nil, "")
}

// Txn commits a transaction and returns its index once durable. A failed
// check is a *CheckFailedError.
func (c *Client) Txn(ctx context.Context, ops ...api.Op) (uint64, error) {
	body, err := json.Marshal(api.Txn{Ops: ops})
	if err != nil {
		return 0, fmt.Errorf("kvtool/client: encode the transaction: %w", err)
	}
	return c.TxnJSON(ctx, bytes.NewReader(body))
}

// TxnJSON commits a transaction given in the JSON form of the CLI contract,
// sent as is; the server validates it.
func (c *Client) TxnJSON(ctx context.Context, body io.Reader) (uint64, error) {
	return c.index(ctx, http.MethodPost, "/v1/txn", body, "application/json")
}

// Status returns the server's status.
func (c *Client) Status(ctx context.Context) (*api.Status, error) {
	var st api.Status
	return &st, c.getJSON(ctx, "/v1/status", &st)
}

// Hash returns the state hash and applied index of one snapshot.
func (c *Client) Hash(ctx context.Context) (*api.HashResult, error) {
	var h api.HashResult
	return &h, c.getJSON(ctx, "/v1/hash", &h)
}

// Rotate seals the active WAL segment and returns the new one.
func (c *Client) Rotate(ctx context.Context) (*api.RotateResult, error) {
	var r api.RotateResult
	return &r, c.doJSON(ctx, http.MethodPost, "/v1/admin/rotate", nil, "", &r)
}

// index sends a write and returns the index it applied at. The write
// carries a request ID of its own, and an answer 503 with Retry-After
// (no quorum for now, or a busy server) is retried with the same ID, up to
// the client's retries, after the wait the server asked for (at most
// maxRetryWait): a cluster applies the write at most once, and a single
// node gives Retry-After only when nothing changed.
func (c *Client) index(ctx context.Context, method, path string, body io.Reader, ctype string) (uint64, error) {
	payload, err := rewindable(body)
	if err != nil {
		return 0, fmt.Errorf("kvtool/client: read the request body: %w", err)
	}
	hdr := http.Header{api.RequestIDHeader: {newRequestID()}}
	for attempt := 0; ; attempt++ {
		resp, err := c.doHeader(ctx, method, path, payload(), ctype, hdr)
		if err != nil {
			return 0, err
		}
		wait, retry := retryAfter(resp)
		if !retry || attempt >= c.retries {
			var r api.IndexResult
			err := c.decodeAnswer(resp, method, path, &r)
			return r.Index, err
		}
		drain(resp)
		if err := sleepCtx(ctx, wait); err != nil {
			return 0, err
		}
	}
}

// rewindable returns a function giving body from its start on each call.
func rewindable(body io.Reader) (func() io.Reader, error) {
	if body == nil {
		return func() io.Reader { return nil }, nil
	}
	if br, ok := body.(*bytes.Reader); ok { // Put, and the CLI's transactions: no copy
		start := br.Size() - int64(br.Len())
		return func() io.Reader { br.Seek(start, io.SeekStart); return br }, nil
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	return func() io.Reader { return bytes.NewReader(b) }, nil
}

// retryAfter reports whether resp is a 503 that asks to be retried, and
// after how long.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	ra := resp.Header.Get("Retry-After")
	if resp.StatusCode != http.StatusServiceUnavailable || ra == "" {
		return 0, false
	}
	secs, err := strconv.Atoi(ra)
	if err != nil || secs < 0 {
		secs = 1
	}
	return min(time.Duration(secs)*time.Second, maxRetryWait), true
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newRequestID returns a random request ID (32 hex digits).
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	return c.doJSON(ctx, http.MethodGet, path, nil, "", v)
}

// doJSON sends a request and decodes a 200 answer into v.
func (c *Client) doJSON(ctx context.Context, method, path string, body io.Reader, ctype string, v any) error {
	resp, err := c.do(ctx, method, path, body, ctype)
	if err != nil {
		return err
	}
	return c.decodeAnswer(resp, method, path, v)
}

// decodeAnswer decodes a 200 answer into v, or returns the error answer;
// it closes the body.
func (c *Client) decodeAnswer(resp *http.Response, method, path string, v any) error {
	defer drain(resp)
	if err := checkStatus(resp); err != nil {
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("%s: decode the answer of %s %s: %w", c.addr, method, path, c.transportErr(err))
	}
	return nil
}

// Do sends one request to the server and returns its answer, of any
// status, for a caller that reads a body of its own (a stream). Failing to
// reach the server is an error wrapping ErrNoServer; an answer from
// something that is not a kvtool server is a *NotKvtoolError.
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, ctype string) (*http.Response, error) {
	return c.do(ctx, method, path, body, ctype)
}

// CheckStatus turns a non-200 answer of Do into an *Error or a
// *CheckFailedError, reading (not closing) its body.
func CheckStatus(resp *http.Response) error { return checkStatus(resp) }

// do sends one request. Failing to reach the server is an error wrapping
// ErrNoServer, an answer without the kvtool Server header a
// *NotKvtoolError; an answer of any status is returned as is.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, ctype string) (*http.Response, error) {
	return c.doHeader(ctx, method, path, body, ctype, nil)
}

// doHeader is do with extra request headers.
func (c *Client) doHeader(ctx context.Context, method, path string, body io.Reader, ctype string, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.addr, unwrapURL(err))
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	var conn *sniffConn
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { conn, _ = i.Conn.(*sniffConn) },
	}))
	resp, err := c.hc.Do(req)
	if err != nil && conn != nil && conn.transferPort() {
		return nil, &NotKvtoolError{Addr: c.addr,
			What: "it is a kvtool transfer port, which does not answer HTTP; --addr needs the server's HTTP --listen address"}
	}
	if err != nil {
		return nil, c.transportErr(err)
	}
	if !api.IsKvtool(resp.Header) {
		defer drain(resp)
		return nil, c.notKvtool(resp)
	}
	return resp, nil
}

// notKvtool describes the answer of something that is not a kvtool server.
func (c *Client) notKvtool(resp *http.Response) error {
	what := "it answered " + resp.Status
	if s := resp.Header.Get(api.ServerHeader); s != "" {
		what += ", Server: " + s
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		what += ", " + ct
	}
	return &NotKvtoolError{Addr: c.addr, Status: resp.StatusCode, What: what}
}

// transportErr explains a failure to talk to the server, in the user's
// terms: never the request URL net/http puts in front of its errors.
func (c *Client) transportErr(err error) error {
	err = unwrapURL(err)
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w at %s (connection refused)", ErrNoServer, c.addr)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.As(err, &dnsErr):
		return fmt.Errorf("%w at %s: %v", ErrNoServer, c.addr, err)
	case strings.Contains(err.Error(), "malformed HTTP"):
		return &NotKvtoolError{Addr: c.addr, What: "it does not answer HTTP"}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s closed the connection without an HTTP answer: is it a kvtool server's --listen address (not a transfer port)?", c.addr)
	}
	return fmt.Errorf("kvtool server at %s: %w", c.addr, err)
}

// transferMagic starts everything a kvtool transfer port sends (it is
// format.MagicTransfer; the client does not import the format package).
const transferMagic = "KVT-XFR\x00"

// sniffConn remembers the first bytes the server sent on a connection, so
// that a failed request can tell a kvtool transfer port, which greets in
// its own protocol, from a server that is down or not kvtool.
type sniffConn struct {
	net.Conn
	mu    sync.Mutex
	first []byte
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if k := len(transferMagic) - len(c.first); k > 0 {
			c.first = append(c.first, p[:min(n, k)]...)
		}
		c.mu.Unlock()
	}
	return n, err
}

// transferPort reports whether the server greeted like a transfer port.
func (c *sniffConn) transferPort() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.first) >= 4 && strings.HasPrefix(transferMagic, string(c.first))
}

// unwrapURL returns the error inside a *url.Error: its "Get \"http://...\":"
// prefix names a request, which means nothing to the user.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// checkStatus turns a non-200 answer into an *Error or *CheckFailedError.
func checkStatus(resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var eb api.ErrorBody
	if json.Unmarshal(raw, &eb) != nil || eb.Error == "" {
		eb.Error = strings.TrimSpace(string(raw))
		if eb.Error == "" {
			eb.Error = http.StatusText(resp.StatusCode)
		}
	}
	if resp.StatusCode == http.StatusConflict && eb.Op != nil {
		return &CheckFailedError{Op: *eb.Op, Key: eb.Key, Reason: eb.Reason, Message: eb.Error}
	}
	return &Error{Status: resp.StatusCode, Message: eb.Error}
}

// drain reads what is left of a body (so the connection is reused) and
// closes it.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
}

func indexOf(resp *http.Response) uint64 {
	n, _ := strconv.ParseUint(resp.Header.Get(api.IndexHeader), 10, 64)
	return n
}

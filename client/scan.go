package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/kvtool/kvtool/api"
)

// ScanOptions select a key range, as store.ScanOptions. Empty fields do not
// restrict; Limit 0 means every key in the range.
type ScanOptions struct {
	Prefix string
	Start  string // keys >= Start
	End    string // keys < End
	Limit  int
}

// PageSize is the number of pairs Scan asks for per request from a server
// that cannot stream.
const PageSize = 1000

// Scan calls fn for each pair in the range in key order until fn returns
// false. It streams the whole range from one snapshot (GET /v1/scan
// ?format=jsonl), handing each pair to fn as it arrives, so memory does not
// grow with the range. From a server that cannot stream it fetches pages of
// at most PageSize pairs instead: each page is read from one snapshot, but
// a scan of several pages may see writes made between them.
func (c *Client) Scan(ctx context.Context, o ScanOptions, fn func(api.Pair) bool) error {
	err := c.scanLines(ctx, o, fn)
	if !errors.Is(err, errNoStream) {
		return err
	}
	return c.scanPages(ctx, o, fn)
}

// errNoStream says the server does not know ?format=jsonl.
var errNoStream = errors.New("kvtool/client: the server cannot stream a scan")

// scanQuery is the query of a scan request.
func scanQuery(o ScanOptions, limit int, format string) string {
	q := url.Values{}
	for k, v := range map[string]string{"prefix": o.Prefix, "start": o.Start, "end": o.End, "format": format} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q.Encode()
}

// scanLines streams the range as JSON lines.
func (c *Client) scanLines(ctx context.Context, o ScanOptions, fn func(api.Pair) bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // fn may stop early: do not read the rest
	resp, err := c.do(ctx, http.MethodGet, "/v1/scan?"+scanQuery(o, o.Limit, "jsonl"), nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := checkStatus(resp); err != nil {
		var e *Error
		if errors.As(err, &e) && e.Status == http.StatusBadRequest && strings.Contains(e.Message, `unknown scan parameter "format"`) {
			return errNoStream
		}
		return err
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var p api.Pair
		err := dec.Decode(&p)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("kvtool/client: read the scan: %w", c.transportErr(err))
		}
		if !fn(p) {
			return nil
		}
	}
}

// scanPages fetches the range page by page.
func (c *Client) scanPages(ctx context.Context, o ScanOptions, fn func(api.Pair) bool) error {
	for n := 0; o.Limit <= 0 || n < o.Limit; {
		want := PageSize
		if o.Limit > 0 {
			want = min(want, o.Limit-n)
		}
		page, more, err := c.scanPage(ctx, o, want)
		if err != nil {
			return err
		}
		for _, p := range page {
			if !fn(p) {
				return nil
			}
		}
		n += len(page)
		if !more || len(page) == 0 {
			return nil
		}
		o.Start = page[len(page)-1].Key + "\x00" // the smallest key after it
	}
	return nil
}

// scanPage fetches one page of at most limit pairs, and whether the range
// holds more after it.
func (c *Client) scanPage(ctx context.Context, o ScanOptions, limit int) ([]api.Pair, bool, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/scan?"+scanQuery(o, limit, ""), nil, "")
	if err != nil {
		return nil, false, err
	}
	defer drain(resp)
	if err := checkStatus(resp); err != nil {
		return nil, false, err
	}
	var page []api.Pair
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil, false, fmt.Errorf("%s: decode a scan page: %w", c.addr, c.transportErr(err))
	}
	return page, resp.Header.Get(api.MoreHeader) == "true", nil
}

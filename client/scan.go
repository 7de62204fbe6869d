package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// MoreHeader is set to "true" on a scan answer that stopped before the end
// of the requested range (at the limit or at the server's byte budget).
const MoreHeader = "X-Kvtool-More"

// ScanOptions select a key range, as store.ScanOptions. Empty fields do not
// restrict; Limit 0 means every key in the range.
type ScanOptions struct {
	Prefix string
	Start  string // keys >= Start
	End    string // keys < End
	Limit  int
}

// PageSize is the number of pairs Scan asks for per request.
const PageSize = 1000

// Scan calls fn for each pair in the range in key order until fn returns
// false. It fetches pages of at most PageSize pairs; each page is read from
// one snapshot, but a scan of several pages may see writes made between
// them.
func (c *Client) Scan(ctx context.Context, o ScanOptions, fn func(Pair) bool) error {
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
func (c *Client) scanPage(ctx context.Context, o ScanOptions, limit int) ([]Pair, bool, error) {
	q := url.Values{}
	for k, v := range map[string]string{"prefix": o.Prefix, "start": o.Start, "end": o.End} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", strconv.Itoa(limit))
	resp, err := c.do(ctx, http.MethodGet, "/v1/scan?"+q.Encode(), nil, "")
	if err != nil {
		return nil, false, err
	}
	defer drain(resp)
	if err := checkStatus(resp); err != nil {
		return nil, false, err
	}
	var page []Pair
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil, false, fmt.Errorf("%s: decode a scan page: %w", c.addr, c.transportErr(err))
	}
	return page, resp.Header.Get(MoreHeader) == "true", nil
}

package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/server"
)

// keyWrite is one acknowledged single-key write.
type keyWrite struct {
	key, value string
	del        bool
	index      uint64
}

// writeKey sends PUT (or DELETE, value "") of key on hc and returns the
// acknowledged index.
func writeKey(ctx context.Context, hc *http.Client, base, key, value string, del bool) (uint64, error) {
	method, body := http.MethodPut, io.Reader(strings.NewReader(value))
	if del {
		method, body = http.MethodDelete, nil
	}
	req, err := http.NewRequestWithContext(ctx, method, base+"/v1/kv/"+key, body)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s %s: %d %s", method, key, resp.StatusCode, b)
	}
	var ir api.IndexResult
	if err := json.Unmarshal(b, &ir); err != nil {
		return 0, fmt.Errorf("%s %s: answer %q: %v", method, key, b, err)
	}
	return ir.Index, nil
}

// TestWriteBatcherMergesConcurrentWrites has several connections put and
// delete keys at once. Every write is acknowledged with the index of a log
// entry that holds it (key and value, or the delete), the state holds
// every acknowledged write, and there are fewer entries than writes: the
// batcher merged concurrent writes into shared entries.
func TestWriteBatcherMergesConcurrentWrites(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	const conns, each = 8, 40
	acked := make([][]keyWrite, conns)
	errs := make([]error, conns)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for g := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxConnsPerHost: 1} // one connection: one batch member
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr}
			for i := range each {
				w := keyWrite{key: fmt.Sprintf("g%d-k%d", g, i), value: fmt.Sprintf("v%d-%d", g, i)}
				if i%5 == 4 { // delete the previous key
					w = keyWrite{key: fmt.Sprintf("g%d-k%d", g, i-1), del: true}
				}
				idx, err := writeKey(ctx, hc, ts.srv.URL, w.key, w.value, w.del)
				if err != nil {
					errs[g] = err
					return
				}
				w.index = idx
				acked[g] = append(acked[g], w)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	// What each log entry holds: key -> value, or nil for a delete.
	entries := map[uint64]map[string][]byte{}
	r, err := ts.st.Log().NewReader(1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Type != format.FrameWALTxn {
			continue
		}
		effects := map[string][]byte{}
		err = format.DecodeTxnRecord(e.Data, func(kind uint8, key, value []byte) {
			if kind == format.TxnDelete {
				effects[string(key)] = nil
			} else {
				effects[string(key)] = append([]byte{}, value...)
			}
		})
		if err != nil {
			t.Fatalf("entry %d: %v", e.Index, err)
		}
		entries[e.Index] = effects
	}

	snap := ts.st.Snapshot()
	writes := 0
	for _, ws := range acked {
		for i, w := range ws {
			writes++
			got, ok := entries[w.index][w.key]
			switch {
			case !ok:
				t.Errorf("%s acknowledged at index %d, whose entry does not hold it (%d keys)", w.key, w.index, len(entries[w.index]))
			case w.del && got != nil:
				t.Errorf("delete of %s acknowledged at index %d, whose entry puts %q", w.key, w.index, got)
			case !w.del && string(got) != w.value:
				t.Errorf("put of %s acknowledged at index %d, whose entry holds %q", w.key, w.index, got)
			}
			deleted := i+1 < len(ws) && ws[i+1].del && ws[i+1].key == w.key
			val, ok := snap.Get(w.key)
			switch {
			case w.del || deleted:
				if ok {
					t.Errorf("%s deleted (acknowledged) but holds %q", w.key, val)
				}
			case !ok || string(val) != w.value:
				t.Errorf("%s: state holds %q (present %v), acknowledged %q", w.key, val, ok, w.value)
			}
		}
	}
	if len(entries) >= writes {
		t.Errorf("%d log entries for %d concurrent writes: none were merged", len(entries), writes)
	}
	t.Logf("%d writes in %d log entries", writes, len(entries))
}

// TestWriteBatcherIdleMember: a connection that wrote once and then stays
// open without writing does not hold up the writes of another connection
// (the batcher stops waiting for it), nor does one that closed.
func TestWriteBatcherIdleMember(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	idleTr := &http.Transport{MaxConnsPerHost: 1}
	defer idleTr.CloseIdleConnections()
	if _, err := writeKey(ctx, &http.Client{Transport: idleTr}, ts.srv.URL, "idle", "1", false); err != nil {
		t.Fatal(err)
	}
	closedTr := &http.Transport{MaxConnsPerHost: 1}
	if _, err := writeKey(ctx, &http.Client{Transport: closedTr}, ts.srv.URL, "closed", "1", false); err != nil {
		t.Fatal(err)
	}
	closedTr.CloseIdleConnections()
	tr := &http.Transport{MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	last := uint64(0)
	for i := range 50 {
		idx, err := writeKey(ctx, hc, ts.srv.URL, fmt.Sprintf("busy-%d", i), "x", false)
		if err != nil {
			t.Fatalf("write %d while another connection idles: %v", i, err)
		}
		if idx <= last {
			t.Fatalf("write %d acknowledged at %d, after a write at %d", i, idx, last)
		}
		last = idx
	}
}

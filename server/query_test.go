package server_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
)

// queryRows runs q on the server and returns its header, rows and end.
func queryRows(t testing.TB, c *client.Client, req client.QueryRequest) (client.QueryHeader, [][]any, client.QueryEnd, error) {
	t.Helper()
	var h client.QueryHeader
	var rows [][]any
	end, err := c.Query(context.Background(), req, func(qh client.QueryHeader) error { h = qh; return nil },
		func(vals []any) error { rows = append(rows, append([]any(nil), vals...)); return nil })
	return h, rows, end, err
}

const (
	bankAccounts = 50
	bankInitial  = 1000
)

func acct(i int) string { return fmt.Sprintf("acct:%03d", i) }

// Under a stream of transfers, every query reads one snapshot: the total
// over all accounts is never off, within a query that reads kv twice, and
// the wal table ends at the snapshot's index.
func TestQueryBankSnapshot(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	init := &store.Txn{}
	for i := range bankAccounts {
		init.Ops = append(init.Ops, store.Op{Kind: store.OpPut, Key: acct(i), Value: []byte(strconv.Itoa(bankInitial))})
	}
	if _, err := ts.st.Commit(context.Background(), init); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var commits atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for !stop.Load() {
				a, b := r.IntN(bankAccounts), r.IntN(bankAccounts)
				amt := int64(1 + r.IntN(100))
				_, err := ts.st.Commit(context.Background(), &store.Txn{Ops: []store.Op{
					{Kind: store.OpAdd, Key: acct(a), Delta: -amt},
					{Kind: store.OpAdd, Key: acct(b), Delta: amt},
					{Kind: store.OpCheck, Key: acct(a), Check: store.CheckMin, Min: 0},
				}})
				if err != nil && !errors.Is(err, store.ErrCheckFailed) {
					t.Error(err)
					return
				}
				commits.Add(1)
			}
		}()
	}
	const total = bankAccounts * bankInitial
	q := fmt.Sprintf(`SELECT
		(SELECT sum(CAST(value AS INTEGER)) FROM kv WHERE key >= 'acct:' AND key < 'acct;'),
		(SELECT sum(CAST(value AS INTEGER)) FROM kv WHERE key LIKE 'acct:%%'),
		(SELECT count(*) FROM kv WHERE CAST(value AS INTEGER) < 0),
		(SELECT max("index") FROM wal)`)
	for i := 0; i < 10 || commits.Load() < 50; i++ {
		h, rows, _, err := queryRows(t, ts.c, client.QueryRequest{SQL: q})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 {
			t.Fatalf("rows %v", rows)
		}
		r := rows[0]
		if r[0] != int64(total) || r[1] != int64(total) || r[2] != int64(0) || r[3] != int64(h.AppliedIndex) {
			t.Fatalf("query at index %d: totals %v and %v, %v negative, wal ends at %v; want %d, %d, 0, %d",
				h.AppliedIndex, r[0], r[1], r[2], r[3], total, total, h.AppliedIndex)
		}
		if i > 10_000 {
			t.Fatal("the writers made no progress")
		}
	}
	stop.Store(true)
	wg.Wait()
}

func TestQueryErrorsAndLimits(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	ts.mustPut("a", "1")
	ts.mustPut("b", "\xff")

	h, rows, end, err := queryRows(t, ts.c, client.QueryRequest{SQL: "SELECT key, value, 1.5, NULL FROM kv ORDER BY key DESC"})
	if err != nil || len(rows) != 2 || end.Rows != 2 || end.Truncated {
		t.Fatalf("rows %v end %+v err %v", rows, end, err)
	}
	if fmt.Sprint(h.Columns) != "[key value 1.5 NULL]" || h.AppliedIndex != 2 {
		t.Errorf("header %+v", h)
	}
	if string(rows[0][1].([]byte)) != "\xff" || rows[1][1] != "1" || rows[0][2] != 1.5 || rows[0][3] != nil {
		t.Errorf("rows %#v", rows)
	}

	for sql, kind := range map[string]string{
		"SELEC 1":                      client.QueryKindSQL,
		"SELECT * FROM nope":           client.QueryKindSQL,
		"DELETE FROM kv":               client.QueryKindReadOnly,
		"ATTACH ':memory:' AS x":       client.QueryKindReadOnly,
		"SELECT load_extension('x')":   client.QueryKindReadOnly,
		"SELECT * FROM kv_at(100)":     client.QueryKindNotCovered,
		"SELECT * FROM kv_at":          client.QueryKindSQL,
		"PRAGMA case_sensitive_like=1": client.QueryKindReadOnly,
	} {
		_, _, _, err := queryRows(t, ts.c, client.QueryRequest{SQL: sql})
		var qe *client.QueryError
		if !errors.As(err, &qe) || qe.Kind != kind {
			t.Errorf("%s: %v; want a %s error", sql, err, kind)
		}
	}

	// The row limit ends an endless query.
	endless := "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"
	_, rows, end, err = queryRows(t, ts.c, client.QueryRequest{SQL: endless, MaxRows: 1000})
	if err != nil || len(rows) != 1000 || !end.Truncated || rows[999][0] != int64(1000) {
		t.Errorf("row limit: %d rows, end %+v, err %v", len(rows), end, err)
	}
	// The time limit ends a query that never returns a row...
	_, _, _, err = queryRows(t, ts.c, client.QueryRequest{SQL: "SELECT count(*) FROM (" + endless + ")", TimeoutMS: 100})
	var qe *client.QueryError
	if !errors.As(err, &qe) || qe.Kind != client.QueryKindTimeout {
		t.Errorf("time limit before the first row: %v", err)
	}
	// ... and one that streams rows for ever.
	_, _, end, err = queryRows(t, ts.c, client.QueryRequest{SQL: endless, TimeoutMS: 100, MaxRows: 1 << 40})
	if !errors.As(err, &qe) || qe.Kind != client.QueryKindTimeout || end.Rows == 0 {
		t.Errorf("time limit while streaming: %v (end %+v)", err, end)
	}
}

// A query stops when its client goes away.
func TestQueryStopsWhenClientLeaves(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	ended := make(chan error, 1)
	server.SetQueryTestHook(func(err error) { ended <- err })
	defer server.SetQueryTestHook(nil)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err := ts.c.Query(ctx, client.QueryRequest{SQL: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"},
		func(client.QueryHeader) error { return nil },
		func([]any) error {
			if n++; n == 5000 {
				cancel()
			}
			return nil
		})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("client: %v", err)
	}
	select {
	case err := <-ended:
		if err == nil {
			t.Error("the server's query ended without an error after its client left")
		}
	case <-time.After(time.Minute):
		t.Fatal("the server's query still runs a minute after its client left")
	}
}

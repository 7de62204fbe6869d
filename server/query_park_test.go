package server_test

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
)

// park is the SQL function kvtool_test_park(x, at): it returns x, and when
// x = at it tells the test (parked) and waits until the test lets it go
// (release). A query calling it on every row of a scan stops mid-scan,
// inside SQLite, with its cursors open, for as long as the test wants.
var park struct {
	mu      sync.Mutex
	parked  chan struct{}
	release chan struct{}
}

// The function is registered before any test runs: SQLite gives it to the
// connections opened after, and the server keeps its sessions' connections.
func init() {
	sqlite.MustRegisterScalarFunction("kvtool_test_park", 2, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		if fmt.Sprint(args[0]) == fmt.Sprint(args[1]) {
			park.mu.Lock()
			parked, release := park.parked, park.release
			park.parked = nil // park once
			park.mu.Unlock()
			if parked != nil {
				close(parked)
				<-release
			}
		}
		return args[0], nil
	})
}

func registerPark(t *testing.T) (parked, release chan struct{}) {
	parked, release = make(chan struct{}), make(chan struct{})
	park.mu.Lock()
	park.parked, park.release = parked, release
	park.mu.Unlock()
	t.Cleanup(func() {
		park.mu.Lock()
		park.parked, park.release = nil, nil
		park.mu.Unlock()
	})
	return parked, release
}

// liveness bounds how long the test waits for something that must happen
// without the parked query's help (a commit, a query, the park itself). It
// is a deadline against a hang, never a measure of speed: nothing here
// asserts on how long anything took.
const liveness = time.Minute

// A full-table query parked mid-scan holds nothing writers take: while it
// is parked inside SQLite with its cursors open on the kv table, writers
// commit every one of their transactions (and another query runs), and
// when it resumes it still reads the one snapshot it started on: the bank
// total is exact and the wal table ends at that snapshot's index, though
// the files have moved on. The writers' throughput beside such a query is
// BenchmarkWritersDuringQuery's.
func TestQueryParkedMidScanDoesNotHoldUpWriters(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	init := &store.Txn{}
	for i := range bankAccounts {
		init.Ops = append(init.Ops, store.Op{Kind: store.OpPut, Key: acct(i), Value: []byte(strconv.Itoa(bankInitial))})
	}
	if _, err := ts.st.Commit(context.Background(), init); err != nil {
		t.Fatal(err)
	}
	const parkRow = 20 // the scan parks on acct(parkRow)
	parked, release := registerPark(t)
	var releaseOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	defer letGo() // on a failure too, so the server can stop

	type result struct {
		h    client.QueryHeader
		rows [][]any
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// A scan of every account; the wal subquery is evaluated after it.
		h, rows, _, err := queryRows(t, ts.c, client.QueryRequest{SQL: `SELECT
			sum(CAST(value AS INTEGER)), count(*), max(kvtool_test_park(key, '` + acct(parkRow) + `')),
			(SELECT max("index") FROM wal)
			FROM kv`})
		done <- result{h, rows, err}
	}()
	select {
	case <-parked:
	case r := <-done:
		t.Fatalf("the query ended without reaching the park: %v %v", r.rows, r.err)
	case <-time.After(liveness):
		t.Fatal("the query did not reach the park")
	}
	parkedAt := ts.st.Snapshot().Index()

	// Writers commit while the query is parked.
	const writers, perWriter = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				// From the accounts the scan has passed to those it has
				// not: a scan reading anything but its snapshot would
				// count the money twice.
				k := w*perWriter + i
				a, b := k%parkRow, parkRow+k%(bankAccounts-parkRow)
				ctx, cancel := context.WithTimeout(context.Background(), liveness)
				_, err := ts.c.Txn(ctx, api.AddOp(acct(a), -1), api.AddOp(acct(b), 1), api.CheckMinOp(acct(a), 0))
				cancel()
				if err != nil {
					errs <- fmt.Errorf("writer %d, transaction %d, while a query is parked: %w", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	after := ts.st.Snapshot().Index()
	if after != parkedAt+writers*perWriter {
		t.Fatalf("index %d after %d transactions from %d", after, writers*perWriter, parkedAt)
	}
	// Another query runs meanwhile, and sees the writers' state.
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	var other [][]any
	oh := client.QueryHeader{}
	_, err := ts.c.Query(ctx, client.QueryRequest{SQL: "SELECT sum(CAST(value AS INTEGER)) FROM kv"},
		func(h client.QueryHeader) error { oh = h; return nil },
		func(v []any) error { other = append(other, append([]any(nil), v...)); return nil })
	cancel()
	if err != nil || len(other) != 1 || other[0][0] != int64(bankAccounts*bankInitial) || oh.AppliedIndex != after {
		t.Fatalf("a query beside the parked one: %v at %d, %v; want %d at %d", other, oh.AppliedIndex, err, bankAccounts*bankInitial, after)
	}

	letGo()
	var r result
	select {
	case r = <-done:
	case <-time.After(liveness):
		t.Fatal("the parked query did not finish once let go")
	}
	if r.err != nil || len(r.rows) != 1 {
		t.Fatalf("parked query: %v %v", r.rows, r.err)
	}
	row := r.rows[0]
	want := []any{int64(bankAccounts * bankInitial), int64(bankAccounts), acct(bankAccounts - 1), int64(r.h.AppliedIndex)}
	if fmt.Sprint(row) != fmt.Sprint(want) {
		t.Errorf("parked query at index %d: %v; want %v", r.h.AppliedIndex, row, want)
	}
	if r.h.AppliedIndex > parkedAt {
		t.Errorf("the parked query read index %d, past %d where it parked", r.h.AppliedIndex, parkedAt)
	}
}

package query

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvtool/kvtool/internal/dirtest"
)

// readQueries read every table.
var readQueries = []string{
	"SELECT * FROM kv ORDER BY key DESC LIMIT 5",
	"SELECT count(*) FROM kv WHERE key LIKE 'k1%'",
	"SELECT * FROM kv_at(25)",
	`SELECT * FROM wal WHERE "index" > 10`,
	"SELECT sum(delta) FROM wal",
	"SELECT * FROM segments", "SELECT * FROM checkpoints", "SELECT * FROM deltas",
	"SELECT * FROM manifest", "SELECT * FROM leases", "SELECT * FROM members",
	"EXPLAIN QUERY PLAN SELECT * FROM kv WHERE key = 'a'",
	"PRAGMA table_info(kv)",
}

// writeQueries must all be refused as read-only.
var writeQueries = []string{
	"INSERT INTO kv VALUES ('a', 'b')", "UPDATE kv SET value = 1", "DELETE FROM kv",
	"CREATE TABLE t(x)", "CREATE TEMP TABLE t(x)", "CREATE TEMP VIEW v AS SELECT 1",
	"DROP TABLE kv", "ALTER TABLE kv RENAME TO kv2", "CREATE VIRTUAL TABLE t USING kvtool_kv(s1)",
	"ATTACH 'x.db' AS x", "ATTACH ':memory:' AS x", "DETACH x",
	"SELECT load_extension('/tmp/x.so')", "VACUUM", "VACUUM INTO '/tmp/kvtool-query-test.db'",
	"PRAGMA query_only = 0", "PRAGMA writable_schema = 1", "PRAGMA case_sensitive_like = 1", "PRAGMA journal_mode = WAL",
	"ANALYZE", "WITH t AS (SELECT 1) INSERT INTO kv SELECT 'a', 'b' FROM t",
}

// Every table only reads: the directory is byte-for-byte unchanged after
// every read and every refused write, and writes, ATTACH and
// load_extension are refused as read-only.
func TestReadOnly(t *testing.T) {
	st := openStore(t)
	h := newHistory(t, st)
	h.write(20)
	if _, err := st.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.write(20)
	if _, err := st.Delta(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.write(5)
	dir := st.Dir()
	// Beside the running store, which holds the directory's lock.
	s := openDir(t, dir, Options{})
	for _, q := range readQueries {
		if _, err := queryAll(s, q); err != nil {
			t.Errorf("%s beside a running store: %v", q, err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	before := dirtest.Snapshot(t, dir)
	s = openDir(t, dir, Options{})
	for _, q := range readQueries {
		if _, err := queryAll(s, q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
		dirtest.RequireUnchanged(t, dir, before, q)
	}
	for _, q := range writeQueries {
		_, err := queryAll(s, q)
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s: %v; want a read-only refusal", q, err)
		}
		dirtest.RequireUnchanged(t, dir, before, q)
	}
	if _, err := os.Stat("/tmp/kvtool-query-test.db"); err == nil {
		t.Errorf("VACUUM INTO wrote a file")
	}
	// The session still works after the refusals.
	if got := all(t, s, "SELECT count(*) FROM kv"); len(got) != 1 {
		t.Errorf("count after refusals: %q", got)
	}
}

// A directory no one may write to is read like any other.
func TestReadOnlyDirectory(t *testing.T) {
	st := openStore(t)
	newHistory(t, st).write(10)
	dir := st.Dir()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	chmodAll(t, dir, 0o555, 0o444)
	t.Cleanup(func() { chmodAll(t, dir, 0o755, 0o644) })
	before := dirtest.Snapshot(t, dir)
	s := openDir(t, dir, Options{})
	for _, q := range readQueries {
		if strings.Contains(q, "kv_at(25)") {
			q = "SELECT * FROM kv_at(5)"
		}
		if _, err := queryAll(s, q); err != nil {
			t.Errorf("%s on a read-only directory: %v", q, err)
		}
	}
	dirtest.RequireUnchanged(t, dir, before, "queries")
}

func chmodAll(t *testing.T, dir string, dirMode, fileMode os.FileMode) {
	t.Helper()
	var paths []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			paths = append(paths, p)
		}
		return nil
	})
	// Files first, then directories deepest first, so a directory is
	// changed after what is in it.
	for i := len(paths) - 1; i >= 0; i-- {
		fi, err := os.Lstat(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		mode := fileMode
		if fi.IsDir() {
			mode = dirMode
		}
		if err := os.Chmod(paths[i], mode); err != nil {
			t.Fatal(err)
		}
	}
}

// Cancelling a query's context stops it, both inside a table scan and in
// SQLite's own work after the first row.
func TestCancelStopsQuery(t *testing.T) {
	st := openStore(t)
	var kvs []string
	for i := range 300 {
		kvs = append(kvs, "k"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26)), "1")
	}
	put(t, st, kvs...)
	s := openSession(t, st, Options{})

	// A count over a cross join: one long step reading the tables.
	ctx, cancel := context.WithCancel(context.Background())
	rowsSeen := 0
	testHookRow = func() {
		if rowsSeen++; rowsSeen == 10_000 {
			cancel()
		}
	}
	defer func() { testHookRow = nil }()
	_, err := s.Query(ctx, "SELECT count(*) FROM kv a, kv b, kv c")
	testHookRow = nil
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cross join after cancel: %v; want context.Canceled", err)
	}

	// Pure SQL after a first row: only an interrupt stops it.
	ctx, cancel = context.WithCancel(context.Background())
	rows, err := s.Query(ctx, `SELECT 1 UNION ALL SELECT count(*) FROM
		(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c)`)
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatalf("no first row: %v", rows.Err())
	}
	cancel()
	done := make(chan error, 1)
	go func() {
		rows.Next()
		done <- rows.Err()
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("endless query after cancel: %v; want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the endless query did not stop within a minute of its cancel")
	}
	rows.Close()
	// The session is usable after.
	if got := all(t, s, "SELECT count(*) FROM kv"); len(got) != 1 || got[0] != "300" {
		t.Errorf("count after cancel: %q", got)
	}
}

package query

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kvtool/kvtool/internal/sharedtmp"
	"github.com/kvtool/kvtool/store"
)

// The speed benchmarks: the same queries on the kv and wal tables of a
// live snapshot, and on the same rows loaded into ordinary in-memory
// SQLite tables (what a user would build by hand; BenchmarkLoadTables is
// that load, to be added to the table's times). N keys (default 1M,
// KVTOOL_QUERY_BENCH_KEYS to change) in 1000 prefixes, written 1000 keys
// per transaction. Building the store and loading the tables take most of
// a run; the queries need little time each:
//
//	go test -run '^$' -bench 'Query$' -benchtime 1s ./query/

const benchPrefixes = 1000

// benchKeys is read once: a lookup's key is drawn in the loop, and
// parsing the variable there made garbage (a syntax error per key when it
// is unset) that both sides' collections paid for.
var benchKeys = sync.OnceValue(func() int {
	if n, err := strconv.Atoi(os.Getenv("KVTOOL_QUERY_BENCH_KEYS")); err == nil && n >= benchPrefixes {
		return n
	}
	return 1_000_000
})

func benchKey(i int) string {
	per := benchKeys() / benchPrefixes
	return fmt.Sprintf("p%03d:%07d", i/per, i%per)
}

type benchData struct {
	st   *store.Store
	n    int
	last uint64 // last log index
}

var (
	benchOnce sync.Once
	bench     benchData
)

// benchStore builds the store once for every benchmark of the run.
func benchStore(b *testing.B) benchData {
	benchOnce.Do(func() {
		dir, err := sharedtmp.Dir("kvtool-query-bench")
		if err != nil {
			b.Fatal(err)
		}
		st, err := store.Open(store.Options{Dir: dir, Create: true, SegmentSize: 256 << 20})
		if err != nil {
			b.Fatal(err)
		}
		n := benchKeys()
		for i := 0; i < n; i += 1000 {
			txn := &store.Txn{}
			for j := i; j < min(n, i+1000); j++ {
				txn.Ops = append(txn.Ops, store.Op{Kind: store.OpPut, Key: benchKey(j), Value: []byte(strconv.Itoa(j * 7 % 100000))})
			}
			if bench.last, err = st.Commit(context.Background(), txn); err != nil {
				b.Fatal(err)
			}
		}
		bench.st, bench.n = st, n
	})
	if bench.st == nil {
		b.Fatal("no benchmark store")
	}
	return bench
}

// loadTables copies the snapshot's rows and the WAL's into ordinary
// tables: kvt(key PRIMARY KEY, value) and walt("index", key, value) with
// an index on "index".
func loadTables(b *testing.B, d benchData) *sql.DB {
	b.Helper()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	s, err := Open(context.Background(), Source{Dir: d.st.Dir(), Snapshot: d.st.Snapshot()}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	exec := func(q string, args ...any) {
		if _, err := db.Exec(q, args...); err != nil {
			b.Fatal(err)
		}
	}
	exec("CREATE TABLE kvt(key TEXT PRIMARY KEY, value) WITHOUT ROWID")
	exec(`CREATE TABLE walt("index" INTEGER, key TEXT, value)`)
	copyRows := func(q, ins string) {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		stmt, err := tx.Prepare(ins)
		if err != nil {
			b.Fatal(err)
		}
		rows, err := s.Query(context.Background(), q)
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
			if _, err := stmt.Exec(rows.Values()...); err != nil {
				b.Fatal(err)
			}
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		rows.Close()
		stmt.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	copyRows("SELECT key, value FROM kv", "INSERT INTO kvt VALUES (?, ?)")
	copyRows(`SELECT "index", key, value FROM wal`, "INSERT INTO walt VALUES (?, ?, ?)")
	exec(`CREATE INDEX walt_index ON walt("index")`)
	return db
}

var (
	loadedOnce sync.Once
	loaded     *sql.DB
)

// BenchmarkLoadTables is the baseline's fixed cost: loading the rows into
// ordinary tables before the first query can run.
func BenchmarkLoadTables(b *testing.B) {
	d := benchStore(b)
	b.ResetTimer()
	defer reportCPU(b)()
	for i := 0; i < b.N; i++ {
		db := loadTables(b, d)
		db.Close()
	}
}

// benchQueries are the measured queries; %s is the kv table, %s the wal
// table (kv, wal or kvt, walt).
func benchQueries(d benchData) map[string]func(r *rand.Rand) (string, []any) {
	return map[string]func(r *rand.Rand) (string, []any){
		"point": func(r *rand.Rand) (string, []any) {
			return "SELECT value FROM %[1]s WHERE key = ?", []any{benchKey(r.IntN(d.n))}
		},
		"prefix": func(r *rand.Rand) (string, []any) {
			return "SELECT key, value FROM %[1]s WHERE key LIKE ?", []any{fmt.Sprintf("p%03d:%%", r.IntN(benchPrefixes))}
		},
		"prefix-glob": func(r *rand.Rand) (string, []any) {
			return "SELECT key, value FROM %[1]s WHERE key GLOB ?", []any{fmt.Sprintf("p%03d:*", r.IntN(benchPrefixes))}
		},
		"prefix-range": func(r *rand.Rand) (string, []any) {
			p := r.IntN(benchPrefixes)
			return "SELECT key, value FROM %[1]s WHERE key >= ? AND key < ?", []any{fmt.Sprintf("p%03d:", p), fmt.Sprintf("p%03d;", p)}
		},
		"count": func(*rand.Rand) (string, []any) { return "SELECT count(*) FROM %[1]s", nil },
		"group-by-prefix": func(*rand.Rand) (string, []any) {
			return "SELECT substr(key, 1, 4) AS p, count(*), sum(CAST(value AS INTEGER)) FROM %[1]s GROUP BY p", nil
		},
		"wal-join": func(*rand.Rand) (string, []any) {
			return `SELECT count(*), sum(CAST(k.value AS INTEGER)) FROM %[2]s AS w JOIN %[1]s AS k ON k.key = w.key WHERE w."index" > ?`,
				[]any{int64(d.last - 1)} // the last transaction: 1000 keys
		},
	}
}

// BenchmarkQuery runs each query to its last row on the kv tables (vtab)
// and on the loaded tables (table), one after the other in every
// iteration, so that the ratio (vtab/table) comes from one run under the
// same load however the machine's load drifts. It reports each side's time
// per query (vtab-ns, table-ns), the time to the vtab's first row
// (first-row-ns), and what loading the tables took (load-ns), which the
// table's user pays before its first query (first/load: the first row's
// time as a share of it). It also reports each side's CPU time on the
// benchmark's own thread (vtab-cpu-ns, table-cpu-ns, cpu-vtab/table): on a
// shared machine the wall time also counts waits for a core, which the
// thread's CPU time does not (the collector's work on other threads is in
// neither).
func BenchmarkQuery(b *testing.B) {
	d := benchStore(b)
	sess, err := Open(context.Background(), Source{Dir: d.st.Dir(), Snapshot: d.st.Snapshot()}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	loadedOnce.Do(func() {
		start := time.Now()
		loaded = loadTables(b, d)
		loadTime = time.Since(start)
	})
	for _, name := range slices.Sorted(maps.Keys(benchQueries(d))) {
		q := benchQueries(d)[name]
		b.Run(name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			r := rand.New(rand.NewPCG(1, 2))
			var vt, tt, first time.Duration
			var cpu sideCPU
			for i := 0; i < b.N; i++ {
				text, args := q(r)
				// Each side's text is made before its clock starts.
				vtext, ttext := fmt.Sprintf(text, "kv", "wal"), fmt.Sprintf(text, "kvt", "walt")
				cpu.start()
				start := time.Now()
				rows, err := sess.Query(context.Background(), vtext, args...)
				if err != nil {
					b.Fatal(err)
				}
				for n := 0; rows.Next(); n++ {
					if n == 0 {
						first += time.Since(start)
					}
				}
				if err := rows.Err(); err != nil {
					b.Fatal(err)
				}
				rows.Close()
				vt += time.Since(start)
				cpu.mid() // off both clocks
				mid := time.Now()
				trows, err := loaded.Query(ttext, args...)
				if err != nil {
					b.Fatal(err)
				}
				for trows.Next() {
				}
				if err := trows.Err(); err != nil {
					b.Fatal(err)
				}
				trows.Close()
				tt += time.Since(mid)
				cpu.end()
			}
			reportSides(b, vt, tt)
			cpu.report(b)
			b.ReportMetric(float64(first.Nanoseconds())/float64(b.N), "first-row-ns")
			// The issue's "first row before a loaded table could even be
			// built": under 1 for every query.
			b.ReportMetric(float64(first)/float64(b.N)/float64(loadTime), "first/load")
		})
	}
	benchPoint(b, d, sess)
}

var loadTime time.Duration // how long loadTables took for BenchmarkQuery

// reportSides reports the vtab's and the table's time per query, their
// ratio, and the tables' load time.
func reportSides(b *testing.B, vt, tt time.Duration) {
	b.ReportMetric(float64(vt.Nanoseconds())/float64(b.N), "vtab-ns")
	b.ReportMetric(float64(tt.Nanoseconds())/float64(b.N), "table-ns")
	b.ReportMetric(float64(vt)/float64(tt), "vtab/table")
	b.ReportMetric(float64(loadTime.Nanoseconds()), "load-ns")
}

// sideCPU sums the benchmark thread's CPU time of each side: start, mid
// (the vtab's query is done) and end (the table's is) mark one iteration.
type sideCPU struct{ at, vtab, table time.Duration }

func (c *sideCPU) start() { c.at = threadCPU() }

func (c *sideCPU) mid() {
	now := threadCPU()
	c.vtab += now - c.at
	c.at = now
}

func (c *sideCPU) end() { c.table += threadCPU() - c.at }

func (c *sideCPU) report(b *testing.B) {
	if c.table == 0 {
		return // not measured here
	}
	b.ReportMetric(float64(c.vtab.Nanoseconds())/float64(b.N), "vtab-cpu-ns")
	b.ReportMetric(float64(c.table.Nanoseconds())/float64(b.N), "table-cpu-ns")
	b.ReportMetric(float64(c.vtab)/float64(c.table), "cpu-vtab/table")
}

// benchPoint is the point lookup with prepared statements, the way a
// program doing many lookups runs them, on both sides in turn.
func benchPoint(b *testing.B, d benchData, sess *Session) {
	b.Run("point-prepared", func(b *testing.B) {
		stmt, err := sess.Prepare(context.Background(), "SELECT value FROM kv WHERE key = ?")
		if err != nil {
			b.Fatal(err)
		}
		defer stmt.Close()
		tstmt, err := loaded.Prepare("SELECT value FROM kvt WHERE key = ?")
		if err != nil {
			b.Fatal(err)
		}
		defer tstmt.Close()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		r := rand.New(rand.NewPCG(1, 2))
		var vt, tt time.Duration
		var cpu sideCPU
		for i := 0; i < b.N; i++ {
			key := benchKey(r.IntN(d.n))
			cpu.start()
			start := time.Now()
			rows, err := stmt.Query(context.Background(), key)
			if err != nil {
				b.Fatal(err)
			}
			if !rows.Next() {
				b.Fatal(rows.Err())
			}
			rows.Close()
			vt += time.Since(start)
			cpu.mid() // off both clocks
			mid := time.Now()
			trows, err := tstmt.Query(key)
			if err != nil {
				b.Fatal(err)
			}
			if !trows.Next() {
				b.Fatal(trows.Err())
			}
			trows.Close()
			tt += time.Since(mid)
			cpu.end()
		}
		reportSides(b, vt, tt)
		cpu.report(b)
	})
}

// reportCPU reports the CPU time the process used per op (cpu-ns/op), all
// threads and the collector included: on a shared, loaded machine it
// varies less than the wall time. Call the function it returns at the end.
func reportCPU(b *testing.B) func() {
	start := cpuNow()
	return func() { b.ReportMetric(float64((cpuNow()-start).Nanoseconds())/float64(b.N), "cpu-ns/op") }
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkOpenSession is what a server pays per query before it runs:
// a session over a snapshot, opened and closed.
func BenchmarkOpenSession(b *testing.B) {
	st, err := store.Open(store.Options{Dir: b.TempDir(), Create: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	defer reportCPU(b)()
	for i := 0; i < b.N; i++ {
		s, err := Open(context.Background(), Source{Dir: st.Dir(), Snapshot: st.Snapshot()}, Options{})
		if err != nil {
			b.Fatal(err)
		}
		rows, err := s.Query(context.Background(), "SELECT count(*) FROM kv")
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
		}
		rows.Close()
		s.Close()
	}
}

// BenchmarkPoint is the point lookup alone (no loaded table beside it),
// as a text query (its statement kept by the session) and prepared, with
// the CPU time per lookup (cpu-ns/op): on a loaded machine the wall time
// also counts the wait for a core.
//
//	go test -run '^$' -bench 'Point$' -benchtime 200000x ./query/
func BenchmarkPoint(b *testing.B) {
	d := benchStore(b)
	sess, err := Open(context.Background(), Source{Dir: d.st.Dir(), Snapshot: d.st.Snapshot()}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	const q = "SELECT value FROM kv WHERE key = ?"
	stmt, err := sess.Prepare(context.Background(), q)
	if err != nil {
		b.Fatal(err)
	}
	defer stmt.Close()
	run := map[string]func(key string) (*Rows, error){
		"text":     func(key string) (*Rows, error) { return sess.Query(context.Background(), q, key) },
		"prepared": func(key string) (*Rows, error) { return stmt.Query(context.Background(), key) },
	}
	for _, name := range []string{"text", "prepared"} {
		b.Run(name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			keys := make([]string, 1<<16)
			for i := range keys {
				keys[i] = benchKey(r.IntN(d.n))
			}
			b.ResetTimer()
			defer reportCPU(b)()
			for i := 0; i < b.N; i++ {
				rows, err := run[name](keys[i%len(keys)])
				if err != nil {
					b.Fatal(err)
				}
				if !rows.Next() {
					b.Fatal("no row", rows.Err())
				}
				rows.Close()
			}
		})
	}
}

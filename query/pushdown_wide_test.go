package query

import (
	"database/sql"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/store"
)

// A wider randomized check of the pushdown that takes constraints over
// from SQLite (exactFor): keys that look like numbers, differ in case or
// only in bytes SQLite's UTF-8 decoder folds, hold NUL, 0x7f and 0xff
// and are prefixes of each other; WHERE clauses that mix =, IS, IN, the
// ranges and BETWEEN (either operand order), LIKE (ESCAPE too), GLOB
// (classes), NOT, OR, COLLATE, CAST, numbers of every kind, NULL and
// BLOBs, as literals and as parameters of every type. Every query runs on
// kv with and without pushdown, on kv_at at the last index, and on an
// ordinary table, and each statement runs again with other arguments
// (a plan is made without the values: planWithoutValues).

var wideKeyParts = []string{
	"a", "A", "b", "B", "z", "Z", "0", "1", "5", "9", "10", "9", "1e3", "-0", " 1", "1.0", "0.5", "-3", "1e+20",
	"9223372036854775807", "1e308", ".", "+", "-", "e", "E", "_", "%", "*", "?", "[", "]", "^", "!", "@", "`", "{",
	"\x00", "\x7f", "\xff", "\x80", "é", "É", "\xc3\xa9", "\xe0\x83\xa9", "\xc1\xa1", "\xf0\x9f\x98\x80", "~",
}

var widePrefixes = []string{"", "", "", "a", "A", "ab", "aB", "1", "10", "-", " ", "é", "\xe0\x83\xa9", "\x00", "\x7f", "\xff", "k:", "K:", "abcdefghij"}

func wideKey(r *rand.Rand) string {
	k := widePrefixes[r.IntN(len(widePrefixes))]
	for n := r.IntN(3); n >= 0; n-- {
		k += wideKeyParts[r.IntN(len(wideKeyParts))]
	}
	return k
}

// wideGen makes random queries over table T with their arguments.
type wideGen struct {
	r    *rand.Rand
	keys []string
	args []any
}

// frag is a key fragment: a real key's prefix, a real key with a byte
// changed, or random.
func (g *wideGen) frag() string {
	k := g.keys[g.r.IntN(len(g.keys))]
	switch g.r.IntN(4) {
	case 0:
		return k
	case 1:
		return k[:g.r.IntN(len(k)+1)]
	case 2:
		if k != "" {
			b := []byte(k)
			b[g.r.IntN(len(b))] += byte(g.r.IntN(3)) - 1
			return string(b)
		}
	}
	return wideKey(g.r)
}

// val is a right-hand side: a literal or a parameter of any type.
func (g *wideGen) val() string {
	switch g.r.IntN(14) {
	case 0, 1, 2:
		return g.param(g.frag())
	case 3:
		return lit(g.frag())
	case 4:
		return g.param([]any{int64(g.r.IntN(20) - 5), int64(1) << 62, int64(-1) << 63, 0.5, -0.0, 1e308, 1e3, 9.999999999999999e22, 1.0, -3.25}[g.r.IntN(10)])
	case 5:
		return []string{"10", "9", "-0", "1e3", "1e308", "-1e308", "0.5", "9223372036854775807", "-9223372036854775808", "18446744073709551616", "1.0", "+5", "0x10"}[g.r.IntN(13)]
	case 6:
		return g.param([]any{nil, []byte{}, []byte("a"), []byte{0xff}, []byte(g.frag())}[g.r.IntN(5)])
	case 7:
		return []string{"NULL", "x''", "x'61'", "x'ff'", fmt.Sprintf("x'%x'", g.frag())}[g.r.IntN(5)]
	case 8:
		return "CAST(" + g.val() + " AS " + []string{"TEXT", "INTEGER", "REAL", "BLOB", "NUMERIC"}[g.r.IntN(5)] + ")"
	case 9:
		return g.val() + " COLLATE " + []string{"NOCASE", "RTRIM", "BINARY"}[g.r.IntN(3)]
	case 10:
		f := []string{"+%s", "-%s", "lower(%s)", "upper(%s)", "%s + 0", "substr(%s, 1)"}[g.r.IntN(6)]
		return fmt.Sprintf(f, g.param(g.frag()))
	case 11:
		return g.param(g.frag()) + " || " + lit(g.frag())
	case 12:
		return "(SELECT " + g.param(g.frag()) + ")"
	}
	return lit(strings.ToUpper(g.frag()))
}

func (g *wideGen) param(v any) string {
	g.args = append(g.args, v)
	return "?" + strconv.Itoa(len(g.args))
}

// pattern is a LIKE (glob false) or GLOB pattern: a fragment with its case
// changed and wildcards anywhere.
func (g *wideGen) pattern(glob bool) string {
	var b strings.Builder
	wild := []string{"%", "_", "%%", "_%"}
	if glob {
		wild = []string{"*", "?", "[a-c]", "[^a]", "[]]", "[0-9]*", "**", "[", "[^"}
	}
	for n := g.r.IntN(3); n >= 0; n-- {
		p := g.frag()
		for i := 0; i < len(p); i++ {
			c := p[i]
			if !glob && isLetter(c) && g.r.IntN(2) == 0 {
				c ^= 'a' - 'A'
			}
			b.WriteByte(c)
		}
		if g.r.IntN(3) > 0 {
			b.WriteString(wild[g.r.IntN(len(wild))])
		}
	}
	return b.String()
}

func (g *wideGen) patternOperand(glob bool) string {
	p := g.pattern(glob)
	switch g.r.IntN(5) {
	case 0:
		return lit(p)
	case 1:
		return g.val()
	}
	return g.param(p)
}

// pred is a predicate on key (or value), nested up to depth.
func (g *wideGen) pred(depth int) string {
	n := 16
	if depth <= 0 {
		n = 13
	}
	col := "key"
	if g.r.IntN(12) == 0 {
		col = []string{"key COLLATE NOCASE", "key COLLATE RTRIM", "CAST(key AS INTEGER)", "+key", "value"}[g.r.IntN(5)]
	}
	switch g.r.IntN(n) {
	case 0:
		return col + " = " + g.val()
	case 1:
		return col + []string{" IS ", " IS NOT ", " != "}[g.r.IntN(3)] + g.val()
	case 2:
		switch g.r.IntN(3) {
		case 0:
			return fmt.Sprintf("%s IN (SELECT %s UNION SELECT %s)", col, g.val(), g.val())
		case 1:
			return fmt.Sprintf("%s IN (SELECT %s FROM T WHERE key < %s)", col, []string{"key", "value", "key || ''", "CAST(key AS INTEGER)"}[g.r.IntN(4)], g.val())
		}
		return fmt.Sprintf("%s IN (%s, %s, %s)", col, g.val(), g.val(), g.val())
	case 3, 4:
		return col + []string{" > ", " >= ", " < ", " <= "}[g.r.IntN(4)] + g.val()
	case 5:
		return g.val() + []string{" > ", " >= ", " < ", " <= "}[g.r.IntN(4)] + col
	case 6:
		return fmt.Sprintf("%s %sBETWEEN %s AND %s", col, map[bool]string{true: "NOT "}[g.r.IntN(4) == 0], g.val(), g.val())
	case 7:
		return fmt.Sprintf("%s >= %s AND %s < %s", col, g.val(), col, g.val())
	case 8, 9:
		return col + map[bool]string{true: " NOT"}[g.r.IntN(5) == 0] + " LIKE " + g.patternOperand(false)
	case 10:
		return col + " LIKE " + g.patternOperand(false) + " ESCAPE '" + []string{"!", "\\", "a", "%"}[g.r.IntN(3)] + "'"
	case 11:
		return col + map[bool]string{true: " NOT"}[g.r.IntN(5) == 0] + " GLOB " + g.patternOperand(true)
	case 12:
		return []string{"1", "key IS NULL", "value LIKE '%1%'", "like(" + g.patternOperand(false) + ", key)", "glob(" + g.patternOperand(true) + ", key)"}[g.r.IntN(5)]
	case 13:
		return "NOT (" + g.pred(depth-1) + ")"
	case 14:
		return "(" + g.pred(depth-1) + " OR " + g.pred(depth-1) + ")"
	}
	return g.pred(depth-1) + " AND " + g.pred(depth-1)
}

// query is a random query over T and whether its rows come in a defined
// order.
func (g *wideGen) query() (string, bool) {
	g.args = nil
	where := g.pred(2)
	switch g.r.IntN(8) {
	case 0:
		return "SELECT count(*), min(key), max(key) FROM T WHERE " + where, true
	case 1:
		return "SELECT count(*) FROM T WHERE " + where, true
	case 2:
		// A LEFT JOIN whose table is not otherwise used is dropped when
		// the table says it returns one row (uniqueEq).
		op := []string{">", "<=", "LIKE", "GLOB", "=", "IN"}[g.r.IntN(6)]
		rhs := fmt.Sprintf([]string{"a.key || %s", "%s", "CAST(a.key AS INTEGER) + %s"}[g.r.IntN(3)], g.val())
		if op == "IN" {
			rhs = "(a.key, " + rhs + ")"
		}
		return fmt.Sprintf("SELECT a.key%s FROM (SELECT key FROM T WHERE %s) AS a %s T AS b ON b.key %s %s ORDER BY 1, 2 LIMIT 30",
			[]string{", b.key", ", 0"}[g.r.IntN(2)], where, []string{"JOIN", "LEFT JOIN"}[g.r.IntN(2)], op, rhs), true
	}
	q := "SELECT key, value FROM T WHERE " + where
	switch g.r.IntN(5) {
	case 0:
		return q, false
	case 1:
		return q + " ORDER BY key", true
	case 2:
		return q + " ORDER BY key DESC", true
	case 3:
		return q + fmt.Sprintf(" ORDER BY key DESC LIMIT %d OFFSET %d", g.r.IntN(20)+1, g.r.IntN(4)), true
	}
	return q + fmt.Sprintf(" ORDER BY key LIMIT %d OFFSET %d", g.r.IntN(20)+1, g.r.IntN(4)), true
}

// rebind gives the same parameters new values, of any type.
func (g *wideGen) rebind(args []any) []any {
	out := slices.Clone(args)
	for i := range out {
		if g.r.IntN(3) > 0 {
			saved := g.args
			g.args = nil
			for len(g.args) == 0 {
				g.val()
			}
			out[i] = g.args[0]
			g.args = saved
		}
	}
	return out
}

func wideRounds() int { return envRounds("KVTOOL_QUERY_WIDE_ROUNDS", 500) }

func TestPushdownWide(t *testing.T) {
	seed := rand.Uint64()
	if s, err := strconv.ParseUint(os.Getenv("KVTOOL_QUERY_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (KVTOOL_QUERY_SEED), %d rounds (KVTOOL_QUERY_WIDE_ROUNDS)", seed, wideRounds())
	r := rand.New(rand.NewPCG(seed, 2))
	st, states := wideStore(t, r, 300)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range states[1].pairs {
			if !yield(k) {
				return
			}
		}
	})
	on := openSession(t, st, Options{})
	off := openSession(t, st, Options{NoPushdown: true})
	mid, last := states[0], states[1]
	midRef, lastRef := refDB(t, mid.pairs), refDB(t, last.pairs)
	atMid, atLast := fmt.Sprintf("kv_at(%d)", mid.index), fmt.Sprintf("kv_at(%d)", last.index)
	g := &wideGen{r: r, keys: keys}
	for i := 0; i < wideRounds(); i++ {
		q, ordered := g.query()
		args := g.args
		for run := 0; run < 3; run++ {
			compareWide(t, lastRef, q, args, ordered, []wideView{{off, "kv"}, {on, "kv"}, {on, atLast}})
			if run == 0 {
				compareWide(t, midRef, q, args, ordered, []wideView{{off, atMid}, {on, atMid}})
			}
			args = g.rebind(args)
		}
	}
}

// wideState is the store's state at a log index.
type wideState struct {
	pairs map[string][]byte
	index uint64
}

// wideStore fills a store with n random keys, then changes, deletes and
// adds some, and returns it with the state before and after the changes.
func wideStore(t *testing.T, r *rand.Rand, n int) (*store.Store, [2]wideState) {
	st := openStore(t)
	pairs := map[string][]byte{}
	var kvs []string
	add := func(k, v string) {
		pairs[k] = []byte(v)
		kvs = append(kvs, k, v)
	}
	for _, k := range []string{"10", "9", "1e3", "-0", " 1", "1", "1.0", "a", "A", "ab", "aB", "\x00", "\xff", "a\x00", "a\x00b"} {
		add(k, k)
	}
	for len(pairs) < n {
		if k := wideKey(r); k != "" && pairs[k] == nil {
			add(k, []string{strconv.Itoa(r.IntN(1000)), k, "\xff", strings.ToUpper(k)}[r.IntN(4)])
		}
	}
	var states [2]wideState
	states[0] = wideState{pairs: maps.Clone(pairs), index: put(t, st, kvs...)}
	kvs = nil
	for len(kvs) < n/5 {
		if k := wideKey(r); k != "" {
			add(k, "new")
		}
	}
	states[1].index = put(t, st, kvs...)
	for k := range pairs {
		if r.IntN(10) == 0 {
			states[1].index = del(t, st, k)
			delete(pairs, k)
		}
	}
	states[1].pairs = pairs
	return st, states
}

// wideView is a table of a session that holds the reference's rows.
type wideView struct {
	s   *Session
	tab string
}

// compareWide runs q (over table T) on each view and on the reference
// table, and fails t unless all agree.
func compareWide(t *testing.T, ref *sql.DB, q string, args []any, ordered bool, views []wideView) {
	t.Helper()
	want, err := refRows(ref, onTable(q, "ref"), args...)
	if err != nil {
		// SQLite refuses the query itself (an ESCAPE of two characters):
		// the tables must refuse it too.
		for _, v := range views {
			if _, kerr := queryAll(v.s, onTable(q, v.tab), args...); kerr == nil {
				t.Fatalf("%s %q: the reference fails (%v), %s does not", q, args, err, v.tab)
			}
		}
		return
	}
	if !ordered {
		slices.Sort(want)
	}
	for _, v := range views {
		kq := onTable(q, v.tab)
		got, err := queryAll(v.s, kq, args...)
		if err != nil {
			t.Fatalf("%s %q (pushdown %v): %v", kq, args, !v.s.opts.NoPushdown, err)
		}
		if !ordered {
			slices.Sort(got)
		}
		if !slices.Equal(got, want) {
			plan, _ := queryAll(v.s, "EXPLAIN QUERY PLAN "+kq, args...)
			t.Fatalf("%s %q (pushdown %v, plan %q):\n got %q\nwant %q (an ordinary table)", kq, args, !v.s.opts.NoPushdown, plan, got, want)
		}
	}
}

// An equality whose value is not TEXT when the statement runs (a CAST to
// a number compares key as a number: '0' and '-0' both equal 0) is no
// point lookup: the scan walks every key, so the order it reports it
// consumed must be the order it walks in.
func TestEqualityOfNumberKeepsOrder(t *testing.T) {
	on, off, ref := threeWays(t, []string{"-0", "0", "0.0", "10", "10\x00x", "a"}, constValue("1"))
	for _, c := range []struct {
		q    string
		args []any
	}{
		{"SELECT key FROM T WHERE key = CAST(? AS INTEGER) ORDER BY key DESC", []any{"A-0"}},
		{"SELECT key FROM T WHERE key = CAST(? AS REAL) ORDER BY key DESC LIMIT 2", []any{"10.5"}},
		{"SELECT key FROM T WHERE key = CAST(? AS NUMERIC) ORDER BY key DESC", []any{"0"}},
		{"SELECT key FROM T WHERE key = CAST(? AS INTEGER) ORDER BY key", []any{"0"}},
	} {
		compareThree(t, on, off, ref, c.q, c.args, true)
	}
}

// SQLite drops a LEFT JOIN whose table is not otherwise used when the
// table says a lookup returns at most one row (SQLITE_INDEX_SCAN_UNIQUE):
// an equality that compares key as a number may match several.
func TestEqualityOfNumberIsNotUnique(t *testing.T) {
	on, off, ref := threeWays(t, []string{"-0", "0", "0.0", "a"}, constValue("0"))
	for _, q := range []string{
		"SELECT a.key FROM T AS a LEFT JOIN T AS b ON b.key = CAST(a.value AS INTEGER) ORDER BY 1",
		"SELECT a.key FROM T AS a LEFT JOIN T AS b ON b.key = CAST(? AS INTEGER) ORDER BY 1",
	} {
		compareThree(t, on, off, ref, q, []any{"0"}[:strings.Count(q, "?")], true)
	}
}

// key IN (SELECT x ...) compares key with x's values as numbers when x
// has a numeric affinity; a table that takes the constraint has SQLite
// check each row it returns against the value as TEXT instead, so such a
// constraint stays SQLite's (constraintDetail.numericIn), and one over a
// TEXT column is still a lookup per value.
func TestInSubqueryComparesAsSQLiteDoes(t *testing.T) {
	on, off, ref := threeWays(t, []string{"1", " 1", "1.0", "01", "2", "1e+20", "1.0e+20", "a", "b"}, keyValue)
	for _, c := range []struct {
		q    string
		args []any
	}{
		{"SELECT key FROM T WHERE key IN (SELECT CAST(?1 AS REAL))", []any{1.0}},
		{"SELECT key FROM T WHERE key IN (SELECT CAST(?1 AS INTEGER)) ORDER BY key DESC", []any{"1"}},
		{"SELECT key FROM T WHERE key IN (SELECT CAST(?1 AS NUMERIC) UNION SELECT CAST(?2 AS REAL))", []any{"1e20", 2.0}},
		{"SELECT key FROM T WHERE key IN (SELECT ?1 UNION SELECT CAST(?2 AS REAL))", []any{"a", 1.0}},
		{"SELECT key FROM T WHERE key IN (SELECT (SELECT CAST(?1 AS INTEGER)))", []any{"1"}},
		{"SELECT key FROM T WHERE key IN (SELECT ?1) ORDER BY key", []any{1.0}},
		{"SELECT key FROM T WHERE key IN (SELECT key FROM T WHERE key < 'b')", nil},
		{"SELECT key FROM T WHERE key IN (SELECT key + 0 FROM T)", nil},
		{"SELECT key FROM T WHERE key IN (SELECT max(key) FROM T)", nil},
		{"SELECT key FROM T WHERE key IN (CAST(?1 AS REAL), ?2)", []any{1.0, 2}},
	} {
		compareThree(t, on, off, ref, c.q, c.args, strings.Contains(c.q, "ORDER BY"))
	}
	// The log's indexes are INTEGER: '1', ' 1', '1.0' and '01' are all
	// index 1.
	want := all(t, off, `SELECT key FROM kv WHERE key IN (SELECT "index" FROM wal) ORDER BY key`)
	if got := all(t, on, `SELECT key FROM kv WHERE key IN (SELECT "index" FROM wal) ORDER BY key`); !slices.Equal(got, want) || len(want) < 4 {
		t.Errorf("key IN (SELECT index FROM wal): %q, without pushdown %q", got, want)
	}
	// A subquery of TEXT still drives one lookup per value.
	if plan := planOf(t, on, "SELECT * FROM kv WHERE key IN (SELECT key FROM kv WHERE key < 'b')"); !slices.ContainsFunc(plan, func(p string) bool { return strings.HasSuffix(p, "kv VIRTUAL TABLE INDEX 0:key=") }) {
		t.Errorf("plan %q: want a lookup per value", plan)
	}
}

// A LIKE on the inner table of a LEFT JOIN, in its ON clause, with a
// literal pattern (which SQLite's LIKE optimization marks): an outer row
// no inner row matches still comes back once, with NULLs.
func TestOuterJoinLikeKeepsUnmatchedRows(t *testing.T) {
	on, off, ref := threeWays(t, []string{"\x00", "\x00a", "a", "A5", "ab", "b"}, keyValue)
	for _, q := range []string{
		"SELECT a.key, b.key FROM T AS a LEFT JOIN T AS b ON b.key LIKE 'zz' ORDER BY 1, 2",
		"SELECT a.key, b.key FROM T AS a LEFT JOIN T AS b ON b.key LIKE 'zz%' ORDER BY 1, 2",
		"SELECT a.key, b.key FROM T AS a LEFT JOIN T AS b ON b.key LIKE 'a_' ORDER BY 1, 2",
		"SELECT a.key, b.key FROM T AS a LEFT JOIN T AS b ON b.key LIKE 'A%' AND a.key < 'b' ORDER BY 1, 2",
		"SELECT a.key, count(b.key) FROM T AS a LEFT JOIN T AS b ON b.key LIKE 'b%' GROUP BY 1 ORDER BY 1",
		"SELECT a.key, b.key FROM T AS a LEFT JOIN T AS b ON b.key GLOB 'zz*' ORDER BY 1, 2",
	} {
		compareThree(t, on, off, ref, q, nil, true)
	}
}

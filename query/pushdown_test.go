package query

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/store"
)

// The randomized pushdown check: every query runs three ways, on the kv
// table with pushdown, on it without (NoPushdown), and on an ordinary
// SQLite table holding the same rows (no index, so SQLite's own semantics
// decide every row), and all three must agree. Keys mix cases, ASCII
// punctuation around the letters (@ [ ` {), LIKE and GLOB wildcards as
// literal characters, NUL, non-ASCII and invalid or overlong UTF-8.

// keyAlphabet is what random keys are made of.
var keyAlphabet = []string{
	"a", "A", "b", "B", "c", "C", "z", "Z", "0", "9", ":", "_", "%", "*", "?", "[", "]",
	"@", "`", "{", "-", "/", " ", "\x00", "\x7f", "é", "É", "\xff", "\x80", "\xc3\xa9", "\xe0\x83\xa9", "\xc1\xa1",
}

// prefixes start most keys, so ranges and patterns hit many of them.
var prefixes = []string{"acct:", "ACCT:", "Acct:", "b", "B", "ab", "aB", "é", "\xe0\x83\xa9", "x%y", "x_y", "[a]", "@", "`", "",
	"abcdefghijk:", "ABCDEFGHxyz:"} // more letters than likeRanges folds

func randKey(r *rand.Rand) string {
	var b strings.Builder
	b.WriteString(prefixes[r.IntN(len(prefixes))])
	for n := r.IntN(4); n >= 0; n-- {
		b.WriteString(keyAlphabet[r.IntN(len(keyAlphabet))])
	}
	return b.String()
}

// randFragment is a piece of a key for constraints: often a real key's
// prefix, sometimes random.
func randFragment(r *rand.Rand, keys []string) string {
	if r.IntN(3) > 0 {
		k := keys[r.IntN(len(keys))]
		return k[:r.IntN(len(k)+1)]
	}
	k := randKey(r)
	return k[:min(len(k), r.IntN(3)+1)]
}

// randPattern is a LIKE or GLOB pattern: a fragment, maybe with its case
// changed, and a wildcard.
func randPattern(r *rand.Rand, keys []string, glob bool) string {
	p := randFragment(r, keys)
	if !glob && r.IntN(2) == 0 {
		p = strings.ToUpper(p)
	}
	wild := []string{"%", "_", "%x", "_%", ""}
	if glob {
		wild = []string{"*", "?", "[a-c]*", "*:*", ""}
	}
	return p + wild[r.IntN(len(wild))]
}

// randQuery returns a query over table T (replaced by the caller) and its
// arguments, and whether its rows come in a defined order.
func randQuery(r *rand.Rand, keys []string) (string, []any, bool) {
	var args []any
	arg := func(v any) string { args = append(args, v); return "?" }
	frag := func() string { return arg(randFragment(r, keys)) }
	preds := []func() string{
		func() string { return "key = " + frag() },
		func() string { return "key IS " + frag() },
		func() string { return fmt.Sprintf("key IN (%s, %s, %s)", frag(), frag(), frag()) },
		func() string { return "key > " + frag() },
		func() string { return "key >= " + frag() },
		func() string { return "key < " + frag() },
		func() string { return "key <= " + frag() },
		func() string { return fmt.Sprintf("key >= %s AND key < %s", frag(), frag()) },
		func() string { return fmt.Sprintf("key BETWEEN %s AND %s", frag(), frag()) },
		func() string { return "key LIKE " + arg(randPattern(r, keys, false)) },
		func() string { return "key GLOB " + arg(randPattern(r, keys, true)) },
		func() string { return "key LIKE " + sqlQuote(strings.ToValidUTF8(randPattern(r, keys, false), "")) },
		func() string { return "key GLOB " + sqlQuote(strings.ToValidUTF8(randPattern(r, keys, true), "")) },
		func() string {
			return fmt.Sprintf("key LIKE %s AND key > %s", arg(randPattern(r, keys, false)), frag())
		},
		func() string { return fmt.Sprintf("key = %s OR key LIKE %s", frag(), arg(randPattern(r, keys, false))) },
		func() string { return "key NOT LIKE " + arg(randPattern(r, keys, false)) },
		func() string { return "key > " + strconv.Itoa(r.IntN(100)) },
		func() string { return "key = " + strconv.Itoa(r.IntN(10)) },
		func() string { return fmt.Sprintf("key < x'%x'", randFragment(r, keys)) },
		func() string { return "key > " + frag() + " AND value LIKE '%1%'" },
		func() string { return "key IS NULL OR key = " + frag() },
		func() string { return "1" }, // no constraint at all
		func() string { return "value LIKE '%1%'" },
		// The same constraints with literals, with values of other types
		// (as parameters and as literals), and with right-hand sides that
		// carry an affinity, which SQLite must keep checking (exactFor).
		func() string { return randOp(r) + lit(randFragment(r, keys)) },
		func() string {
			return fmt.Sprintf("key >= %s AND key < %s", lit(randFragment(r, keys)), lit(randFragment(r, keys)))
		},
		func() string { return randOp(r) + arg(randNonText(r)) },
		func() string { return randOp(r) + randNonTextLiteral(r) },
		func() string { return randOp(r) + "CAST(" + arg(randNonText(r)) + " AS INTEGER)" },
		func() string { return randOp(r) + "CAST(" + frag() + " AS TEXT)" },
		func() string { return randOp(r) + "lower(" + frag() + ")" },
		func() string { return randOp(r) + "+" + frag() },
		func() string { return "key LIKE " + arg(randNonText(r)) },
		func() string { return "key GLOB " + randNonTextLiteral(r) },
		func() string { return "key LIKE " + arg(randMixedPattern(r, keys, false)) },
		func() string { return "key GLOB " + arg(randMixedPattern(r, keys, true)) },
		func() string { return "key LIKE " + lit(randMixedPattern(r, keys, false)) },
		func() string { return "like(" + arg(randMixedPattern(r, keys, false)) + ", key)" },
		func() string {
			return fmt.Sprintf("key GLOB %s AND key LIKE %s", arg(randMixedPattern(r, keys, true)), arg(randMixedPattern(r, keys, false)))
		},
	}
	where := preds[r.IntN(len(preds))]()
	if r.IntN(4) == 0 {
		where += " AND " + preds[r.IntN(len(preds))]()
	}
	cols := "key, value"
	switch r.IntN(10) {
	case 0, 1:
		cols = "count(*), min(key), max(key)"
		return fmt.Sprintf("SELECT %s FROM T WHERE %s", cols, where), args, true
	case 2: // reads no column when the WHERE reads none
		return fmt.Sprintf("SELECT count(*), 7 FROM T WHERE %s", where), args, true
	case 3:
		return fmt.Sprintf("SELECT 'x' FROM T WHERE %s LIMIT %d", where, r.IntN(500)), args, false
	case 4: // a second cursor on the table, opened and filtered inside the first's scan
		return fmt.Sprintf("SELECT key, (SELECT count(*) || min(key) FROM T WHERE key > o.key AND key < o.key || '~') FROM T AS o WHERE %s ORDER BY key LIMIT %d", where, r.IntN(20)+1), args, true
	}
	q := fmt.Sprintf("SELECT %s FROM T WHERE %s", cols, where)
	switch r.IntN(4) {
	case 0:
		return q, args, false
	case 1:
		return q + " ORDER BY key", args, true
	case 2:
		return q + fmt.Sprintf(" ORDER BY key DESC LIMIT %d OFFSET %d", r.IntN(20)+1, r.IntN(3)), args, true
	}
	return q + fmt.Sprintf(" ORDER BY key LIMIT %d OFFSET %d", r.IntN(20)+1, r.IntN(3)), args, true
}

// lit is s as an SQL string literal, made valid UTF-8.
func lit(s string) string { return sqlQuote(strings.ToValidUTF8(s, "")) }

// randOp is a comparison of key with what follows it.
func randOp(r *rand.Rand) string {
	return []string{"key > ", "key >= ", "key < ", "key <= ", "key = "}[r.IntN(5)]
}

// randNonText is a parameter value that is not TEXT.
func randNonText(r *rand.Rand) any {
	return []any{int64(r.IntN(100)), int64(-3), 0.5, 9.25, 1e20, []byte("b"), []byte{0xff}, nil}[r.IntN(8)]
}

// randNonTextLiteral is an SQL literal that is not TEXT.
func randNonTextLiteral(r *rand.Rand) string {
	return []string{"7", "-3", "0.5", "1e20", "x'62'", "x'ff'", "NULL", "x''"}[r.IntN(8)]
}

// randMixedPattern is a LIKE or GLOB pattern with its letters in either
// case and wildcards anywhere, long literal prefixes included (more
// letters than likeRanges folds).
func randMixedPattern(r *rand.Rand, keys []string, glob bool) string {
	var b strings.Builder
	wild := []string{"%", "_", "%%"}
	if glob {
		wild = []string{"*", "?", "[a-c]", "[^a]", "**"}
	}
	for n := r.IntN(4); n >= 0; n-- {
		p := randFragment(r, keys)
		for i := 0; i < len(p); i++ {
			c := p[i]
			if !glob && isLetter(c) && r.IntN(2) == 0 {
				c ^= 'a' - 'A'
			}
			b.WriteByte(c)
		}
		if r.IntN(3) > 0 {
			b.WriteString(wild[r.IntN(len(wild))])
		}
	}
	if r.IntN(4) == 0 {
		b.WriteString("abcdefghijK") // more letters than maxFoldLetters
		b.WriteString(wild[0])
	}
	return b.String()
}

// sqlQuote is s as an SQL string literal (NUL cannot be in one).
func sqlQuote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, "\x00", ""), "'", "''") + "'"
}

// refDB holds pairs in an ordinary SQLite table, ref.
func refDB(t testing.TB, pairs map[string][]byte) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE ref(key TEXT, value)"); err != nil {
		t.Fatal(err)
	}
	for k, v := range pairs {
		if _, err := db.Exec("INSERT INTO ref VALUES(?, ?)", k, valueOf(v)); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func refRows(db *sql.DB, q string, args ...any) ([]string, error) {
	rows, err := db.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out []string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, formatRow(vals))
	}
	return out, rows.Err()
}

// randomStore fills a store with n random keys (a few deleted again) and
// returns it with its pairs.
func randomStore(t testing.TB, r *rand.Rand, n int) (*store.Store, map[string][]byte) {
	st := openStore(t)
	pairs := map[string][]byte{}
	var kvs []string
	for len(pairs) < n {
		k := randKey(r)
		if k == "" || pairs[k] != nil {
			continue
		}
		v := strconv.Itoa(r.IntN(1000))
		if r.IntN(10) == 0 {
			v = "\xff" + v
		}
		pairs[k] = []byte(v)
		kvs = append(kvs, k, v)
	}
	put(t, st, kvs...)
	for k := range pairs {
		if r.IntN(10) == 0 {
			del(t, st, k)
			delete(pairs, k)
		}
	}
	return st, pairs
}

func pushdownRounds() int { return envRounds("KVTOOL_QUERY_ROUNDS", 600) }

// envRounds is the rounds of a randomized campaign: the environment
// variable name when it holds a positive count, else def (100 under the
// race detector).
func envRounds(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	if raceEnabled {
		return 100
	}
	return def
}

func TestPushdownMatchesNoPushdown(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d (KVTOOL_QUERY_ROUNDS=%d rounds)", seed, pushdownRounds())
	r := rand.New(rand.NewPCG(seed, 1))
	st, pairs := randomStore(t, r, 400)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range pairs {
			if !yield(k) {
				return
			}
		}
	})
	on := openSession(t, st, Options{})
	off := openSession(t, st, Options{NoPushdown: true})
	ref := refDB(t, pairs)
	for i := 0; i < pushdownRounds(); i++ {
		q, args, ordered := randQuery(r, keys)
		compareThree(t, on, off, ref, q, args, ordered)
	}
}

// threeWays puts keys (each with the value value gives it) into a new
// store and returns what compareThree compares: sessions on the store with
// and without pushdown, and the same rows in a plain SQLite table.
func threeWays(t *testing.T, keys []string, value func(key string) string) (on, off *Session, ref *sql.DB) {
	t.Helper()
	st := openStore(t)
	pairs := map[string][]byte{}
	for _, k := range keys {
		pairs[k] = []byte(value(k))
		put(t, st, k, value(k))
	}
	return openSession(t, st, Options{}), openSession(t, st, Options{NoPushdown: true}), refDB(t, pairs)
}

// keyValue gives each key itself as its value, for threeWays.
func keyValue(k string) string { return k }

// constValue gives every key value v, for threeWays.
func constValue(v string) func(string) string { return func(string) string { return v } }

// compareThree runs q (over table T) on kv with and without pushdown and
// on the reference table, and fails t unless all three agree.
func compareThree(t *testing.T, on, off *Session, ref *sql.DB, q string, args []any, ordered bool) {
	t.Helper()
	kvq := onTable(q, "kv")
	want, err := refRows(ref, onTable(q, "ref"), args...)
	if err != nil {
		t.Fatalf("reference %s: %v", q, err)
	}
	got, err := queryAll(on, kvq, args...)
	if err != nil {
		t.Fatalf("%s %q: %v", kvq, args, err)
	}
	plain, err := queryAll(off, kvq, args...)
	if err != nil {
		t.Fatalf("no pushdown: %s %q: %v", kvq, args, err)
	}
	if !ordered {
		slices.Sort(want)
		slices.Sort(got)
		slices.Sort(plain)
	}
	if !slices.Equal(plain, want) {
		t.Fatalf("%s %q: without pushdown\n got %q\nwant %q (an ordinary table)", kvq, args, plain, want)
	}
	if !slices.Equal(got, want) {
		plan, _ := queryAll(on, "EXPLAIN QUERY PLAN "+kvq, args...)
		t.Fatalf("%s %q (plan %q): with pushdown\n got %q\nwant %q", kvq, args, plan, got, want)
	}
}

// onTable is q (over table T) over table tab.
func onTable(q, tab string) string {
	return strings.NewReplacer("FROM T ", "FROM "+tab+" ", "FROM T)", "FROM "+tab+")", "JOIN T ", "JOIN "+tab+" ").Replace(q + " ")
}

// The collation trap: SQLite compares these with NOCASE, which the vtab API
// does not show; pushed down as BINARY lookups they would lose rows.
func TestCollateDisablesPushdown(t *testing.T) {
	on, off, ref := threeWays(t, []string{"apple", "Apple", "APPLE", "b", "B", "banana", "Banana", "cherry"}, constValue("1"))
	for _, q := range []string{
		"SELECT key FROM T WHERE key = 'apple' COLLATE NOCASE",
		"SELECT key FROM T WHERE key IN ('b', 'apple') COLLATE NOCASE",
		"SELECT key FROM T WHERE key > 'b' COLLATE NOCASE ORDER BY key",
		"SELECT key FROM T WHERE key < 'B' COLLATE NOCASE ORDER BY key DESC",
		"SELECT key FROM T WHERE key BETWEEN 'a' AND 'b' COLLATE NOCASE",
		"SELECT key FROM T WHERE key = 'BANANA' collate nocase ORDER BY key",
		"SELECT key FROM T WHERE key = 'apple ' COLLATE RTRIM",
	} {
		compareThree(t, on, off, ref, q, nil, strings.Contains(q, "ORDER BY"))
	}
	// And the plan says nothing was pushed.
	plan := planOf(t, on, "SELECT key FROM kv WHERE key = 'apple' COLLATE NOCASE")
	if len(plan) != 1 || !strings.HasSuffix(plan[0], "INDEX 0:") {
		t.Errorf("plan %q: want no pushdown", plan)
	}
}

// SQLite's LIKE optimization adds range constraints of its own; with
// keys that decode to the pattern's characters without having its bytes
// (an overlong encoding), pushing those ranges down would lose them.
func TestPatternRangesNotPushed(t *testing.T) {
	on, off, ref := threeWays(t, []string{"\xc3\xa9t\xc3\xa9", "\xe0\x83\xa9t\xc3\xa9", "\xc3\xa9", "e", "f", "\xc3\xaa"}, constValue("1"))
	for _, q := range []string{
		"SELECT key FROM T WHERE key GLOB 'é*'",
		"SELECT key FROM T WHERE key LIKE 'é%'",
		"SELECT key FROM T WHERE key LIKE 'ét%'",
		"SELECT key FROM T WHERE key GLOB 'ét?'",
	} {
		compareThree(t, on, off, ref, q, nil, false)
	}
}

// The constraints the scan decides alone (exactFor), at the edges of
// what their ranges hold: a prefix ending in 0x7f (its range ends at
// 0x80, one byte), LIKE prefixes longer than the folded letters, NUL in
// a pattern and in a key, and arguments of every type.
func TestExactPushdownEdges(t *testing.T) {
	on, off, ref := threeWays(t, []string{"b\x7f", "b\x7fz", "b\x80", "b\xc2\x80", "b\xc1\xa1", "B\x7f", "c",
		"abcdefghij", "ABCDEFGHIJ", "abcdefghiX", "ABCDEFGHxyz", "ab\x00x", "ab", "abc", "5", "50", "6",
		"0.5", "1e+20", "1.0e+20", "-3", "\xff"}, constValue("1"))
	for _, c := range []struct {
		q    string
		args []any
	}{
		{"SELECT key FROM T WHERE key LIKE ?", []any{"b\x7f%"}},
		{"SELECT key FROM T WHERE key GLOB ?", []any{"b\x7f*"}},
		{"SELECT key FROM T WHERE key GLOB 'b\x7f*'", nil}, // SQLite derives ranges from a literal
		{"SELECT key FROM T WHERE key GLOB 'ab*' ORDER BY key DESC", nil},
		{"SELECT key FROM T WHERE key >= ? AND key < ?", []any{"b\x7f", "b\x80"}},
		{"SELECT key FROM T WHERE key LIKE ?", []any{"abcdefghij%"}},
		{"SELECT key FROM T WHERE key LIKE 'ABCDEFGHIJ%'", nil},
		{"SELECT key FROM T WHERE key LIKE ?", []any{"abcdefghi_"}},
		{"SELECT key FROM T WHERE key GLOB ?", []any{"ab"}},
		{"SELECT key FROM T WHERE key GLOB ?", []any{"ab\x00zz"}},
		{"SELECT key FROM T WHERE key LIKE ?", []any{"a%\x00"}},
		{"SELECT key FROM T WHERE key LIKE ?", []any{int64(5)}},
		{"SELECT key FROM T WHERE key LIKE ?", []any{5.0}},
		{"SELECT key FROM T WHERE key LIKE ?", []any{[]byte("ab")}},
		{"SELECT key FROM T WHERE key LIKE ?", []any{nil}},
		{"SELECT key FROM T WHERE key > ?", []any{int64(5)}},
		{"SELECT key FROM T WHERE key >= ?", []any{0.5}},
		{"SELECT key FROM T WHERE key >= ? AND key <= ?", []any{1e20, 1e20}},
		{"SELECT key FROM T WHERE key >= ?", []any{int64(-3)}},
		{"SELECT key FROM T WHERE key < ?", []any{[]byte{0}}},
		{"SELECT key FROM T WHERE key > ?", []any{[]byte{0}}},
		{"SELECT key FROM T WHERE key <= ?", []any{nil}},
		{"SELECT key FROM T WHERE key > CAST(? AS INTEGER)", []any{"5"}},
		{"SELECT key FROM T WHERE key > 5", nil},
	} {
		compareThree(t, on, off, ref, c.q, c.args, false)
	}
}

func TestExplainShowsPushdown(t *testing.T) {
	st := openStore(t)
	put(t, st, "a", "1")
	s := openSession(t, st, Options{})
	for q, want := range map[string]string{
		"SELECT * FROM kv WHERE key = 'a'":                           "INDEX 0:key=",
		"SELECT * FROM kv WHERE key >= 'a' AND key < 'b'":            "INDEX 0:key>=! key<!",
		"SELECT * FROM kv WHERE key LIKE 'acct:%' ORDER BY key":      "INDEX 0:key:like! key:derived! key:derived! order:asc",
		"SELECT * FROM kv WHERE key GLOB 'a*' ORDER BY key DESC":     "INDEX 0:key:glob! key:derived! key:derived! order:desc",
		"SELECT * FROM kv_at(1) WHERE key > 'a'":                     "INDEX 0:index= key>!",
		`SELECT * FROM wal WHERE "index" > 5 ORDER BY "index"`:       "INDEX 0:index> order:asc delta",
		`SELECT delta FROM wal WHERE "index" = 3`:                    "INDEX 0:index= delta",
		"SELECT * FROM kv a JOIN kv b ON b.key = a.value":            "INDEX 0:key=",
		"SELECT * FROM kv WHERE key IN ('a', 'b') ORDER BY key":      "INDEX 0:key= order:asc",
		"SELECT * FROM kv WHERE key LIKE 'a%' AND key > 'a'":         "INDEX 0:key:like! key:derived! key:derived!",
		"SELECT count(*) FROM kv WHERE substr(key, 1, 2) = 'ac'":     "INDEX 0:",
		"SELECT * FROM kv WHERE key LIKE 'a%' ESCAPE '!'":            "INDEX 0:",
		"SELECT * FROM kv WHERE key = 'a' COLLATE NOCASE":            "INDEX 0:",
		"SELECT * FROM kv WHERE value = 'a' ORDER BY value":          "INDEX 0:",
		"SELECT * FROM kv WHERE key > 'a' ORDER BY key DESC LIMIT 3": "INDEX 0:key>! order:desc",
		// SQLite checks again what the scan cannot decide alone: a
		// number literal, a column, an expression, a CAST (exactFor).
		"SELECT * FROM kv WHERE key >= ? AND key < ?":     "INDEX 0:key>=! key<!",
		"SELECT * FROM kv WHERE key > ?1 AND key <= ?2":   "INDEX 0:key>! key<=!",
		"SELECT * FROM kv WHERE key GLOB ?1":              "INDEX 0:key:glob!",
		"SELECT * FROM kv WHERE key > 5":                  "INDEX 0:key>",
		"SELECT * FROM kv WHERE key < x'61'":              "INDEX 0:key<",
		"SELECT * FROM kv WHERE key > CAST(? AS INTEGER)": "INDEX 0:key>",
		"SELECT * FROM kv WHERE key > lower(?)":           "INDEX 0:key>",
		"SELECT * FROM kv a JOIN kv b ON b.key > a.value": "INDEX 0:key>",
		"SELECT * FROM kv WHERE key > CAST('a' AS TEXT)":  "INDEX 0:key>!",
	} {
		var args []any
		for n := strings.Count(q, "?"); n > 0; n-- {
			args = append(args, "a")
		}
		plan := planOf(t, s, q, args...)
		if !slices.ContainsFunc(plan, func(p string) bool { return strings.HasSuffix(p, want) }) {
			t.Errorf("%s: plan %q, want a step ending in %q", q, plan, want)
		}
	}
}

func formatRow(vals []any) string {
	var b strings.Builder
	for i, v := range vals {
		if i > 0 {
			b.WriteByte('|')
		}
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "x'%x'", v)
		case nil:
			b.WriteString("NULL")
		case string:
			fmt.Fprintf(&b, "%q", v)
		default:
			fmt.Fprint(&b, v)
		}
	}
	return b.String()
}

// planOf returns the detail of each step of q's plan.
func planOf(t testing.TB, s *Session, q string, args ...any) []string {
	t.Helper()
	rows, err := s.Query(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		v := rows.Values()
		out = append(out, fmt.Sprint(v[len(v)-1]))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

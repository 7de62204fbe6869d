package query

import (
	"slices"
	"strings"

	"modernc.org/sqlite/vtab"
)

// Key pushdown, shared by kv and kv_at.
//
// The tables never ask SQLite to omit a constraint (Constraint.Omit stays
// false): SQLite checks every constraint again on every row a table
// returns. Pushdown therefore only has to narrow the scan to a superset of
// the rows that can match, never to decide a match. The one way to get it
// wrong is to skip a row that would match, and each rule below says why it
// cannot:
//
// The re-check is what makes a range scan cost more per row than a loaded
// table's: `key >= ? AND key < ?` reads key through xColumn three times a
// row (two checks, then the result), each a copy into SQLite's memory
// (bridge.go keeps that to one copy and no lock or allocation). It
// cannot be omitted: BestIndex decides before it sees the values, and a
// number compares with key as text when it is a literal or a parameter but
// as a number when it comes from an INTEGER column or a CAST (SQLite's
// comparison affinity), which Filter cannot tell apart; a LIKE or GLOB
// pattern is only an exact prefix range for some patterns.
//
//   - Only a TEXT value narrows. A key is TEXT; SQLite compares TEXT to TEXT
//     with the column's collation, BINARY, which orders bytes exactly as Go
//     compares strings. A value of another type (a number, a BLOB, NULL)
//     compares by other rules (type order, affinity), so its constraint is
//     left to SQLite alone and the scan is not narrowed by it.
//   - A query whose text names a collation (COLLATE anywhere) pushes nothing
//     down: SQLite would compare with that collation, and the vtab API does
//     not say which collation a constraint uses (sqlite3_vtab_collation is
//     not exposed), so `key = 'x' COLLATE NOCASE` must not become a lookup
//     of 'x'. The kv tables declare no collation and nothing else in a
//     session can (writes are refused), so COLLATE in the text is the only
//     way a comparison on key can use another collation.
//   - LIKE is case-insensitive for ASCII letters: its literal prefix becomes
//     the set of prefix ranges of every upper/lower-case spelling of its
//     first maxFoldLetters letters. The prefix stops at a wildcard, at NUL
//     (SQLite's LIKE and GLOB stop reading both strings there) and at the
//     first non-ASCII byte (LIKE and GLOB compare decoded characters, and
//     SQLite's UTF-8 decoder maps some invalid and overlong byte sequences
//     to the same character as other bytes; an ASCII byte in a key only ever
//     decodes to itself). GLOB is case-sensitive: one prefix range.
//   - For a LIKE or GLOB with a literal prefix, SQLite adds range
//     constraints of its own (its LIKE optimization, even for LIKE ...
//     ESCAPE, which is not offered to the table itself): LIKE's compare
//     with NOCASE, both accept non-ASCII prefixes, SQLite never checks them
//     again, and the vtab API cannot tell them from the query's own ranges.
//     So a query whose text names LIKE or GLOB pushes no range down; a
//     LIKE or GLOB constraint offered to the table pushes its own prefix
//     ranges.
//   - ORDER BY key (first term, either direction) is consumed: keys are
//     unique, so the scan order is the whole order. SQLite itself refuses
//     the consumption when an IN list drives several lookups.

// Argument tokens in idxStr, one per constraint passed to Filter, and the
// order token that ends it when ORDER BY key is consumed.
const (
	tokEQ   = "key="
	tokGT   = "key>"
	tokGE   = "key>="
	tokLT   = "key<"
	tokLE   = "key<="
	tokLike = "key:like"
	tokGlob = "key:glob"
	tokAsc  = "order:asc"
	tokDesc = "order:desc"
)

// maxFoldLetters bounds the case spellings of a LIKE prefix: 2^8 ranges.
const maxFoldLetters = 8

// fullScanRows is the row estimate of a scan no constraint narrows.
const fullScanRows = 1_000_000

// keyPlan is the pushdown BestIndex chose for a key column.
type keyPlan struct {
	tokens []string // argument tokens, in argv order from the plan's first argument
	eq     bool     // a key = lookup: at most one row
	order  string   // tokAsc, tokDesc or "" (ORDER BY not consumed)
}

// pushMode says what a statement lets the tables push down (see
// Session.pushMode).
type pushMode struct {
	keys   bool // any key constraint and ORDER BY key
	ranges bool // key ranges (<, <=, >, >=)
}

// planKey chooses the key constraints of info to push down, for the key
// column col, giving them argv positions from arg on, as push allows. An
// equality (or IS) wins alone; otherwise every range, LIKE and GLOB bound
// is pushed and the scan takes their intersection.
func planKey(info *vtab.IndexInfo, col, arg int, push pushMode) keyPlan {
	var p keyPlan
	if !push.keys {
		return p
	}
	use := func(i int, tok string) {
		info.Constraints[i].ArgIndex = arg
		arg++
		p.tokens = append(p.tokens, tok)
	}
	for i, c := range info.Constraints {
		if c.Usable && c.Column == col && (c.Op == vtab.OpEQ || c.Op == vtab.OpIS) {
			use(i, tokEQ)
			p.eq = true
			break
		}
	}
	for i, c := range info.Constraints {
		if p.eq || !c.Usable || c.Column != col {
			continue
		}
		isPattern := c.Op == vtab.OpLIKE || c.Op == vtab.OpGLOB
		if tok := rangeTokens[c.Op]; tok != "" && (isPattern || push.ranges) {
			use(i, tok)
		}
	}
	if len(info.OrderBy) > 0 && info.OrderBy[0].Column == col {
		info.OrderByConsumed = true
		switch {
		case p.eq: // one row per lookup: no order to keep
		case info.OrderBy[0].Desc:
			p.order = tokDesc
		default:
			p.order = tokAsc
		}
	}
	return p
}

var rangeTokens = map[vtab.ConstraintOp]string{
	vtab.OpGT: tokGT, vtab.OpGE: tokGE, vtab.OpLT: tokLT, vtab.OpLE: tokLE,
	vtab.OpLIKE: tokLike, vtab.OpGLOB: tokGlob,
}

// idxStr is the plan as EXPLAIN QUERY PLAN shows it and Filter reads it.
func (p keyPlan) idxStr(prefix ...string) string {
	toks := append(slices.Clone(prefix), p.tokens...)
	if p.order != "" {
		toks = append(toks, p.order)
	}
	return strings.Join(toks, " ")
}

// estimate is the plan's row estimate.
func (p keyPlan) estimate() int64 {
	switch {
	case p.eq:
		return 1
	case len(p.tokens) > 0:
		return 1000
	}
	return fullScanRows
}

// keyRange is the keys k with lo <= k < hi (no upper bound unless hiSet).
type keyRange struct {
	lo    string
	hi    string
	hiSet bool
}

func (r keyRange) has(k string) bool { return k >= r.lo && (!r.hiSet || k < r.hi) }

// allKeys is the range of every key.
var allKeys = []keyRange{{}}

// keyScan is what Filter makes of a plan and its argument values.
type keyScan struct {
	point   string
	isPoint bool
	ranges  []keyRange // ascending and disjoint; empty: no key matches
	desc    bool
}

// newKeyScan reads the argument tokens and values of a plan.
func newKeyScan(tokens []string, vals []vtab.Value) keyScan {
	sc := keyScan{ranges: allKeys}
	for i, tok := range tokens {
		switch tok {
		case tokAsc:
			continue
		case tokDesc:
			sc.desc = true
			continue
		}
		var v string
		ok := false
		if i < len(vals) {
			v, ok = vals[i].(string)
		}
		if !ok {
			continue // not TEXT: SQLite decides alone (see the package comment above)
		}
		v = strings.Clone(v) // it aliases SQLite's memory (module.VolatileArgs)
		switch tok {
		case tokEQ:
			sc.point, sc.isPoint = v, true
		case tokGT:
			sc.ranges = intersect(sc.ranges, []keyRange{{lo: v + "\x00"}})
		case tokGE:
			sc.ranges = intersect(sc.ranges, []keyRange{{lo: v}})
		case tokLT:
			sc.ranges = intersect(sc.ranges, []keyRange{{hi: v, hiSet: true}})
		case tokLE:
			sc.ranges = intersect(sc.ranges, []keyRange{{hi: v + "\x00", hiSet: true}})
		case tokLike:
			sc.ranges = intersect(sc.ranges, likeRanges(v))
		case tokGlob:
			sc.ranges = intersect(sc.ranges, globRanges(v))
		}
	}
	return sc
}

// intersect returns the keys in both sets of ascending disjoint ranges.
func intersect(a, b []keyRange) []keyRange {
	var out []keyRange
	for i, j := 0, 0; i < len(a) && j < len(b); {
		r := keyRange{lo: max(a[i].lo, b[j].lo)}
		switch {
		case !a[i].hiSet && !b[j].hiSet:
		case !a[i].hiSet || (b[j].hiSet && b[j].hi < a[i].hi):
			r.hi, r.hiSet = b[j].hi, true
		default:
			r.hi, r.hiSet = a[i].hi, true
		}
		if !r.hiSet || r.lo < r.hi {
			out = append(out, r)
		}
		// Move past whichever range ends first.
		if !a[i].hiSet || (b[j].hiSet && b[j].hi <= a[i].hi) {
			j++
		} else {
			i++
		}
	}
	return out
}

// prefixRange is the range of keys that start with p.
func prefixRange(p string) keyRange {
	end := strings.TrimRight(p, "\xff")
	if end == "" {
		return keyRange{lo: p}
	}
	return keyRange{lo: p, hi: end[:len(end)-1] + string(end[len(end)-1]+1), hiSet: true}
}

// literalPrefix is the start of pattern before the first byte stop
// accepts, before NUL, and before the first non-ASCII byte.
func literalPrefix(pattern string, stop func(byte) bool) string {
	for i := 0; i < len(pattern); i++ {
		if c := pattern[i]; stop(c) || c == 0 || c >= 0x80 {
			return pattern[:i]
		}
	}
	return pattern
}

// globRanges is a superset of the keys matching a GLOB pattern.
func globRanges(pattern string) []keyRange {
	p := literalPrefix(pattern, func(c byte) bool { return c == '*' || c == '?' || c == '[' })
	return []keyRange{prefixRange(p)}
}

// likeRanges is a superset of the keys matching a LIKE pattern: the prefix
// ranges of every ASCII case spelling of its literal prefix, cut before its
// (maxFoldLetters+1)th letter.
func likeRanges(pattern string) []keyRange {
	p := literalPrefix(pattern, func(c byte) bool { return c == '%' || c == '_' })
	letters := 0
	for i := 0; i < len(p); i++ {
		if isLetter(p[i]) {
			if letters == maxFoldLetters {
				p = p[:i]
				break
			}
			letters++
		}
	}
	spellings := caseSpellings(p)
	out := make([]keyRange, len(spellings))
	for i, s := range spellings {
		out[i] = prefixRange(s)
	}
	return out
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// caseSpellings returns every spelling of p with its ASCII letters in
// either case, in ascending order. Distinct spellings of one length are
// never prefixes of each other, so their prefix ranges are disjoint.
func caseSpellings(p string) []string {
	var at []int
	for i := 0; i < len(p); i++ {
		if isLetter(p[i]) {
			at = append(at, i)
		}
	}
	out := make([]string, 0, 1<<len(at))
	b := []byte(p)
	for mask := 0; mask < 1<<len(at); mask++ {
		for bit, i := range at {
			if mask&(1<<bit) != 0 {
				b[i] = upper(b[i])
			} else {
				b[i] = lower(b[i])
			}
		}
		out = append(out, string(b))
	}
	slices.Sort(out)
	return out
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c - 'A' + 'a'
	}
	return c
}

// pushModeOf is what a statement's text lets the tables push down: no key
// constraint if it names a collation (COLLATE), no key range if it names
// LIKE or GLOB. The words are looked for anywhere, in any case; a false
// alarm (in a string, a comment, likely()) only costs the pushdown.
func pushModeOf(text string) pushMode {
	up := strings.ToUpper(text)
	if strings.Contains(up, "COLLATE") {
		return pushMode{}
	}
	return pushMode{keys: true, ranges: !strings.Contains(up, "LIKE") && !strings.Contains(up, "GLOB")}
}

// keyCursor walks the keys of a kvState a keyScan selects, in its order.
type keyCursor struct {
	st  kvState
	sc  keyScan
	it  kvIter
	ri  int      // the range being walked, counted in scan order
	cur keyRange // that range
	key string
	val rowValue
	eof bool
	// A scan of every key is lazy: it knows how many rows it has (the
	// state's Len) and moves no iterator until a column is asked for, so
	// a query that reads no column (count(*)) walks nothing. skipped is
	// the rows it has passed so far, -1 once the iterator is positioned
	// (see position).
	skipped int
	total   int
}

// start positions the cursor on the first selected key.
func (c *keyCursor) start(st kvState, sc keyScan) {
	c.release()
	c.st, c.sc, c.ri, c.eof, c.skipped = st, sc, 0, false, -1
	if !sc.isPoint && len(sc.ranges) == 1 && sc.ranges[0] == (keyRange{}) {
		c.skipped, c.total = 0, st.Len()
		c.eof = c.total == 0
		return
	}
	if sc.isPoint {
		v, ok := st.Get(sc.point)
		c.key, c.eof = sc.point, !ok
		c.val.set(v)
		if ok && !inAny(sc.ranges, sc.point) {
			c.eof = true // the ranges exclude the key
		}
		return
	}
	c.it = st.Iter()
	c.seekRange()
}

func inAny(rs []keyRange, k string) bool {
	for _, r := range rs {
		if r.has(k) {
			return true
		}
	}
	return false
}

// rangeAt is the i-th range in scan order.
func (c *keyCursor) rangeAt(i int) keyRange {
	if c.sc.desc {
		return c.sc.ranges[len(c.sc.ranges)-1-i]
	}
	return c.sc.ranges[i]
}

// seekRange finds the first key of the first non-empty range from c.ri on.
func (c *keyCursor) seekRange() {
	for ; c.ri < len(c.sc.ranges); c.ri++ {
		r := c.rangeAt(c.ri)
		var ok bool
		switch {
		case !c.sc.desc:
			ok = c.it.SeekGE(r.lo)
		case r.hiSet:
			ok = c.it.SeekLT(r.hi)
		default:
			ok = c.it.Last()
		}
		if ok && r.has(c.it.Key()) {
			c.cur = r
			c.at()
			return
		}
	}
	c.eof = true
}

// next moves to the next selected key.
func (c *keyCursor) next() {
	if c.eof {
		return
	}
	if c.sc.isPoint {
		c.eof = true
		return
	}
	if c.skipped >= 0 {
		c.skipped++
		c.eof = c.skipped == c.total
		return
	}
	if c.it.Next() && c.inCur(c.it.Key()) {
		c.at()
		return
	}
	c.ri++
	c.seekRange()
}

// inCur reports whether k, the key after the current row in scan order, is
// still in the current range: only the bound the scan moves toward can
// exclude it.
func (c *keyCursor) inCur(k string) bool {
	if c.sc.desc {
		return k >= c.cur.lo
	}
	return !c.cur.hiSet || k < c.cur.hi
}

// at makes the iterator's pair the current row.
func (c *keyCursor) at() {
	c.key = c.it.Key()
	c.val.set(c.it.Value())
}

// position moves a lazy scan's iterator to the row it has counted up to:
// from the first key (the last, descending), past the rows skipped. A
// query that reads columns asks on its first row, where nothing is
// skipped.
func (c *keyCursor) position() {
	if c.skipped < 0 {
		return
	}
	skip := c.skipped
	c.skipped = -1
	c.it = c.st.Iter()
	c.seekRange()
	for ; skip > 0 && !c.eof; skip-- {
		c.next()
	}
}

// keyValue and valueValue are the current row's columns, without copies
// (see value.go): valid until the cursor moves.
func (c *keyCursor) keyValue() vtab.Value {
	c.position()
	return textRef(&c.key)
}

func (c *keyCursor) valueValue() vtab.Value {
	c.position()
	return c.val.value()
}

// reset releases the cursor and forgets its state and row, so that a
// kept cursor holds no snapshot.
func (c *keyCursor) reset() {
	c.release()
	*c = keyCursor{eof: true}
}

func (c *keyCursor) release() {
	if c.it != nil {
		c.it.Release()
		c.it = nil
	}
}

package query

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
	"modernc.org/sqlite/vtab"
)

// Key pushdown, shared by kv and kv_at.
//
// Pushdown narrows the scan to a superset of the rows that can match; the
// one way to get that wrong is to skip a row that would match, and each
// rule below says why it cannot. SQLite then checks every constraint
// again on every row the table returns, except those the scan decides
// exactly (exactFor): those it is told to omit (Constraint.Omit), and
// their tokens end in tokExact.
//
// The re-check is what made a range scan cost more per row than a loaded
// table's: `key >= ? AND key < ?` read key through xColumn three times a
// row (two checks, then the result), each a copy into SQLite's memory.
// Omitting it needs to know, while planning, that the comparison is TEXT
// with TEXT in BINARY order whatever the value: a number compares with key
// as text when it is a literal or a parameter, but as a number when it
// comes from an INTEGER column or a CAST (SQLite's comparison affinity),
// which Filter cannot tell apart. So the bridge reads each constraint's
// collation and the kind of its right-hand side (constraintDetails), and
// only a TEXT literal or a bound parameter under BINARY is omitted.
//
//   - Only a TEXT value narrows a constraint SQLite checks again. A key is
//     TEXT; SQLite compares TEXT to TEXT with the column's collation,
//     BINARY, which orders bytes exactly as Go compares strings. A value of
//     another type (a number, a BLOB, NULL) compares by other rules (type
//     order, affinity), so its constraint is left to SQLite alone and the
//     scan is not narrowed by it. An exact constraint narrows by every
//     type, as exactFor says.
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
//     ranges. (A session plans without bound values, planWithoutValues, so
//     a pattern that is a parameter gets no such ranges.) When the scan
//     decides the pattern exactly, it takes SQLite's ranges too, their
//     values unread (tokDerived; the bridge knows them by SQLite's
//     TERM_LIKEOPT): SQLite drops its own check of a pattern only once
//     everything derived from it is handled. (For LIKE it still checks,
//     as its LIKE optimization wants for BLOBs.)
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
	// tokExact ends the token of a constraint SQLite does not check again
	// (exactFor): the scan alone decides it.
	tokExact = "!"
	// tokDerived is a range SQLite derived from an exact pattern (its LIKE
	// optimization): its value is not read, the pattern decides.
	tokDerived = "key:derived!"
)

// exactFor reports whether the scan decides a pushed-down constraint with
// operator op exactly as SQLite would, whatever value the argument turns
// out to have (newKeyScan), so that SQLite can skip checking it on every
// row:
//
//   - a range (<, <=, >, >=) that compares with BINARY and whose right-hand
//     side is a TEXT literal or a bound parameter. Neither has an affinity,
//     so SQLite applies key's, TEXT: the comparison is of TEXT with TEXT in
//     byte order when the value is TEXT, or a number's TEXT form (SQLite's
//     own rendering, realArg), and a BLOB sorts after every TEXT and NULL
//     compares to nothing. Any other right-hand side (a column, a CAST, an
//     expression) may bring its own affinity, under which a number compares
//     as a number, so it stays SQLite's to check; equality too (a point
//     lookup reads the key once anyway).
//   - LIKE and GLOB: they are functions of the pattern's TEXT and the
//     key, with no affinity or collation (LIKE's case folding is its
//     own), and a BLOB pattern matches nothing (this SQLite is built with
//     SQLITE_LIKE_DOESNT_MATCH_BLOBS). A pattern that is more than a
//     literal prefix and a trailing run of '%' or '*' is matched key by
//     key with SQLite's own matcher (patternMatch). Except a LIKE that
//     SQLite's LIKE optimization marked, in an outer join's ON clause
//     (constraintDetail.outerLike): SQLite would test it again on the
//     NULL row of an unmatched outer row.
func exactFor(op vtab.ConstraintOp, d constraintDetail) bool {
	switch op {
	case vtab.OpLIKE, vtab.OpGLOB:
		return !d.outerLike
	case vtab.OpGT, vtab.OpGE, vtab.OpLT, vtab.OpLE:
		return d.binary && (d.rhs == rhsText || d.rhs == rhsParam)
	}
	return false
}

// maxFoldLetters bounds the case spellings of a LIKE prefix: 2^8 ranges.
const maxFoldLetters = 8

// fullScanRows is the row estimate of a scan no constraint narrows.
const fullScanRows = 1_000_000

// keyPlan is the pushdown BestIndex chose for a key column.
type keyPlan struct {
	tokens []string // argument tokens, in argv order from the plan's first argument
	eq     bool     // a key = lookup: one row when its value is TEXT (else a scan)
	// unique: the lookup returns at most one row whatever the value
	// (uniqueEq), which SQLite may rely on (SQLITE_INDEX_SCAN_UNIQUE).
	unique bool
	order  string // tokAsc, tokDesc or "" (ORDER BY not consumed)
}

// uniqueEq reports whether key = X, X with details d, holds for at most
// one key whatever X's value: X is a TEXT literal or a bound parameter
// compared with BINARY, so SQLite compares key with X's TEXT (a number's
// TEXT form, as exactFor says) or not at all (a BLOB, NULL). Any other X
// may bring a numeric affinity, under which '0', '-0' and '0.0' all
// equal 0: the lookup is then a scan of every key (newKeyScan reads only
// TEXT), and SQLite must not drop a LEFT JOIN on the table or anything
// else it would for a single row.
func uniqueEq(d constraintDetail) bool {
	return d.binary && (d.rhs == rhsText || d.rhs == rhsParam)
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
//
// details (nil: none known) are the constraints' details (bridge.go); a
// constraint the scan decides exactly (exactFor) is taken over from
// SQLite: Omit is set and its token ends in tokExact.
func planKey(info *vtab.IndexInfo, details []constraintDetail, col, arg int, push pushMode) keyPlan {
	var p keyPlan
	if !push.keys {
		return p
	}
	var exactPatterns []termRef // the terms of the exact LIKE and GLOB used
	use := func(i int, tok string) {
		c := &info.Constraints[i]
		c.ArgIndex = arg
		arg++
		if i < len(details) && exactFor(c.Op, details[i]) {
			c.Omit = true
			tok += tokExact
			if tok == tokLike+tokExact || tok == tokGlob+tokExact {
				exactPatterns = append(exactPatterns, details[i].parent)
			}
		}
		p.tokens = append(p.tokens, tok)
	}
	for i, c := range info.Constraints {
		if i < len(details) && details[i].numericIn {
			continue // SQLite would check the rows as TEXT (constraintDetail)
		}
		if c.Usable && c.Column == col && (c.Op == vtab.OpEQ || c.Op == vtab.OpIS) {
			use(i, tokEQ)
			p.eq = true
			p.unique = i < len(details) && uniqueEq(details[i])
			break
		}
	}
	for i, c := range info.Constraints {
		if p.eq || !c.Usable || c.Column != col {
			continue
		}
		isPattern := c.Op == vtab.OpLIKE || c.Op == vtab.OpGLOB
		if i < len(details) && details[i].likeOpt {
			continue // never a range of the query's own (below)
		}
		if tok := rangeTokens[c.Op]; tok != "" && (isPattern || push.ranges) {
			use(i, tok)
		}
	}
	// The ranges SQLite derived from a pattern the scan decides are
	// taken too, their values unread: SQLite drops the pattern's own
	// check only once everything derived from it is handled.
	for i, c := range info.Constraints {
		if !p.eq && c.Usable && c.Column == col && i < len(details) && details[i].likeOpt &&
			details[i].parent != (termRef{}) && slices.Contains(exactPatterns, details[i].parent) {
			info.Constraints[i].ArgIndex, info.Constraints[i].Omit = arg, true
			arg++
			p.tokens = append(p.tokens, tokDerived)
		}
	}
	if len(info.OrderBy) > 0 && info.OrderBy[0].Column == col {
		info.OrderByConsumed = true
		// An equality's scan keeps the order too: a value that is not
		// TEXT makes it a scan of every key (uniqueEq).
		switch {
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
	// match are the patterns of exact LIKE and GLOB tokens that their
	// ranges do not decide: every key must match them too.
	match []pattern
}

// pattern is a LIKE (glob false) or GLOB pattern.
type pattern struct {
	text string
	glob bool
}

// maxPatternBytes is SQLite's limit on a LIKE or GLOB pattern
// (SQLITE_MAX_LIKE_PATTERN_LENGTH, which a session cannot change): LIKE
// fails on a longer one, so an exact token does too.
const maxPatternBytes = 50000

var errPatternTooLong = errors.New("LIKE or GLOB pattern too complex")

// newKeyScan reads the argument tokens and values of a plan.
func newKeyScan(tokens []string, vals []vtab.Value) (keyScan, error) {
	sc := keyScan{ranges: allKeys}
	for i, tok := range tokens {
		switch tok {
		case tokAsc, tokDerived:
			continue
		case tokDesc:
			sc.desc = true
			continue
		}
		var val vtab.Value
		if i < len(vals) {
			val = vals[i]
		}
		tok, exact := strings.CutSuffix(tok, tokExact)
		v, ok := val.(string)
		if exact {
			v, ok = exactText(tok, val, &sc)
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
		case tokLike, tokGlob:
			glob := tok == tokGlob
			if len(v) > maxPatternBytes {
				return sc, errPatternTooLong
			}
			if glob {
				sc.ranges = intersect(sc.ranges, globRanges(v))
			} else {
				sc.ranges = intersect(sc.ranges, likeRanges(v))
			}
			if exact && !prefixPattern(v, glob) {
				sc.match = append(sc.match, pattern{text: v, glob: glob})
			}
		}
	}
	return sc, nil
}

// exactText is the TEXT an exact token (exactFor) compares key with, and
// true; or false when no TEXT is compared, after making sc select what
// SQLite would: a NULL compares to nothing (no key), a BLOB sorts after
// every TEXT (every key is less than it, none greater) and matches no
// pattern.
func exactText(tok string, val vtab.Value, sc *keyScan) (string, bool) {
	switch v := val.(type) {
	case string:
		return v, true
	case int64:
		return strconv.FormatInt(v, 10), true
	case realArg:
		return v.Text, true
	case []byte:
		if tok == tokLT || tok == tokLE {
			return "", false // every key
		}
	}
	sc.ranges = nil
	return "", false
}

// prefixPattern reports whether the ranges of a pattern (likeRanges,
// globRanges) hold exactly the keys that match it: it is its literal
// prefix then one or more '%' (LIKE) or '*' (GLOB), and a LIKE prefix has
// at most maxFoldLetters letters. NUL, a non-ASCII byte or any other
// wildcard after the prefix make it more than a prefix.
func prefixPattern(p string, glob bool) bool {
	var pre, any string
	if glob {
		pre, any = literalPrefix(p, func(c byte) bool { return c == '*' || c == '?' || c == '[' }), "*"
	} else {
		pre, any = literalPrefix(p, func(c byte) bool { return c == '%' || c == '_' }), "%"
	}
	rest := p[len(pre):]
	if rest == "" || strings.Trim(rest, any) != "" {
		return false
	}
	return glob || letterCount(pre) <= maxFoldLetters
}

func letterCount(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if isLetter(s[i]) {
			n++
		}
	}
	return n
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
	// The last byte plus one as a byte: string(b) of a byte would be the
	// UTF-8 encoding of rune b (0x80 is two bytes, 0xc2 0x80).
	return keyRange{lo: p, hi: end[:len(end)-1] + string([]byte{end[len(end)-1] + 1}), hiSet: true}
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
	pm  patternMatch // sc.match's matcher
	ri  int          // the range being walked, counted in scan order
	cur keyRange     // that range
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

// start positions the cursor on the first selected key; tls is the
// connection's, for matching patterns (patternMatch).
func (c *keyCursor) start(st kvState, sc keyScan, tls *libc.TLS) error {
	c.release()
	c.st, c.sc, c.ri, c.eof, c.skipped = st, sc, 0, false, -1
	if err := c.pm.init(tls, sc.match); err != nil {
		c.eof = true
		return err
	}
	if !sc.isPoint && len(sc.match) == 0 && len(sc.ranges) == 1 && sc.ranges[0] == (keyRange{}) {
		c.skipped, c.total = 0, st.Len()
		c.eof = c.total == 0
		return nil
	}
	if sc.isPoint {
		v, ok := st.Get(sc.point)
		c.key, c.eof = sc.point, !ok
		c.val.set(v)
		if ok && (!inAny(sc.ranges, sc.point) || !c.pm.matches(sc.point)) {
			c.eof = true // the ranges or patterns exclude the key
		}
		return nil
	}
	c.it = st.Iter()
	c.seekRange()
	c.skipUnmatched()
	return nil
}

// skipUnmatched moves past the keys the patterns reject.
func (c *keyCursor) skipUnmatched() {
	for !c.eof && !c.pm.matches(c.key) {
		if c.pm.err != nil {
			c.eof = true
			return
		}
		c.advance()
	}
}

// err is what stopped the scan early, if anything did.
func (c *keyCursor) err() error { return c.pm.err }

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
	c.advance()
	c.skipUnmatched()
}

// advance moves the iterator to the next key in the ranges.
func (c *keyCursor) advance() {
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
	c.pm.free()
}

// patternMatch matches keys against the patterns of exact LIKE and GLOB
// tokens with SQLite's own matcher, sqlite3_strlike and sqlite3_strglob
// (the functions LIKE and GLOB call: the same case folding, wildcards,
// UTF-8 decoding, and the end of either string at its first NUL). The
// patterns and the key are NUL-terminated copies in C memory.
type patternMatch struct {
	tls    *libc.TLS
	pats   []uintptr // C strings
	globs  []bool
	buf    uintptr // the key, NUL-terminated
	bufCap int
	err    error // sticky: a key could not be matched
}

// init makes the matcher match pats (none: every key matches).
func (m *patternMatch) init(tls *libc.TLS, pats []pattern) error {
	m.free()
	if len(pats) == 0 {
		return nil
	}
	if tls == nil {
		return errors.New("kvtool/query: no connection to match a pattern with")
	}
	m.tls = tls
	for _, p := range pats {
		z := mallocString(tls, p.text)
		if z == 0 {
			return errors.New("kvtool/query: out of memory for a pattern")
		}
		m.pats, m.globs = append(m.pats, z), append(m.globs, p.glob)
	}
	return nil
}

// matches reports whether key matches every pattern.
func (m *patternMatch) matches(key string) bool {
	if len(m.pats) == 0 {
		return true
	}
	if len(key)+1 > m.bufCap {
		p := sqlite3.Xsqlite3_realloc64(m.tls, m.buf, uint64(max(len(key)+1, 64)))
		if p == 0 {
			m.err = errors.New("kvtool/query: out of memory for a key")
			return false
		}
		m.buf, m.bufCap = p, max(len(key)+1, 64)
	}
	b := unsafe.Slice((*byte)(cptr(m.buf)), len(key)+1)
	copy(b, key)
	b[len(key)] = 0
	for i, z := range m.pats {
		var rc int32
		if m.globs[i] {
			rc = sqlite3.Xsqlite3_strglob(m.tls, z, m.buf)
		} else {
			rc = sqlite3.Xsqlite3_strlike(m.tls, z, m.buf, 0)
		}
		if rc != 0 {
			return false
		}
	}
	return true
}

// free releases the C strings.
func (m *patternMatch) free() {
	for _, z := range m.pats {
		sqlite3.Xsqlite3_free(m.tls, z)
	}
	if m.buf != 0 {
		sqlite3.Xsqlite3_free(m.tls, m.buf)
	}
	*m = patternMatch{pats: m.pats[:0], globs: m.globs[:0]}
}

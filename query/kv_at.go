package query

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"modernc.org/sqlite/vtab"
)

// kv_at is the state at a past log index, as a table-valued function:
//
//	SELECT * FROM kv_at(N)        -- kv_at(key TEXT, value, index HIDDEN)
//
// The state is rebuilt the way `kvtool replay --to-index N` rebuilds it
// (manifest -> base -> deltas -> WAL up to N), once per session and N. An
// N the retained files do not cover is an error naming those they do.
//
// Pushed down: index = N, which is required (the plan without it costs
// more than any other and its Filter fails with ErrNoIndex, so SQLite picks
// it only when the query gives no index at all), and on key the same as kv
// (keyplan.go), for the same reasons.
var kvAtDef = tableDef{
	name:   "kv_at",
	schema: `CREATE TABLE x(key TEXT PRIMARY KEY, value, "index" INTEGER HIDDEN) WITHOUT ROWID`,
	open:   func(s *Session) vtab.Table { return &kvAtTable{baseTable{s}} },
}

const (
	kvAtIndexCol = 2
	tokIndex     = "index="
)

type kvAtTable struct{ baseTable }

func (t *kvAtTable) BestIndex(info *vtab.IndexInfo) error { return t.bestIndexDetail(info, nil) }

func (t *kvAtTable) bestIndexDetail(info *vtab.IndexInfo, details []constraintDetail) error {
	at := -1
	for i, c := range info.Constraints {
		if c.Usable && c.Column == kvAtIndexCol && c.Op == vtab.OpEQ {
			at = i
			break
		}
	}
	if at < 0 {
		info.IdxStr = "no-index"
		info.EstimatedCost, info.EstimatedRows = math.MaxFloat64/4, fullScanRows
		return nil
	}
	info.Constraints[at].ArgIndex = 0
	info.Constraints[at].Omit = true // the index is the table's argument, not a row filter
	p := planKey(info, details, kvKeyCol, 1, t.s.pushMode())
	info.IdxStr = p.idxStr(tokIndex)
	info.EstimatedRows = p.estimate()
	info.EstimatedCost = float64(info.EstimatedRows)
	if p.unique {
		info.IdxFlags |= vtab.IndexScanUnique
	}
	return nil
}

func (t *kvAtTable) Open() (vtab.Cursor, error) {
	return &kvAtCursor{baseCursor: baseCursor{s: t.s}}, nil
}

type kvAtCursor struct {
	baseCursor
	keys  keyCursor
	index uint64
}

func (c *kvAtCursor) Filter(_ int, idxStr string, vals []vtab.Value) error {
	toks := c.tokens(idxStr)
	if len(toks) == 0 || toks[0] != tokIndex || len(vals) == 0 {
		return c.fail(ErrNoIndex)
	}
	n, err := logIndex(vals[0])
	if err != nil {
		return c.fail(err)
	}
	st, err := c.s.stateAt(n)
	if err != nil {
		return c.fail(err)
	}
	c.index = n
	sc, err := newKeyScan(toks[1:], vals[1:])
	if err == nil {
		err = c.keys.start(st, sc, c.s.tls)
	}
	if err != nil {
		return c.fail(err)
	}
	return nil
}

func (c *kvAtCursor) realTexts() {}

// logIndex reads kv_at's argument: a positive integer.
func logIndex(v vtab.Value) (uint64, error) {
	switch v := v.(type) {
	case int64:
		if v > 0 {
			return uint64(v), nil
		}
	case realArg:
		if f := v.F; f > 0 && f == math.Trunc(f) && f < math.MaxInt64 {
			return uint64(f), nil
		}
	case string:
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil && n > 0 {
			return n, nil
		}
	}
	return 0, fmt.Errorf("kv_at(%v): the log index must be a positive integer", v)
}

func (c *kvAtCursor) Next() error {
	c.keys.next()
	if err := c.keys.err(); err != nil {
		return c.fail(err)
	}
	return c.step()
}

func (c *kvAtCursor) Eof() bool { return c.keys.eof }

func (c *kvAtCursor) Column(col int) (vtab.Value, error) {
	switch col {
	case kvKeyCol:
		return c.keys.keyValue(), nil
	case kvAtIndexCol:
		return int64(c.index), nil
	}
	return c.keys.valueValue(), nil
}

func (c *kvAtCursor) Close() error {
	c.keys.release()
	return nil
}

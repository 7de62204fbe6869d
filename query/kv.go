package query

import "modernc.org/sqlite/vtab"

// kv is the state: one row per key, in key order.
//
//	kv(key TEXT, value)
//
// Pushed down (see keyplan.go for why each is safe): key = and IN (a point
// lookup per value), key >, >=, <, <= (a range), key LIKE and key GLOB with
// a literal prefix (prefix ranges; LIKE's in every ASCII case), and ORDER
// BY key in either direction (the scan's own order). SQLite checks every
// constraint again on each row, except the ranges, LIKE and GLOB the scan
// decides exactly (keyplan.go, exactFor), so anything else (a constraint
// on value, NOT, OR, functions of key, LIMIT) is simply left to it: it sees
// a superset and filters. A value that is valid UTF-8 is TEXT, any other a
// BLOB.
var kvDef = tableDef{
	name:   "kv",
	schema: "CREATE TABLE x(key TEXT PRIMARY KEY, value) WITHOUT ROWID",
	open:   func(s *Session) vtab.Table { return &kvTable{baseTable: baseTable{s}} },
}

const kvKeyCol = 0

type kvTable struct {
	baseTable
	// idle is a closed cursor kept for the next Open: a point lookup opens
	// a cursor per run, and a kept one has its plan's tokens already split
	// (a statement run again has the same plan) and costs no allocation.
	// SQLite calls a table from the session's one goroutine at a time.
	idle *kvCursor
}

func (t *kvTable) BestIndex(info *vtab.IndexInfo) error { return t.bestIndexDetail(info, nil) }

func (t *kvTable) bestIndexDetail(info *vtab.IndexInfo, details []constraintDetail) error {
	p := planKey(info, details, kvKeyCol, 0, t.s.pushMode())
	info.IdxStr = p.idxStr()
	info.EstimatedRows = p.estimate()
	info.EstimatedCost = float64(info.EstimatedRows)
	if p.unique {
		info.IdxFlags |= vtab.IndexScanUnique
	}
	return nil
}

func (t *kvTable) Open() (vtab.Cursor, error) {
	if c := t.idle; c != nil {
		t.idle = nil
		c.row = 0
		return c, nil
	}
	return &kvCursor{baseCursor: baseCursor{s: t.s}, t: t}, nil
}

type kvCursor struct {
	baseCursor
	t    *kvTable
	keys keyCursor
}

func (c *kvCursor) Filter(_ int, idxStr string, vals []vtab.Value) error {
	st, err := c.s.liveState()
	if err != nil {
		return c.fail(err)
	}
	sc, err := newKeyScan(c.tokens(idxStr), vals)
	if err == nil {
		err = c.keys.start(st, sc, c.s.tls)
	}
	if err != nil {
		return c.fail(err)
	}
	return nil
}

func (c *kvCursor) realTexts() {}

func (c *kvCursor) Next() error {
	c.keys.next()
	if err := c.keys.err(); err != nil {
		return c.fail(err)
	}
	return c.step()
}

func (c *kvCursor) Eof() bool { return c.keys.eof }

func (c *kvCursor) Column(col int) (vtab.Value, error) {
	if col == kvKeyCol {
		return c.keys.keyValue(), nil
	}
	return c.keys.valueValue(), nil
}

// Close gives the cursor back to its table for the next Open; it holds no
// state or row then (keyCursor.reset).
func (c *kvCursor) Close() error {
	c.keys.reset()
	c.t.idle = c
	return nil
}

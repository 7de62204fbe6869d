package query

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"modernc.org/sqlite/vtab"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// wal is the log: one row per logged operation.
//
//	wal(index INTEGER, term INTEGER, segment TEXT, offset INTEGER,
//	    op TEXT, key TEXT, value, delta INTEGER)
//
// A transaction entry gives one row per effect, in the record's order: op
// 'put' (value set) or 'del'. The WAL holds final effects, not increments:
// delta is the integer change a put made to its key (new value minus the
// value before, a missing key counting as 0), NULL for a delete, for a
// value that is not a decimal integer, or when the value before the
// entry is not known (before the oldest state the files can rebuild). It
// is computed only when the query uses it, from the state before the first
// entry read (as kv_at rebuilds it). Any other entry is one row, op 'noop'
// or 'conf', with NULL key. segment and offset say where the entry's frame
// is. A torn tail ends the table (nothing in it was acknowledged); other
// damage is an error naming the file and offset. Against a live store the
// table ends at the snapshot's index, so it agrees with kv.
//
// Pushed down: index =, IN, >, >=, <, <= with integer values (the scan
// starts at the lower bound, found by segment name, and stops after the
// upper), and ORDER BY index ascending when it is the only term (the log's
// order; rows of one entry come out together). SQLite checks every
// constraint again, so a bound of another type is ignored here and left to
// it, as is everything else.
var walDef = tableDef{
	name:   "wal",
	schema: `CREATE TABLE x("index" INTEGER, term INTEGER, segment TEXT, offset INTEGER, op TEXT, key TEXT, value, delta INTEGER)`,
	open:   func(s *Session) vtab.Table { return &walTable{baseTable{s}} },
}

const (
	walIndexCol = 0
	walDeltaCol = 7
	tokDelta    = "delta"
)

var walTokens = map[vtab.ConstraintOp]string{
	vtab.OpEQ: "index=", vtab.OpGT: "index>", vtab.OpGE: "index>=", vtab.OpLT: "index<", vtab.OpLE: "index<=",
}

type walTable struct{ baseTable }

func (t *walTable) BestIndex(info *vtab.IndexInfo) error {
	var toks []string
	if t.s.pushMode().keys {
		for i, c := range info.Constraints {
			if tok := walTokens[c.Op]; c.Usable && c.Column == walIndexCol && tok != "" {
				info.Constraints[i].ArgIndex = len(toks)
				toks = append(toks, tok)
			}
		}
		if len(info.OrderBy) == 1 && info.OrderBy[0].Column == walIndexCol && !info.OrderBy[0].Desc {
			info.OrderByConsumed = true
			toks = append(toks, tokAsc)
		}
	}
	if info.ColUsed&(1<<walDeltaCol) != 0 {
		toks = append(toks, tokDelta)
	}
	info.IdxStr = strings.Join(toks, " ")
	info.EstimatedRows = fullScanRows
	if len(toks) > 0 && toks[0] != tokAsc && toks[0] != tokDelta {
		info.EstimatedRows = 100
	}
	info.EstimatedCost = float64(info.EstimatedRows)
	return nil
}

func (t *walTable) Open() (vtab.Cursor, error) {
	return &walCursor{baseCursor: baseCursor{s: t.s}}, nil
}

// walRow is one row of the table.
type walRow struct {
	op    string
	key   []byte // nil: NULL
	value []byte // nil: NULL
	delta *int64
}

type walCursor struct {
	baseCursor
	r       *segment.Reader
	to      uint64
	e       segment.Entry
	seg     string
	off     int64
	rows    []walRow // the rows of the current entry
	i       int      // current row in rows
	eof     bool
	deltas  *deltaTracker // nil unless delta is used
	started bool
}

func (c *walCursor) Filter(_ int, idxStr string, vals []vtab.Value) error {
	c.Close()
	from, to, wantDelta := walBounds(c.tokens(idxStr), vals)
	if c.s.src.Snapshot != nil {
		to = min(to, c.s.src.Snapshot.Index())
	}
	c.to, c.eof, c.started, c.deltas = to, false, false, nil
	if wantDelta {
		c.deltas = &deltaTracker{s: c.s, overlay: map[string][]byte{}}
	}
	if from > to {
		c.eof = true
		return nil
	}
	r, err := segment.NewReader(c.s.src.FS, filepath.Join(c.s.src.Dir, format.WALDir), from)
	if vfs.IsNotExist(err) {
		c.eof = true
		return nil
	} else if err != nil {
		return c.fail(err)
	}
	c.r = r
	return c.nextEntry()
}

// walBounds reads the pushed-down index bounds (inclusive) and flags.
func walBounds(toks []string, vals []vtab.Value) (from, to uint64, delta bool) {
	from, to = 1, math.MaxUint64
	for i, tok := range toks {
		if tok == tokDelta {
			delta = true
		}
		if i >= len(vals) {
			continue
		}
		n, ok := vals[i].(int64)
		if !ok {
			continue // not an integer: left to SQLite
		}
		switch tok {
		case "index=":
			from, to = max(from, clampIndex(n)), min(to, clampIndex(n))
		case "index>":
			if n == math.MaxInt64 {
				from, to = 1, 0
			}
			from = max(from, clampIndex(n)+1)
		case "index>=":
			from = max(from, clampIndex(n))
		case "index<":
			if n <= 1 {
				to = 0
			} else {
				to = min(to, uint64(n-1))
			}
		case "index<=":
			if n < 1 {
				to = 0
			} else {
				to = min(to, uint64(n))
			}
		}
	}
	return from, to, delta
}

// clampIndex maps an integer bound to an index (indexes start at 1; below
// that every index is above the bound).
func clampIndex(n int64) uint64 {
	if n < 0 {
		return 0
	}
	return uint64(n)
}

// nextEntry reads the next entry into rows, or sets eof.
func (c *walCursor) nextEntry() error {
	if c.started && c.e.Index >= c.to {
		c.eof = true
		return nil
	}
	e, err := c.r.Next()
	switch {
	case err == io.EOF || errors.Is(err, segment.ErrTornTail):
		c.eof = true
		return nil
	case err != nil:
		return c.fail(err)
	case e.Index > c.to:
		c.eof = true
		return nil
	}
	c.started = true
	c.e = e
	path, off := c.r.Position()
	c.seg, c.off = filepath.Base(path), off
	if err := c.decode(e); err != nil {
		return c.fail(err)
	}
	c.i = 0
	return nil
}

// decode turns an entry into its rows (copying what they keep).
func (c *walCursor) decode(e segment.Entry) error {
	c.rows = c.rows[:0]
	if c.deltas != nil {
		c.deltas.begin(e.Index)
	}
	switch e.Type {
	case format.FrameWALTxn:
		err := format.DecodeTxnRecord(e.Data, func(kind uint8, key, value []byte) {
			row := walRow{op: "put", key: bytes.Clone(key), value: bytes.Clone(value)}
			if kind == format.TxnDelete {
				row.op, row.value = "del", nil
			} else if row.value == nil {
				row.value = []byte{}
			}
			if c.deltas != nil {
				row.delta = c.deltas.apply(row.key, row.value, kind == format.TxnDelete)
			}
			c.rows = append(c.rows, row)
		})
		if err != nil {
			path, off := c.r.Position()
			return format.Corruptf(path, off, "WAL entry %d: %v", e.Index, err)
		}
		if len(c.rows) == 0 {
			c.rows = append(c.rows, walRow{op: "txn"})
		}
	case format.FrameWALConf:
		c.rows = append(c.rows, walRow{op: "conf"})
	default:
		c.rows = append(c.rows, walRow{op: "noop"})
	}
	return nil
}

func (c *walCursor) Next() error {
	if c.i++; c.i >= len(c.rows) {
		if err := c.nextEntry(); err != nil {
			return err
		}
	}
	return c.step()
}

func (c *walCursor) Eof() bool { return c.eof }

func (c *walCursor) Column(col int) (vtab.Value, error) {
	if c.eof || c.i >= len(c.rows) {
		return nil, errNoCursor
	}
	row := c.rows[c.i]
	switch col {
	case 0:
		return int64(c.e.Index), nil
	case 1:
		return int64(c.e.Term), nil
	case 2:
		return c.seg, nil
	case 3:
		return c.off, nil
	case 4:
		return row.op, nil
	case 5:
		if row.key == nil {
			return nil, nil
		}
		return string(row.key), nil
	case 6:
		if row.value == nil {
			return nil, nil
		}
		return valueOf(row.value), nil
	case walDeltaCol:
		if row.delta == nil {
			return nil, nil
		}
		return *row.delta, nil
	}
	return nil, fmt.Errorf("kvtool/query: wal has no column %d", col)
}

func (c *walCursor) Close() error {
	if c.r != nil {
		c.r.Close()
		c.r = nil
	}
	return nil
}

// deltaTracker knows each key's value before the entry being read: the
// state before the first entry (rebuilt like kv_at), overlaid with the
// effects read since.
type deltaTracker struct {
	s       *Session
	base    kvState // nil: the state before the first entry is not known
	started bool
	overlay map[string][]byte // values set since; a deleted key maps to nil
}

// begin is called with each entry's index before its effects.
func (d *deltaTracker) begin(index uint64) {
	if d.started {
		return
	}
	d.started = true
	if index == 1 {
		d.base = &memState{}
		return
	}
	if st, err := d.s.stateAt(index - 1); err == nil {
		d.base = st
	}
}

// apply records an effect and returns its delta, if known.
func (d *deltaTracker) apply(key, value []byte, del bool) *int64 {
	old, known := d.before(string(key))
	if del {
		d.overlay[string(key)] = nil
	} else {
		d.overlay[string(key)] = value
	}
	if del || !known {
		return nil
	}
	nv, err := strconv.ParseInt(string(value), 10, 64)
	if err != nil {
		return nil
	}
	ov := int64(0)
	if old != nil {
		if ov, err = strconv.ParseInt(string(old), 10, 64); err != nil {
			return nil
		}
	}
	delta := nv - ov
	if (nv >= 0) != (ov >= 0) && (delta >= 0) != (nv >= 0) {
		return nil // overflowed
	}
	return &delta
}

// before is the key's value before the current effect (nil: absent).
func (d *deltaTracker) before(key string) ([]byte, bool) {
	if v, ok := d.overlay[key]; ok {
		return v, true
	}
	if d.base == nil {
		return nil, false
	}
	v, _ := d.base.Get(key)
	return v, true
}

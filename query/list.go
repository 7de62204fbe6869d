package query

import (
	"fmt"

	"modernc.org/sqlite/vtab"
)

// listTable is a table of a few rows (one per file, per lease) computed
// whole when a scan starts. It pushes nothing down: SQLite filters and
// orders its rows, which costs nothing next to reading the files.
type listTable struct {
	baseTable
	rows func(s *Session) ([][]vtab.Value, error)
}

func listDef(name, schema string, rows func(s *Session) ([][]vtab.Value, error)) tableDef {
	return tableDef{name: name, schema: schema, open: func(s *Session) vtab.Table {
		return &listTable{baseTable: baseTable{s}, rows: rows}
	}}
}

func (t *listTable) BestIndex(info *vtab.IndexInfo) error {
	info.EstimatedRows, info.EstimatedCost = 100, 100
	return nil
}

func (t *listTable) Open() (vtab.Cursor, error) {
	return &listCursor{baseCursor: baseCursor{s: t.s}, t: t}, nil
}

type listCursor struct {
	baseCursor
	t    *listTable
	rows [][]vtab.Value
	i    int
}

func (c *listCursor) Filter(int, string, []vtab.Value) error {
	rows, err := c.t.rows(c.s)
	if err != nil {
		return c.fail(err)
	}
	c.rows, c.i = rows, 0
	return nil
}

func (c *listCursor) Next() error {
	c.i++
	return c.step()
}

func (c *listCursor) Eof() bool { return c.i >= len(c.rows) }

func (c *listCursor) Column(col int) (vtab.Value, error) {
	if c.i >= len(c.rows) || col >= len(c.rows[c.i]) {
		return nil, fmt.Errorf("kvtool/query: no column %d", col)
	}
	return c.rows[c.i][col], nil
}

// Helpers that turn Go values into SQLite ones.

func boolValue(b bool) vtab.Value {
	if b {
		return int64(1)
	}
	return int64(0)
}

func errValue(err error) vtab.Value {
	if err == nil {
		return nil
	}
	return err.Error()
}

func textOrNull(s string) vtab.Value {
	if s == "" {
		return nil
	}
	return s
}

package query

import (
	"context"
	"database/sql"
	"fmt"
)

// Rows is the result of a query, read one row at a time:
//
//	for rows.Next() { use(rows.Values()) }
//	err := rows.Err(); rows.Close()
//
// A value is nil (NULL), int64, float64, string (TEXT) or []byte (BLOB).
type Rows struct {
	s    *Session
	ctx  context.Context
	sql  string
	rows *sql.Rows
	cols []string
	vals []any
	ptrs []any
	stop func()
	err  error // sticky
}

func newRows(s *Session, ctx context.Context, text string, rows *sql.Rows, stop func()) (*Rows, error) {
	cols, err := rows.Columns()
	if err != nil {
		rows.Close()
		stop()
		return nil, s.queryError(ctx, text, err)
	}
	r := &Rows{s: s, ctx: ctx, sql: text, rows: rows, cols: cols, stop: stop,
		vals: make([]any, len(cols)), ptrs: make([]any, len(cols))}
	for i := range r.vals {
		r.ptrs[i] = &r.vals[i]
	}
	return r, nil
}

// Columns returns the names of the result's columns.
func (r *Rows) Columns() []string { return r.cols }

// Next moves to the next row and reports whether there is one; at the end
// or on an error it returns false (see Err).
func (r *Rows) Next() bool {
	if r.err != nil {
		return false
	}
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			r.err = r.s.queryError(r.ctx, r.sql, err)
		} else if err := r.s.takeTableErr(); err != nil {
			r.err = err
		}
		return false
	}
	if err := r.rows.Scan(r.ptrs...); err != nil {
		r.err = fmt.Errorf("kvtool/query: read row: %w", err)
		return false
	}
	return true
}

// Values returns the current row. The slice is reused by the next call to
// Next; the values in it are not.
func (r *Rows) Values() []any { return r.vals }

// Err returns the error that ended the rows, if any.
func (r *Rows) Err() error { return r.err }

// Close releases the statement. It is safe to call more than once.
func (r *Rows) Close() error {
	if r.rows == nil {
		return nil
	}
	err := r.rows.Close()
	r.rows = nil
	r.stop()
	return err
}

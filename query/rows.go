package query

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
)

// Rows is the result of a query, read one row at a time:
//
//	for rows.Next() { use(rows.Values()) }
//	err := rows.Err(); rows.Close()
//
// A value is nil (NULL), int64, float64, string (TEXT) or []byte (BLOB).
type Rows struct {
	s     *Session
	ctx   context.Context
	st    *Stmt
	rows  driver.Rows
	dvals []driver.Value
	vals  []any
	stop  func()
	err   error // sticky
	// dbuf and vbuf hold dvals and vals when there are few columns, so
	// that a point lookup's rows are one allocation.
	dbuf [4]driver.Value
	vbuf [4]any
}

func newRows(s *Session, ctx context.Context, st *Stmt, rows driver.Rows, stop func()) *Rows {
	n := len(rows.Columns())
	r := &Rows{s: s, ctx: ctx, st: st, rows: rows, stop: stop}
	if n <= len(r.dbuf) {
		r.dvals, r.vals = r.dbuf[:n], r.vbuf[:n]
	} else {
		r.dvals, r.vals = make([]driver.Value, n), make([]any, n)
	}
	return r
}

// Columns returns the names of the result's columns.
func (r *Rows) Columns() []string { return r.rows.Columns() }

// Next moves to the next row and reports whether there is one; at the end
// or on an error it returns false (see Err).
func (r *Rows) Next() bool {
	if r.err != nil || r.st == nil {
		return false
	}
	err := r.rows.Next(r.dvals)
	switch {
	case err == io.EOF:
		r.err = r.s.takeTableErr()
		return false
	case err != nil:
		r.err = r.s.queryError(r.ctx, r.st.text, err)
		return false
	}
	for i, v := range r.dvals {
		r.vals[i] = v
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
	if r.st == nil {
		return nil
	}
	err := r.rows.Close()
	r.stop()
	delete(r.s.open, r)
	if derr := r.st.done(); err == nil {
		err = derr
	}
	r.st = nil
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("kvtool/query: close rows: %w", err)
	}
	return nil
}

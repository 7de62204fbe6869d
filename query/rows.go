package query

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
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
	// pstmt is the driver's statement when the rows read themselves
	// (readRow), 0 when the driver reads them; stepped says the driver
	// has read the first row, which it steps to before Query returns.
	pstmt   uintptr
	stepped bool
	// buf and strs are the chunks stepRow takes rows' bytes and strings
	// from (rowChunk bytes, rowChunk/16 strings at a time), so that most
	// rows allocate nothing; a row's values never change once read (a
	// chunk is only ever appended to, and a new one replaces a full one).
	buf  []byte
	strs []string
	done bool // the last row has been read, or an error ended the rows
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

// Reading rows without the driver.
//
// The driver's rows.Next copies each TEXT or BLOB column into a slice of
// its own and boxes each string into an interface: two allocations a
// column, a fifth of a kv range scan's row. After the first row (which
// the driver has stepped to, and reads) the rows step the driver's
// statement themselves and read a row into chunks of bytes and strings
// shared by many rows (rowChunk), giving the same values the driver gives: int64, float64, string, []byte (nil when
// empty) and nil. The driver's statement is read from its rows' pstmt
// field, like the connection's handles (connHandle); without it, or when
// a column is declared as a time (which the driver would parse), the
// driver reads every row.
//
// Rows look for the statement at their second row: a point lookup's one
// row costs nothing more.
func ownStmt(st *Stmt, rows driver.Rows, tls *libc.TLS) uintptr {
	if st.ownRows == 0 {
		st.ownRows = -1
		if ownable(rows) {
			st.ownRows = 1
		}
	}
	if st.ownRows < 0 || tls == nil {
		return 0
	}
	v := reflect.ValueOf(rows)
	f, ok := pstmtField(v.Type())
	if !ok {
		return 0
	}
	return uintptr(v.Elem().Field(f).Uint())
}

// ownable reports whether rows may read themselves: the driver's rows
// have a statement and no column the driver would parse as a time.
func ownable(rows driver.Rows) bool {
	if _, ok := pstmtField(reflect.TypeOf(rows)); !ok {
		return false
	}
	dt, ok := rows.(driver.RowsColumnTypeDatabaseTypeName)
	if !ok {
		return false
	}
	for i := range rows.Columns() {
		switch dt.ColumnTypeDatabaseTypeName(i) {
		case "DATE", "DATETIME", "TIMESTAMP":
			return false
		}
	}
	return true
}

// pstmtField is the index of the pstmt field of the driver's rows type t
// (a pointer to a struct), looked up once.
func pstmtField(t reflect.Type) (int, bool) {
	if c := pstmtType.Load(); c != nil && c.t == t {
		return c.index, c.ok
	}
	c := &fieldIndex{t: t}
	if t != nil && t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
		if f, ok := t.Elem().FieldByName("pstmt"); ok && f.Type.Kind() == reflect.Uintptr && len(f.Index) == 1 {
			c.index, c.ok = f.Index[0], true
		}
	}
	pstmtType.Store(c)
	return c.index, c.ok
}

// pstmtType caches pstmtField's answer for the one rows type the driver
// has (sessions on many goroutines read it).
var pstmtType atomic.Pointer[fieldIndex]

type fieldIndex struct {
	t     reflect.Type
	index int
	ok    bool
}

// rowChunk is the size of the chunks stepRow takes rows' bytes from. A
// value kept after its rows keeps its chunk alive (at most this much).
const rowChunk = 4096

// stepRow steps the statement to its next row and reads it into dvals;
// it returns io.EOF after the last row.
func (r *Rows) stepRow() error {
	tls := r.s.tls
	switch rc := sqlite3.Xsqlite3_step(tls, r.pstmt); rc {
	case sqlite3.SQLITE_ROW:
	case sqlite3.SQLITE_DONE:
		return io.EOF
	default:
		return &stepError{msg: stepMessage(tls, r.s.db, rc)}
	}
	// Each column's type and length, read once: every call costs.
	var typeBuf, lenBuf [8]int32
	types, lens := typeBuf[:0], lenBuf[:0]
	size := 0
	for i := range r.dvals {
		t, n := sqlite3.Xsqlite3_column_type(tls, r.pstmt, int32(i)), int32(0)
		if t == sqlite3.SQLITE_TEXT || t == sqlite3.SQLITE_BLOB {
			n = sqlite3.Xsqlite3_column_bytes(tls, r.pstmt, int32(i))
			size += int(n)
		}
		types, lens = append(types, t), append(lens, n)
	}
	if cap(r.buf)-len(r.buf) < size {
		r.buf = make([]byte, 0, max(size, rowChunk))
	}
	buf := r.buf
	if cap(r.strs)-len(r.strs) < len(r.dvals) {
		r.strs = make([]string, 0, max(len(r.dvals), rowChunk/16))
	}
	strs := r.strs[len(r.strs) : len(r.strs)+len(r.dvals)]
	r.strs = r.strs[:len(r.strs)+len(r.dvals)]
	for i := range r.dvals {
		col := int32(i)
		switch types[i] {
		case sqlite3.SQLITE_INTEGER:
			r.dvals[i] = sqlite3.Xsqlite3_column_int64(tls, r.pstmt, col)
		case sqlite3.SQLITE_FLOAT:
			r.dvals[i] = sqlite3.Xsqlite3_column_double(tls, r.pstmt, col)
		case sqlite3.SQLITE_TEXT:
			p, n := sqlite3.Xsqlite3_column_text(tls, r.pstmt, col), int(lens[i])
			if p != 0 && n > 0 {
				at := len(buf)
				buf = append(buf, unsafe.Slice((*byte)(cptr(p)), n)...)
				strs[i] = bytesText(buf[at:])
			}
			r.dvals[i] = textRef(&strs[i])
		case sqlite3.SQLITE_BLOB:
			p, n := sqlite3.Xsqlite3_column_blob(tls, r.pstmt, col), int(lens[i])
			if p == 0 || n == 0 {
				r.dvals[i] = []byte(nil)
				continue
			}
			at := len(buf)
			buf = append(buf, unsafe.Slice((*byte)(cptr(p)), n)...)
			r.dvals[i] = buf[at:len(buf):len(buf)]
		default:
			r.dvals[i] = nil
		}
	}
	r.buf = buf
	return nil
}

// stepError is a failed step, with the message the driver would give.
type stepError struct{ msg string }

func (e *stepError) Error() string { return e.msg }

// stepMessage is the driver's message for a failed step (errstrForDB).
func stepMessage(tls *libc.TLS, db uintptr, rc int32) string {
	str := libc.GoString(sqlite3.Xsqlite3_errstr(tls, rc))
	if msg := libc.GoString(sqlite3.Xsqlite3_errmsg(tls, db)); msg != str {
		return fmt.Sprintf("%s: %s (%v)", str, msg, rc)
	}
	return fmt.Sprintf("%s (%v)", str, rc)
}

// Columns returns the names of the result's columns.
func (r *Rows) Columns() []string { return r.rows.Columns() }

// Next moves to the next row and reports whether there is one; at the end
// or on an error it returns false (see Err).
func (r *Rows) Next() bool {
	if r.err != nil || r.st == nil || r.done {
		return false
	}
	var err error
	if r.stepped && r.pstmt == 0 {
		r.pstmt = ownStmt(r.st, r.rows, r.s.tls)
	}
	if r.pstmt != 0 {
		err = r.stepRow()
	} else {
		err = r.rows.Next(r.dvals)
		r.stepped = true
	}
	if err != nil {
		r.done = true // stepping again would run the statement again
	}
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

package query

import (
	"unicode/utf8"
	"unsafe"

	"modernc.org/sqlite/vtab"
)

// Column values without copies.
//
// A cursor's Column returns a vtab.Value (an interface), and the bridge
// copies a TEXT value into SQLite's memory before Column's caller returns
// (through the cursor's C buffer, then sqlite3_result_text with
// SQLITE_TRANSIENT: bridge.go). Boxing a string into the interface allocates its
// header, and converting a stored []byte value to a string copies its
// bytes: per row and column, that was most of what a scan allocated. So a
// cursor keeps the row's strings in its own fields and hands the bridge an
// interface pointing at the field (textRef), and a stored value becomes a
// string over the same bytes (bytesText).
//
// Both are safe because of what the bridge does with the value: nothing
// keeps the interface or the string past the Column call, and the field is
// only changed by the cursor's own Filter and Next, which SQLite calls
// after it has taken its copy (TestColumnValuesOutliveTheCursor reads
// values back from wherever SQLite keeps them).

// eface is the layout of an empty interface.
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

// stringType is the type word of an interface holding a string.
var stringType = func() unsafe.Pointer {
	var v any = ""
	return (*eface)(unsafe.Pointer(&v)).typ
}()

// textRef returns *p as a TEXT value without allocating: the interface
// points at *p, which must stay unchanged until the bridge has copied it
// (until Column returns).
func textRef(p *string) vtab.Value {
	var v any
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = stringType, unsafe.Pointer(p)
	return v
}

// bytesText is b as a string without copying; b must never change (stored
// values never do: store.Snapshot and memState hand out values nobody
// modifies).
func bytesText(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// valueOf is a stored value as SQLite sees it: TEXT when it is valid
// UTF-8, else a BLOB. It copies (for values that outlive the call).
func valueOf(v []byte) vtab.Value {
	if utf8.Valid(v) {
		return string(v)
	}
	return v
}

// rowValue is a cursor's current stored value as a Column result: TEXT
// (through textRef) when it is valid UTF-8, else a BLOB (which the bridge
// copies too). It checks the bytes once per row, since SQLite may ask for
// a column twice.
type rowValue struct {
	raw     []byte
	text    string // raw as a string, when isText
	isText  bool
	checked bool // isText and text are raw's
}

// set makes v the current row's value.
func (r *rowValue) set(v []byte) { r.raw, r.checked = v, false }

func (r *rowValue) value() vtab.Value {
	if !r.checked {
		r.checked, r.isText = true, utf8.Valid(r.raw)
		if r.isText {
			r.text = bytesText(r.raw)
		}
	}
	if r.isText {
		return textRef(&r.text)
	}
	return r.raw
}

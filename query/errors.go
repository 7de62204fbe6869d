package query

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrReadOnly is returned (wrapped) for a statement that would write,
	// attach a database, load an extension or change a setting: queries
	// are read-only.
	ErrReadOnly = errors.New("queries are read-only")
	// ErrNoIndex is returned (wrapped) when kv_at is used without a log
	// index: SELECT * FROM kv_at(N).
	ErrNoIndex = errors.New("kv_at needs a log index: SELECT * FROM kv_at(N)")

	errClosed   = errors.New("kvtool/query: the session is closed")
	errRowsOpen = errors.New("kvtool/query: the session has rows open: close them first")
)

// SQLError is a statement SQLite rejected: a syntax error, an unknown table
// or column, a wrong use of a function.
type SQLError struct {
	Msg    string // SQLite's message
	Offset int    // byte offset in SQL of the error, -1 if SQLite gave none
	SQL    string
}

func (e *SQLError) Error() string {
	if e.Offset < 0 || e.Offset > len(e.SQL) {
		return e.Msg
	}
	line, col := position(e.SQL, e.Offset)
	return fmt.Sprintf("%s (at line %d, column %d)", e.Msg, line, col)
}

// position turns a byte offset into a 1-based line and column.
func position(text string, off int) (line, col int) {
	before := text[:off]
	line = strings.Count(before, "\n") + 1
	col = off - strings.LastIndex(before, "\n")
	return line, col
}

// cleanMessage drops the driver's decorations from SQLite's message: the
// result code's name before it and its number after it.
func cleanMessage(msg string) string {
	if i := strings.LastIndex(msg, " ("); i > 0 && strings.HasSuffix(msg, ")") {
		msg = msg[:i]
	}
	for _, p := range []string{"SQL logic error: ", "sqlite: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}

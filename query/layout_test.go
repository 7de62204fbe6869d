package query

import (
	"reflect"
	"strings"
	"testing"

	"modernc.org/libc"
)

// The driver's handles are read from its unexported fields by name
// (connHandle, pstmtField). A driver whose types are not laid out as
// expected must make Open fail with an error, or the rows be read by the
// driver: never a panic, never a guess.
func TestDriverLayoutFailsClosed(t *testing.T) {
	for _, c := range []any{
		nil, 7, "conn", struct{ db uintptr }{},
		&struct{}{},
		&struct{ db uintptr }{db: 1},               // no tls
		&struct{ tls *libc.TLS }{tls: &libc.TLS{}}, // no db
		&struct{ db, tls uintptr }{db: 1, tls: 1},  // tls of another type
		&struct {
			db  int64
			tls *libc.TLS
		}{db: 1}, // db of another type
		&struct {
			db  uintptr
			tls *libc.TLS
		}{}, // not open
		&struct {
			db  uintptr
			tls *libc.TLS
		}{db: 1}, // not open
		&struct {
			db  *uintptr
			tls **libc.TLS
		}{}, // pointers
		&struct {
			Db  uintptr
			Tls *libc.TLS
		}{Db: 1}, // other names
	} {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("connHandle(%T): panic %v", c, p)
				}
			}()
			if _, _, err := connHandle(c); err == nil || !strings.HasPrefix(err.Error(), "kvtool/query:") {
				t.Errorf("connHandle(%T): %v, want an error", c, err)
			}
		}()
	}
	for _, typ := range []reflect.Type{
		nil, reflect.TypeFor[int](), reflect.TypeFor[*int](), reflect.TypeFor[struct{ pstmt uintptr }](),
		reflect.TypeFor[*struct{ pstmt int64 }](), reflect.TypeFor[*struct{ pstmt *uintptr }](),
		reflect.TypeFor[*struct{ stmt uintptr }](),
		reflect.TypeFor[*struct{ inner struct{ pstmt uintptr } }](),
	} {
		if _, ok := pstmtField(typ); ok {
			t.Errorf("pstmtField(%v): a statement field", typ)
		}
	}
	if i, ok := pstmtField(reflect.TypeFor[*struct {
		x     int
		pstmt uintptr
	}]()); !ok || i != 1 {
		t.Errorf("pstmtField of a struct with pstmt second: %d, %v", i, ok)
	}
	pstmtType.Store(nil) // the cache holds the driver's type again on first use
}

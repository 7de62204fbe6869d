package query

import (
	"context"
	"reflect"
	"sync"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// interrupter stops a running statement when its context ends.
//
// database/sql and modernc.org/sqlite interrupt a statement only while its
// first row is computed; a later step that runs long (an aggregate over a
// large join after a first row was returned) would not stop. So the session
// calls sqlite3_interrupt itself, which SQLite documents as safe from any
// thread. The driver does not export its connection handle; it is read from
// the driver connection's "db" field, checked by name and kind, and without
// it the interrupter does nothing (the tables' cursors still stop at their
// next row, see cursorCheck).
type interrupter struct {
	mu     sync.Mutex
	db     uintptr // the sqlite3* handle, 0 if unknown
	tls    *libc.TLS
	closed bool
}

func newInterrupter(driverConn any) *interrupter {
	in := &interrupter{}
	v := reflect.ValueOf(driverConn)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return in
	}
	f := v.Elem().FieldByName("db")
	if !f.IsValid() || f.Kind() != reflect.Uintptr || f.Uint() == 0 {
		return in
	}
	in.db, in.tls = uintptr(f.Uint()), libc.NewTLS()
	return in
}

// watch interrupts the connection once ctx is done, until the returned
// function is called (when the statement's rows are closed).
func (in *interrupter) watch(ctx context.Context) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-ctx.Done():
			in.interrupt()
		case <-done:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
		})
	}
}

func (in *interrupter) interrupt() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.db != 0 && !in.closed {
		sqlite3.Xsqlite3_interrupt(in.tls, in.db)
	}
}

// errorOffset is the byte offset in the statement of the last error
// SQLite reported, or -1.
func (in *interrupter) errorOffset() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.db == 0 || in.closed {
		return -1
	}
	return int(sqlite3.Xsqlite3_error_offset(in.tls, in.db))
}

// close forgets the handle; call it before the connection is closed.
func (in *interrupter) close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.closed && in.tls != nil {
		in.tls.Close()
	}
	in.closed = true
}

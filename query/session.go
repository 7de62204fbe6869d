package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"modernc.org/libc"
	"modernc.org/sqlite"

	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// Source is what a session reads.
type Source struct {
	FS  vfs.FS // default vfs.Default
	Dir string // the data directory: wal, segments, checkpoints, deltas, manifest, kv_at
	// Snapshot, if set, is the state the kv table reads (a live store's
	// published root). Without it, kv is the state rebuilt from Dir's files
	// (replay up to a torn tail), on first use.
	Snapshot *store.Snapshot
	// Leases, if set, lists the retention leases of a live store (the
	// leases table); without it that table is empty.
	Leases func() []store.LeaseInfo
	// Cluster, if set, is the clustered node the members table reads;
	// without it (a single node, a data directory) that table is empty.
	Cluster Cluster
	// Yield, if set, is called by a scan every few dozen rows (from the
	// query's goroutine) instead of runtime.Gosched: a server uses it to
	// pace long queries so that they leave the cores to its writers. It
	// may sleep; it must not touch the session.
	Yield func()
}

// Options tune a session.
type Options struct {
	// NoPushdown makes every table ignore the query's constraints and
	// ORDER BY, leaving all of it to SQLite: tests compare the two.
	NoPushdown bool
}

// Session is one read-only SQLite connection whose tables read one Source.
// The state kv reads is fixed until Reset. A Session runs one query at a
// time; it is not safe for concurrent use.
//
// The session drives the SQLite driver's connection itself, without
// database/sql: a query is then a prepared statement's step and the rows'
// reads, with none of the pool's locks, dependency maps, per-query
// goroutine and value conversions, which cost a point lookup as much as
// the lookup.
type Session struct {
	id   string
	src  Source
	opts Options
	conn driverConn
	intr *interrupter
	// tls is the connection's libc thread state, for the C calls tables
	// make from inside a statement (patternMatch).
	tls *libc.TLS
	db  uintptr // the connection's sqlite3*
	// unlocked gives the connection its mutex back (dropMutex); nil while
	// it has it.
	unlocked func()
	stmts    stmtCache
	open     map[*Rows]struct{} // rows not closed yet

	// ctx is the context of the query running; cursors check it between
	// rows so that a scan stops when the query is cancelled.
	ctx atomic.Pointer[context.Context]

	// push is what the statement being run lets the tables push down
	// (pushModeOf its text).
	push atomic.Pointer[pushMode]

	// goschedAt is when a scan last let other goroutines run (yield;
	// nanotime), touched only by the query's goroutine.
	goschedAt int64

	mu       sync.Mutex
	denied   string             // what the authorizer refused last ("" if nothing)
	tableErr error              // the first error a table returned in this query
	live     kvState            // the kv table's state, once known
	liveAt   uint64             // its applied index
	states   map[uint64]kvState // kv_at states by index
}

// driverConn is what a session uses of the driver's connection.
type driverConn interface {
	driver.Conn
	driver.ConnPrepareContext
	driver.ExecerContext
}

var (
	sessions  sync.Map // session id -> *Session, for the modules' Connect
	sessionID atomic.Uint64
)

// Open starts a session over src. It opens a private in-memory database,
// registers kvtool's table modules on it (bridge.go), creates the tables,
// then makes the connection read-only.
func Open(ctx context.Context, src Source, opts Options) (*Session, error) {
	s := &Session{id: "s" + strconv.FormatUint(sessionID.Add(1), 10), opts: opts,
		states: map[uint64]kvState{}, open: map[*Rows]struct{}{}}
	s.setSource(src)
	sessions.Store(s.id, s)
	if err := s.openConn(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// sqliteDriver is the driver registered as "sqlite".
var sqliteDriver = sync.OnceValues(func() (driver.Driver, error) {
	db, err := sql.Open("sqlite", "")
	if err != nil {
		return nil, err
	}
	defer db.Close() // it never connected
	return db.Driver(), nil
})

func (s *Session) openConn(ctx context.Context) error {
	drv, err := sqliteDriver()
	if err != nil {
		return fmt.Errorf("kvtool/query: open sqlite: %w", err)
	}
	c, err := drv.Open(":memory:")
	if err != nil {
		return fmt.Errorf("kvtool/query: open sqlite: %w", err)
	}
	conn, ok := c.(driverConn)
	if !ok {
		c.Close()
		return fmt.Errorf("kvtool/query: the sqlite driver's connection (%T) cannot prepare with a context", c)
	}
	s.conn = conn
	s.intr = newInterrupter(c)
	db, tls, err := connHandle(c)
	if err != nil {
		return err
	}
	s.db, s.tls = db, tls
	if err := registerTables(db, tls); err != nil {
		return err
	}
	if err := planWithoutValues(tls, db); err != nil {
		return err
	}
	for _, t := range tables {
		stmt := fmt.Sprintf("CREATE VIRTUAL TABLE %s USING %s(%s)", t.name, moduleName(t.name), s.id)
		if _, err := conn.ExecContext(ctx, stmt, nil); err != nil {
			return fmt.Errorf("kvtool/query: create table %s: %w", t.name, err)
		}
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA query_only = 1", nil); err != nil {
		return fmt.Errorf("kvtool/query: %w", err)
	}
	ar, ok := c.(sqlite.AuthorizerRegisterer)
	if !ok {
		return errors.New("kvtool/query: the sqlite driver cannot install an authorizer")
	}
	if err := ar.RegisterAuthorizer(s.authorize); err != nil {
		return err
	}
	s.unlocked = dropMutex(db)
	return nil
}

// Close ends the session, closing its rows and statements. It is safe to
// call more than once.
func (s *Session) Close() error {
	sessions.Delete(s.id)
	for r := range s.open {
		r.Close()
	}
	s.stmts.closeAll()
	if s.intr != nil {
		s.intr.close()
	}
	if s.unlocked != nil {
		s.unlocked()
		s.unlocked = nil
	}
	var err error
	if s.conn != nil {
		err = s.conn.Close()
		s.conn = nil
	}
	return err
}

// Query runs one SQL statement and returns its rows, which stream: each is
// produced as Rows.Next asks for it. Cancelling ctx stops the statement
// (Rows.Err then wraps ctx.Err()). Close the rows before the next Query.
// A statement that does not parse is a *SQLError; one that would write,
// attach or load anything is an error wrapping ErrReadOnly.
//
// The session keeps the statements of the last texts it ran (stmtCache):
// running the same text again, with other arguments, skips parsing and
// planning.
func (s *Session) Query(ctx context.Context, text string, args ...any) (*Rows, error) {
	if strings.TrimSpace(text) == "" {
		return nil, &SQLError{Msg: "the query is empty", Offset: -1}
	}
	if s.conn == nil {
		return nil, errClosed
	}
	st := s.stmts.get(text)
	if st == nil {
		var err error
		if st, err = s.prepare(ctx, text); err != nil {
			return nil, err
		}
		s.stmts.put(st)
	}
	rows, err := st.Query(ctx, args...)
	if !st.owned {
		st.Close() // the cache is full of running statements: now, or when rows close
	}
	return rows, err
}

// Stmt is a prepared statement of a session: parsed and planned once, run
// many times with different arguments. Its rows must be closed before it
// runs again.
type Stmt struct {
	s    *Session
	text string
	push pushMode
	stmt driver.Stmt
	busy bool // its rows are open
	// ctx and args are the running query's context and arguments: the
	// session points at ctx (Session.begin), and args is reused by the
	// next run, so that a run allocates neither.
	ctx   context.Context
	args  []driver.NamedValue
	used  uint64 // when the cache last handed it out
	owned bool   // by the cache: Close leaves it to the cache
	// release: close the statement when its rows close (it was closed,
	// or dropped by the cache, while they were open).
	release bool
	// ownRows says whether its rows may read themselves (ownStmt): 0 not
	// known yet, 1 yes, -1 no. A statement's column types never change.
	ownRows int8
}

// Prepare prepares text for Stmt.Query (errors as Query's).
func (s *Session) Prepare(ctx context.Context, text string) (*Stmt, error) {
	if s.conn == nil {
		return nil, errClosed
	}
	return s.prepare(ctx, text)
}

func (s *Session) prepare(ctx context.Context, text string) (*Stmt, error) {
	push := s.pushModeOf(text)
	s.begin(&ctx, &push)
	stmt, err := s.conn.PrepareContext(ctx, text)
	if err != nil {
		return nil, s.queryError(ctx, text, err)
	}
	return &Stmt{s: s, text: text, push: push, stmt: stmt}, nil
}

// Query runs the statement with args, as Session.Query does. A statement
// whose rows are still open is prepared afresh for this run.
func (st *Stmt) Query(ctx context.Context, args ...any) (*Rows, error) {
	s := st.s
	if s.conn == nil {
		return nil, errClosed
	}
	if st.busy {
		fresh, err := s.prepare(ctx, st.text)
		if err != nil {
			return nil, err
		}
		rows, err := fresh.Query(ctx, args...)
		fresh.Close() // now, or when rows close
		return rows, err
	}
	named, err := namedValues(st.args[:0], args)
	if err != nil {
		return nil, err
	}
	st.args = named
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("kvtool/query: %w", err)
	}
	st.ctx = ctx
	s.begin(&st.ctx, &st.push)
	stop := s.intr.watch(ctx)
	dr, err := st.stmt.(driver.StmtQueryContext).QueryContext(ctx, named)
	if err != nil {
		stop()
		return nil, s.queryError(ctx, st.text, err)
	}
	st.busy = true
	r := newRows(s, ctx, st, dr, stop)
	s.open[r] = struct{}{}
	return r, nil
}

// Close releases the statement, once its rows are closed. (A statement
// the session's cache keeps is released when the session closes.)
func (st *Stmt) Close() error {
	switch {
	case st.owned || st.stmt == nil:
		return nil
	case st.busy:
		st.release = true
		return nil
	}
	err := st.stmt.Close()
	st.stmt = nil
	return err
}

// done is called when the statement's rows close.
func (st *Stmt) done() error {
	st.busy = false
	clear(st.args) // hold no argument past the run
	st.ctx = context.Background()
	if st.release {
		return st.Close()
	}
	return nil
}

// namedValues converts a query's arguments as database/sql does,
// appending them to out.
func namedValues(out []driver.NamedValue, args []any) ([]driver.NamedValue, error) {
	if len(args) == 0 {
		return nil, nil
	}
	for i, a := range args {
		v, err := driver.DefaultParameterConverter.ConvertValue(a)
		if err != nil {
			return nil, fmt.Errorf("kvtool/query: argument %d: %w", i+1, err)
		}
		out = append(out, driver.NamedValue{Ordinal: i + 1, Value: v})
	}
	return out, nil
}

// stmtCache keeps a session's statements by text, the most recently used
// up to stmtCacheSize.
type stmtCache struct {
	m    map[string]*Stmt
	tick uint64
}

// stmtCacheSize bounds the statements a session keeps: a program running
// a few statements many times reuses all of them.
const stmtCacheSize = 32

func (c *stmtCache) get(text string) *Stmt {
	st := c.m[text]
	if st != nil {
		c.tick++
		st.used = c.tick
	}
	return st
}

// put keeps st, dropping the least recently used statement that is not
// running when the cache is full.
func (c *stmtCache) put(st *Stmt) {
	if c.m == nil {
		c.m = map[string]*Stmt{}
	}
	if len(c.m) >= stmtCacheSize {
		var old *Stmt
		for _, o := range c.m {
			if !o.busy && (old == nil || o.used < old.used) {
				old = o
			}
		}
		if old == nil {
			return // every one is running: st stays the caller's
		}
		delete(c.m, old.text)
		old.owned = false
		old.Close()
	}
	c.tick++
	st.owned, st.used = true, c.tick
	c.m[st.text] = st
}

func (c *stmtCache) closeAll() {
	for _, st := range c.m {
		st.owned = false
		st.Close()
	}
	c.m = nil
}

// begin readies the session for a statement: what the authorizer and the
// tables remember is reset, and the statement's context and pushdown are
// where the tables look (SQLite may plan it again at any step). Neither
// may change until the statement's rows are closed.
func (s *Session) begin(ctx *context.Context, push *pushMode) {
	s.mu.Lock()
	s.denied, s.tableErr = "", nil
	s.mu.Unlock()
	s.ctx.Store(ctx)
	s.push.Store(push)
}

// pushModeOf is what the tables may push down for text.
func (s *Session) pushModeOf(text string) pushMode {
	if s.opts.NoPushdown {
		return pushMode{}
	}
	return pushModeOf(text)
}

// queryError classifies the error of a statement.
func (s *Session) queryError(ctx context.Context, text string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("kvtool/query: %w", ctx.Err())
	}
	s.mu.Lock()
	denied := s.denied
	s.mu.Unlock()
	if denied != "" {
		return fmt.Errorf("%w: %s is refused", ErrReadOnly, denied)
	}
	if terr := s.takeTableErr(); terr != nil {
		return terr
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return &SQLError{Msg: cleanMessage(se.Error()), Offset: s.intr.errorOffset(), SQL: text}
	}
	var ste *stepError
	if errors.As(err, &ste) {
		return &SQLError{Msg: cleanMessage(ste.Error()), Offset: s.intr.errorOffset(), SQL: text}
	}
	return err
}

// setTableErr records the error a table returned to SQLite, which passes
// on only its text: the query's error is then this one, with its type
// (corruption, an index not covered) intact.
func (s *Session) setTableErr(err error) error {
	s.mu.Lock()
	if s.tableErr == nil {
		s.tableErr = err
	}
	s.mu.Unlock()
	return err
}

func (s *Session) takeTableErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.tableErr
	s.tableErr = nil
	return err
}

// Index returns the applied index of the state the kv table reads, and
// whether it is known yet (from Dir, kv is rebuilt on first use).
func (s *Session) Index() (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.liveAt, s.live != nil
}

// queryCtx is the context of the running query.
func (s *Session) queryCtx() context.Context { return *s.ctx.Load() }

// lookupSession finds the session a table is created for.
func lookupSession(id string) (*Session, error) {
	v, ok := sessions.Load(id)
	if !ok {
		return nil, fmt.Errorf("kvtool/query: no session %q", id)
	}
	return v.(*Session), nil
}

// pushMode is what the tables may push down for the statement being
// prepared.
func (s *Session) pushMode() pushMode {
	if p := s.push.Load(); p != nil {
		return *p
	}
	return pushMode{}
}

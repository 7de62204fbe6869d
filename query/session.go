package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

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
}

// Options tune a session.
type Options struct {
	// NoPushdown makes every table ignore the query's constraints and
	// ORDER BY, leaving all of it to SQLite: tests compare the two.
	NoPushdown bool
}

// Session is one read-only SQLite connection whose tables read one Source.
// The state kv reads is fixed for the session's life. A Session runs one
// query at a time; it is not safe for concurrent use.
type Session struct {
	id   string
	src  Source
	opts Options
	db   *sql.DB
	conn *sql.Conn
	intr *interrupter

	// ctx is the context of the query running; cursors check it between
	// rows so that a scan stops when the query is cancelled.
	ctx atomic.Pointer[context.Context]

	// push is what the statement being run lets the tables push down
	// (pushModeOf its text).
	push atomic.Pointer[pushMode]

	mu       sync.Mutex
	denied   string             // what the authorizer refused last ("" if nothing)
	tableErr error              // the first error a table returned in this query
	live     kvState            // the kv table's state, once known
	liveAt   uint64             // its applied index
	states   map[uint64]kvState // kv_at states by index
}

var (
	sessions  sync.Map // session id -> *Session, for the modules' Connect
	sessionID atomic.Uint64
)

// Open starts a session over src. It registers kvtool's table modules with
// SQLite (once per process), opens a private in-memory database, creates
// the tables, then makes the connection read-only.
func Open(ctx context.Context, src Source, opts Options) (*Session, error) {
	if src.FS == nil {
		src.FS = vfs.Default
	}
	if err := registerModules(); err != nil {
		return nil, err
	}
	s := &Session{id: "s" + strconv.FormatUint(sessionID.Add(1), 10), src: src, opts: opts, states: map[uint64]kvState{}}
	background := context.Background()
	s.ctx.Store(&background)
	if src.Snapshot != nil {
		s.live, s.liveAt = snapState{src.Snapshot}, src.Snapshot.Index()
	}
	sessions.Store(s.id, s)
	if err := s.open(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Session) open(ctx context.Context) error {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		return fmt.Errorf("kvtool/query: open sqlite: %w", err)
	}
	db.SetMaxOpenConns(1)
	s.db = db
	if s.conn, err = db.Conn(ctx); err != nil {
		return fmt.Errorf("kvtool/query: open sqlite: %w", err)
	}
	for _, t := range tables {
		stmt := fmt.Sprintf("CREATE VIRTUAL TABLE %s USING %s(%s)", t.name, moduleName(t.name), s.id)
		if _, err := s.conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("kvtool/query: create table %s: %w", t.name, err)
		}
	}
	if _, err := s.conn.ExecContext(ctx, "PRAGMA query_only = 1"); err != nil {
		return fmt.Errorf("kvtool/query: %w", err)
	}
	return s.conn.Raw(func(dc any) error {
		s.intr = newInterrupter(dc)
		ar, ok := dc.(sqlite.AuthorizerRegisterer)
		if !ok {
			return errors.New("kvtool/query: the sqlite driver cannot install an authorizer")
		}
		return ar.RegisterAuthorizer(s.authorize)
	})
}

// Close ends the session. It is safe to call more than once.
func (s *Session) Close() error {
	sessions.Delete(s.id)
	var err error
	if s.intr != nil {
		s.intr.close()
	}
	if s.conn != nil {
		err = s.conn.Close()
		s.conn = nil
	}
	if s.db != nil {
		if cerr := s.db.Close(); err == nil {
			err = cerr
		}
		s.db = nil
	}
	return err
}

// Query runs one SQL statement and returns its rows, which stream: each is
// produced as Rows.Next asks for it. Cancelling ctx stops the statement
// (Rows.Err then wraps ctx.Err()). Close the rows before the next Query.
// A statement that does not parse is a *SQLError; one that would write,
// attach or load anything is an error wrapping ErrReadOnly.
func (s *Session) Query(ctx context.Context, text string, args ...any) (*Rows, error) {
	if strings.TrimSpace(text) == "" {
		return nil, &SQLError{Msg: "the query is empty", Offset: -1}
	}
	return s.run(ctx, text, s.pushModeOf(text), func() (*sql.Rows, error) {
		return s.conn.QueryContext(ctx, text, args...)
	})
}

// Stmt is a prepared statement of a session: parsed and planned once, run
// many times with different arguments.
type Stmt struct {
	s    *Session
	text string
	push pushMode
	stmt *sql.Stmt
}

// Prepare prepares text for Stmt.Query (errors as Query's).
func (s *Session) Prepare(ctx context.Context, text string) (*Stmt, error) {
	push := s.pushModeOf(text)
	s.begin(ctx, push)
	stmt, err := s.conn.PrepareContext(ctx, text)
	if err != nil {
		return nil, s.queryError(ctx, text, err)
	}
	return &Stmt{s: s, text: text, push: push, stmt: stmt}, nil
}

// Query runs the statement with args, as Session.Query does.
func (st *Stmt) Query(ctx context.Context, args ...any) (*Rows, error) {
	return st.s.run(ctx, st.text, st.push, func() (*sql.Rows, error) {
		return st.stmt.QueryContext(ctx, args...)
	})
}

// Close releases the statement.
func (st *Stmt) Close() error { return st.stmt.Close() }

// begin readies the session for a statement: what the authorizer and the
// tables remember is reset, and the statement's context and pushdown are
// where the tables look (SQLite may plan it again at any step).
func (s *Session) begin(ctx context.Context, push pushMode) {
	s.mu.Lock()
	s.denied, s.tableErr = "", nil
	s.mu.Unlock()
	s.ctx.Store(&ctx)
	s.push.Store(&push)
}

// run starts a statement with query and wraps its rows.
func (s *Session) run(ctx context.Context, text string, push pushMode, query func() (*sql.Rows, error)) (*Rows, error) {
	s.begin(ctx, push)
	stop := s.intr.watch(ctx)
	rows, err := query()
	if err != nil {
		stop()
		return nil, s.queryError(ctx, text, err)
	}
	return newRows(s, ctx, text, rows, stop)
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

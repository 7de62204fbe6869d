package query

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite/vtab"
)

// table is one of kvtool's virtual tables: its name, its schema (a CREATE
// TABLE statement SQLite is given) and how to make it for a session.
type tableDef struct {
	name   string
	schema string
	open   func(s *Session) vtab.Table
}

// tables are the tables every session has, in the order they are created.
var tables = []tableDef{kvDef, kvAtDef, walDef, segmentsDef, checkpointsDef, deltasDef, manifestDef, leasesDef, membersDef}

// moduleName is the SQLite module behind a table. Each session registers
// the modules on its own connection (registerTables, bridge.go) and
// creates its tables with its id as the module argument; Connect looks the
// session up by it.
func moduleName(table string) string { return "kvtool_" + table }

// module adapts a tableDef to vtab.Module.
type module struct{ def tableDef }

// VolatileArgs says how the bridge passes TEXT and BLOB arguments to
// Filter: whole (a key may hold NUL, where a C string would stop), and
// aliasing SQLite's memory for the call only: Filter copies what it keeps.
func (module) VolatileArgs() bool { return true }

func (m module) Create(ctx vtab.Context, args []string) (vtab.Table, error) {
	return m.Connect(ctx, args)
}

// Connect makes the table for the session named by the module argument
// (args are the module, database and table names, then the arguments).
func (m module) Connect(ctx vtab.Context, args []string) (vtab.Table, error) {
	if len(args) != 4 {
		return nil, fmt.Errorf("kvtool/query: table %s wants one argument, the session", m.def.name)
	}
	s, err := lookupSession(args[3])
	if err != nil {
		return nil, err
	}
	if err := ctx.Declare(m.def.schema); err != nil {
		return nil, fmt.Errorf("kvtool/query: declare %s: %w", m.def.name, err)
	}
	return m.def.open(s), nil
}

// baseTable holds what every table does the same way.
type baseTable struct{ s *Session }

func (baseTable) Disconnect() error { return nil }
func (baseTable) Destroy() error    { return nil }

// cursorCheck is how often (in rows) a cursor looks at the query's
// context: a cancelled query stops within that many rows of a scan.
const cursorCheck = 256

// cursorYield is how often (in rows) a cursor calls yield, which lets
// other goroutines run. A long scan is CPU-bound and Go preempts it only
// every 10ms: a writer of the same process woken by its fsync would wait
// that long for a core.
const cursorYield = 64

// testHookRow, if set (by tests, before a query starts), is called for
// every row a cursor moves to.
var testHookRow func()

// goschedEvery is how long a scan without a Source.Yield runs between two
// runtime.Gosched. A Gosched costs more than the rows between two yields:
// it wakes an idle P's thread (a futex call) to take the queue, and on a
// thread locked to the goroutine (LockOSThread, as BenchmarkQuery does to
// read its thread's CPU time) it hands the thread off and back; called
// every cursorYield rows it was a third of a kv range scan's CPU. A writer
// then waits this long for a core at most, a tenth of an fsync.
const goschedEvery = 200 * time.Microsecond

// yield lets other goroutines run: Source.Yield, or runtime.Gosched when
// goschedEvery has passed since the last one.
func (s *Session) yield() {
	if s.src.Yield != nil {
		s.src.Yield()
		return
	}
	if s.goschedDue(nanotime()) {
		runtime.Gosched()
	}
}

// goschedDue reports whether a Gosched is due at now (nanoseconds on a
// monotonic clock) and if so counts it as done.
func (s *Session) goschedDue(now int64) bool {
	if now-s.goschedAt < int64(goschedEvery) {
		return false
	}
	s.goschedAt = now
	return true
}

// nanotime is the monotonic clock, in nanoseconds since the process's
// first call.
func nanotime() int64 { return int64(time.Since(clockBase)) }

var clockBase = time.Now()

// baseCursor counts rows for the context check and rowids.
type baseCursor struct {
	s   *Session
	row int64
	// idxStr and toks are the last plan Filter was given, split into
	// tokens: a join calls Filter once per outer row with the same plan.
	idxStr string
	toks   []string
}

// tokens returns the tokens of a plan's idxStr.
func (c *baseCursor) tokens(idxStr string) []string {
	if c.toks == nil || idxStr != c.idxStr {
		c.idxStr, c.toks = idxStr, strings.Fields(idxStr)
	}
	return c.toks
}

// step counts a row and returns the query's context error every
// cursorCheck rows.
func (c *baseCursor) step() error {
	c.row++
	if testHookRow != nil {
		testHookRow()
	}
	if c.row%cursorYield == 0 {
		c.s.yield()
	}
	if c.row%cursorCheck == 0 {
		if err := c.s.queryCtx().Err(); err != nil {
			return c.s.setTableErr(fmt.Errorf("kvtool/query: %w", err))
		}
	}
	return nil
}

func (c *baseCursor) Rowid() (int64, error) { return c.row, nil }
func (c *baseCursor) Close() error          { return nil }

// fail records a table's error for the session and returns it to SQLite.
func (c *baseCursor) fail(err error) error { return c.s.setTableErr(err) }

// ctxErr wraps a context error the way step does.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kvtool/query: %w", err)
	}
	return nil
}

var errNoCursor = errors.New("kvtool/query: cursor is not positioned")

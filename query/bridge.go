package query

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
	"modernc.org/sqlite/vtab"
)

// The bridge between SQLite's virtual table callbacks and the tables.
//
// modernc.org/sqlite's own bridge (vtab.RegisterModule) costs a scan more
// than the scan's own work: every xColumn, xNext and xEof takes a global
// lock and looks the cursor up in a map, and every TEXT or BLOB column is
// copied twice, through a C string malloc'ed and freed per call. A range
// scan read the key three or four times a row (SQLite checked each
// pushed-down constraint again; now kv takes over those it decides
// exactly, keyplan.go), so that was most of what a row cost beyond the
// tree walk. This bridge registers the same tables with SQLite's C API
// itself, on the session's own connection, and tells the tables more of
// each constraint than modernc's does (constraintDetails):
//
//   - the sqlite3_vtab and sqlite3_vtab_cursor it allocates carry a handle
//     (an index in tableRefs or cursorRefs), so a callback finds its Go
//     value with one atomic load and no lock;
//   - a TEXT or BLOB column is copied once into the cursor's scratch buffer
//     (C memory, kept for the cursor's life), from which SQLite copies it
//     (SQLITE_TRANSIENT) before the callback returns.
//
// Go memory is never handed to SQLite: the transpiled C code turns
// pointers into uintptrs and back, which the race detector's pointer
// checks reject for Go heap memory, and the collector does not see them.
//
// What the tables see is what modernc's bridge gives them (vtab.IndexInfo,
// vtab.Value, volatile TEXT and BLOB arguments: see VolatileArgs), so they
// are written against the vtab package as before.

// connHandle is a driver connection's sqlite3* and the libc thread state it
// is used with. The driver does not export them; they are read from its
// connection's fields (db, tls) by name, and a driver without them makes
// Open fail rather than guess.
func connHandle(c any) (db uintptr, tls *libc.TLS, err error) {
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return 0, nil, fmt.Errorf("kvtool/query: the sqlite driver's connection is a %T", c)
	}
	dbf, tlsf := v.Elem().FieldByName("db"), v.Elem().FieldByName("tls")
	if dbf.Kind() != reflect.Uintptr || !tlsf.IsValid() || tlsf.Type() != reflect.TypeFor[*libc.TLS]() {
		return 0, nil, fmt.Errorf("kvtool/query: the sqlite driver's connection (%T) has no db and tls fields", c)
	}
	db, tls = uintptr(dbf.Uint()), (*libc.TLS)(tlsf.UnsafePointer())
	if db == 0 || tls == nil {
		return 0, nil, errors.New("kvtool/query: the sqlite connection is not open")
	}
	return db, tls, nil
}

// dropMutex stops SQLite from locking the connection db on every call,
// and returns what gives the lock back (call it before the connection is
// closed, which frees it).
//
// The driver opens every connection SQLITE_OPEN_FULLMUTEX: each
// sqlite3_step, and each sqlite3_column_* call reading a row (three a
// column), locks and unlocks the connection's recursive mutex, which
// measured a third of a range scan's CPU time. A session's connection is
// only ever used by the goroutine running the session (a Session is not
// safe for concurrent use, and it drives the driver connection itself,
// without database/sql's pool); the one call made from another goroutine,
// sqlite3_interrupt, takes no lock. So the lock guards nothing there, and
// SQLite skips it when the connection's mutex is NULL, as it is for a
// connection opened SQLITE_OPEN_NOMUTEX.
func dropMutex(db uintptr) (restore func()) {
	c := (*sqlite3.Tsqlite3)(cptr(db))
	m := c.Fmutex
	c.Fmutex = 0
	return func() { c.Fmutex = m }
}

// planWithoutValues makes SQLite plan a statement without looking at the
// values bound to its parameters (SQLITE_DBCONFIG_ENABLE_QPSG, the query
// planner stability guarantee). SQLite otherwise reads the pattern bound
// to `key LIKE ?` or `key GLOB ?` while it plans, for its LIKE
// optimization: it prepares the statement again at every new binding, and
// the range constraints it derives from the pattern keep it checking the
// pattern on every row although kv decides it (keyplan.go, exactFor),
// because SQLite drops a constraint only once all that it derived from it
// are handled. Only plans depend on the setting, never results.
func planWithoutValues(tls *libc.TLS, db uintptr) error {
	const slot = 8 // libc.VaList's stride per argument
	va := libc.Xmalloc(tls, 2*slot)
	if va == 0 {
		return errors.New("kvtool/query: out of memory configuring the connection")
	}
	defer libc.Xfree(tls, va)
	if rc := sqlite3.Xsqlite3_db_config(tls, db, sqlite3.SQLITE_DBCONFIG_ENABLE_QPSG, libc.VaList(va, int32(1), uintptr(0))); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("kvtool/query: configure the connection: sqlite error %d", rc)
	}
	return nil
}

// refs maps handles (small integers stored in C memory) to Go values.
// Lookups take no lock: the table is an atomically published slice of
// atomic pointers, and only adding and removing lock.
type refs[T any] struct {
	mu   sync.Mutex
	tab  atomic.Pointer[[]atomic.Pointer[T]]
	free []uintptr
}

// add stores v and returns its handle (never 0).
func (r *refs[T]) add(v *T) uintptr {
	r.mu.Lock()
	defer r.mu.Unlock()
	tab := r.tab.Load()
	if tab == nil {
		t := make([]atomic.Pointer[T], 1, 64) // handle 0 is never used
		tab = &t
		r.tab.Store(tab)
	}
	var h uintptr
	if n := len(r.free); n > 0 {
		h, r.free = r.free[n-1], r.free[:n-1]
	} else {
		h = uintptr(len(*tab))
		if len(*tab) == cap(*tab) {
			grown := make([]atomic.Pointer[T], len(*tab), 2*cap(*tab))
			for i := range *tab {
				grown[i].Store((*tab)[i].Load())
			}
			tab = &grown
		}
		t := (*tab)[:h+1]
		tab = &t
		r.tab.Store(tab)
	}
	(*tab)[h].Store(v)
	return h
}

// get returns the value of handle h (nil if none).
func (r *refs[T]) get(h uintptr) *T {
	tab := r.tab.Load()
	if tab == nil || h >= uintptr(len(*tab)) {
		return nil
	}
	return (*tab)[h].Load()
}

// remove forgets handle h.
func (r *refs[T]) remove(h uintptr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if tab := r.tab.Load(); tab != nil && h != 0 && h < uintptr(len(*tab)) && (*tab)[h].Load() != nil {
		(*tab)[h].Store(nil)
		r.free = append(r.free, h)
	}
}

// bridgeTable is a table SQLite holds (through cTable.handle).
type bridgeTable struct {
	impl vtab.Table
	// idle is the bridge of a closed cursor, kept for the next xOpen with
	// its buffers (a point lookup opens a cursor per run). SQLite calls a
	// table from its connection's one goroutine at a time.
	idle *bridgeCursor
}

// bridgeCursor is a cursor SQLite holds (through cCursor.handle).
type bridgeCursor struct {
	impl vtab.Cursor
	args []vtab.Value // Filter's arguments, reused
	// strs holds Filter's TEXT arguments, which args point at (textRef):
	// boxing each into an interface would allocate.
	strs []string
	// plan is the last idxStr Filter was given, read from C once: a
	// statement run again, and a join's inner loop, pass the same one.
	plan string
	// buf is C memory (sqlite3_malloc) of bufCap bytes that a TEXT or BLOB
	// column is copied to before SQLite copies it; freed on xClose.
	buf    uintptr
	bufCap int
}

var (
	tableRefs  refs[bridgeTable]
	cursorRefs refs[bridgeCursor]
)

// cTable and cCursor are the C structs SQLite allocates nothing for: the
// bridge allocates them, SQLite's part first.
type cTable struct {
	base   sqlite3.Sqlite3_vtab
	handle uintptr
}

type cCursor struct {
	base   sqlite3.Sqlite3_vtab_cursor
	handle uintptr
}

// cModule is the sqlite3_module every kvtool table uses, allocated once in
// C memory (SQLite reads it for as long as a connection uses the module).
var cModule = sync.OnceValues(func() (uintptr, error) {
	tls := libc.NewTLS()
	defer tls.Close()
	p := libc.Xcalloc(tls, 1, uint64(unsafe.Sizeof(sqlite3.Sqlite3_module{})))
	if p == 0 {
		return 0, errors.New("kvtool/query: out of memory for the table module")
	}
	m := (*sqlite3.Sqlite3_module)(cptr(p))
	m.FiVersion = 1
	m.FxCreate = cFunc(xConnect)
	m.FxConnect = cFunc(xConnect)
	m.FxBestIndex = cFunc(xBestIndex)
	m.FxDisconnect = cFunc(xDisconnect)
	m.FxDestroy = cFunc(xDisconnect)
	m.FxOpen = cFunc(xOpen)
	m.FxClose = cFunc(xClose)
	m.FxFilter = cFunc(xFilter)
	m.FxNext = cFunc(xNext)
	m.FxEof = cFunc(xEof)
	m.FxColumn = cFunc(xColumn)
	m.FxRowid = cFunc(xRowid)
	m.FxUpdate = cFunc(xUpdate)
	return p, nil
})

// cFunc is a Go function as the transpiled C code calls it: a pointer to
// the function value (https://golang.org/s/go11func), which lives in
// read-only data and never moves.
func cFunc[T any](f T) uintptr { return *(*uintptr)(unsafe.Pointer(&struct{ f T }{f})) }

// registerTables registers every table's module on one connection; the
// module's pAux is the table's index in tables.
func registerTables(db uintptr, tls *libc.TLS) error {
	mod, err := cModule()
	if err != nil {
		return err
	}
	for i, t := range tables {
		z, err := libc.CString(moduleName(t.name))
		if err != nil {
			return err
		}
		rc := sqlite3.Xsqlite3_create_module_v2(tls, db, z, mod, uintptr(i), 0)
		libc.Xfree(tls, z)
		if rc != sqlite3.SQLITE_OK {
			return fmt.Errorf("kvtool/query: register table %s: sqlite error %d", t.name, rc)
		}
	}
	return nil
}

func xConnect(tls *libc.TLS, db, pAux uintptr, argc int32, argv, ppVtab, pzErr uintptr) int32 {
	if pAux >= uintptr(len(tables)) {
		return sqlite3.SQLITE_ERROR
	}
	args := make([]string, argc)
	for i := range args {
		args[i] = libc.GoString(*(*uintptr)(cptr(argv + uintptr(i)*unsafe.Sizeof(uintptr(0)))))
	}
	ctx := vtab.NewContextWithConfig(func(schema string) error {
		z, err := libc.CString(schema)
		if err != nil {
			return err
		}
		defer libc.Xfree(tls, z)
		if rc := sqlite3.Xsqlite3_declare_vtab(tls, db, z); rc != sqlite3.SQLITE_OK {
			return fmt.Errorf("declare_vtab failed: rc=%d", rc)
		}
		return nil
	}, func() error {
		return errors.New("kvtool/query: constraint support is not configured")
	}, func(int32, ...int32) error {
		return errors.New("kvtool/query: vtab config is not supported")
	})
	impl, err := module{tables[pAux]}.Connect(ctx, args)
	if err != nil {
		setErr(tls, pzErr, err.Error())
		return sqlite3.SQLITE_ERROR
	}
	p := sqlite3.Xsqlite3_malloc(tls, int32(unsafe.Sizeof(cTable{})))
	if p == 0 {
		return sqlite3.SQLITE_NOMEM
	}
	t := (*cTable)(cptr(p))
	*t = cTable{handle: tableRefs.add(&bridgeTable{impl: impl})}
	*(*uintptr)(cptr(ppVtab)) = p
	return sqlite3.SQLITE_OK
}

func xDisconnect(tls *libc.TLS, pVtab uintptr) int32 {
	t := (*cTable)(cptr(pVtab))
	if bt := tableRefs.get(t.handle); bt != nil {
		bt.impl.Disconnect()
		if bt.idle != nil && bt.idle.buf != 0 {
			sqlite3.Xsqlite3_free(tls, bt.idle.buf)
		}
		bt.idle = nil
		tableRefs.remove(t.handle)
	}
	sqlite3.Xsqlite3_free(tls, pVtab)
	return sqlite3.SQLITE_OK
}

func tableOf(pVtab uintptr) *bridgeTable {
	return tableRefs.get((*cTable)(cptr(pVtab)).handle)
}

func cursorOf(pCursor uintptr) *bridgeCursor {
	return cursorRefs.get((*cCursor)(cptr(pCursor)).handle)
}

// constraintOps maps SQLite's constraint operators to the vtab package's.
var constraintOps = map[uint8]vtab.ConstraintOp{
	sqlite3.SQLITE_INDEX_CONSTRAINT_EQ: vtab.OpEQ, sqlite3.SQLITE_INDEX_CONSTRAINT_GT: vtab.OpGT,
	sqlite3.SQLITE_INDEX_CONSTRAINT_LE: vtab.OpLE, sqlite3.SQLITE_INDEX_CONSTRAINT_LT: vtab.OpLT,
	sqlite3.SQLITE_INDEX_CONSTRAINT_GE: vtab.OpGE, sqlite3.SQLITE_INDEX_CONSTRAINT_MATCH: vtab.OpMATCH,
	sqlite3.SQLITE_INDEX_CONSTRAINT_NE: vtab.OpNE, sqlite3.SQLITE_INDEX_CONSTRAINT_IS: vtab.OpIS,
	sqlite3.SQLITE_INDEX_CONSTRAINT_ISNOT: vtab.OpISNOT, sqlite3.SQLITE_INDEX_CONSTRAINT_ISNULL: vtab.OpISNULL,
	sqlite3.SQLITE_INDEX_CONSTRAINT_ISNOTNULL: vtab.OpISNOTNULL, sqlite3.SQLITE_INDEX_CONSTRAINT_LIKE: vtab.OpLIKE,
	sqlite3.SQLITE_INDEX_CONSTRAINT_GLOB: vtab.OpGLOB, sqlite3.SQLITE_INDEX_CONSTRAINT_REGEXP: vtab.OpREGEXP,
	sqlite3.SQLITE_INDEX_CONSTRAINT_FUNCTION: vtab.OpFUNCTION, sqlite3.SQLITE_INDEX_CONSTRAINT_LIMIT: vtab.OpLIMIT,
	sqlite3.SQLITE_INDEX_CONSTRAINT_OFFSET: vtab.OpOFFSET,
}

// xBestIndex hands the table a vtab.IndexInfo made from SQLite's
// sqlite3_index_info and writes back its choices (argv indexes, omit,
// idxNum, idxStr, order, flags, cost, rows).
func xBestIndex(tls *libc.TLS, pVtab, pInfo uintptr) int32 {
	bt := tableOf(pVtab)
	if bt == nil {
		return sqlite3.SQLITE_ERROR
	}
	idx := (*sqlite3.Sqlite3_index_info)(cptr(pInfo))
	info := &vtab.IndexInfo{ColUsed: uint64(idx.FcolUsed), IdxFlags: int(idx.FidxFlags)}
	if n := int(idx.FnConstraint); n > 0 {
		cs := unsafe.Slice((*sqlite3.Tsqlite3_index_constraint)(cptr(idx.FaConstraint)), n)
		info.Constraints = make([]vtab.Constraint, n)
		for i, c := range cs {
			op, ok := constraintOps[c.Fop]
			if !ok {
				op = vtab.OpUnknown
			}
			info.Constraints[i] = vtab.Constraint{Column: int(c.FiColumn), Op: op, Usable: c.Fusable != 0, ArgIndex: -1}
		}
	}
	if n := int(idx.FnOrderBy); n > 0 {
		obs := unsafe.Slice((*sqlite3.Tsqlite3_index_orderby)(cptr(idx.FaOrderBy)), n)
		info.OrderBy = make([]vtab.OrderBy, n)
		for i, ob := range obs {
			info.OrderBy[i] = vtab.OrderBy{Column: int(ob.FiColumn), Desc: ob.Fdesc != 0}
		}
	}
	var err error
	if di, ok := bt.impl.(detailIndexer); ok {
		err = di.bestIndexDetail(info, constraintDetails(tls, pInfo, len(info.Constraints)))
	} else {
		err = bt.impl.BestIndex(info)
	}
	if err != nil {
		setTableErrMsg(tls, pVtab, err.Error())
		return sqlite3.SQLITE_ERROR
	}
	if n := int(idx.FnConstraint); n > 0 {
		us := unsafe.Slice((*sqlite3.Tsqlite3_index_constraint_usage)(cptr(idx.FaConstraintUsage)), n)
		for i := range us {
			if c := info.Constraints[i]; c.ArgIndex >= 0 {
				us[i].FargvIndex = int32(c.ArgIndex + 1)
				if c.Omit {
					us[i].Fomit = 1
				}
			}
		}
	}
	if info.IdxNum < math.MinInt32 || info.IdxNum > math.MaxInt32 {
		setTableErrMsg(tls, pVtab, fmt.Sprintf("kvtool/query: IdxNum %d out of range", info.IdxNum))
		return sqlite3.SQLITE_ERROR
	}
	idx.FidxNum = int32(info.IdxNum)
	if info.IdxStr != "" {
		if z := mallocString(tls, info.IdxStr); z != 0 {
			idx.FidxStr, idx.FneedToFreeIdxStr = z, 1
		}
	}
	if info.OrderByConsumed {
		idx.ForderByConsumed = 1
	}
	idx.FidxFlags = int32(info.IdxFlags)
	if info.EstimatedCost != 0 {
		idx.FestimatedCost = info.EstimatedCost
	}
	if info.EstimatedRows != 0 {
		idx.FestimatedRows = info.EstimatedRows
	}
	return sqlite3.SQLITE_OK
}

// realTexter is a cursor whose Filter is given a REAL argument as a
// realArg, with the TEXT SQLite makes of it.
type realTexter interface{ realTexts() }

// realArg is a REAL argument and its TEXT form.
type realArg struct {
	F    float64
	Text string
}

// detailIndexer is a table whose BestIndex needs to know more of each
// constraint than vtab.Constraint says (keyplan.go: which constraints the
// table may take over from SQLite).
type detailIndexer interface {
	bestIndexDetail(info *vtab.IndexInfo, details []constraintDetail) error
}

// constraintDetail is what SQLite knows of a constraint while it plans.
type constraintDetail struct {
	binary bool    // it compares with the BINARY collation
	rhs    rhsKind // what its right-hand side is
	// likeOpt: it is a range SQLite derived from a LIKE or GLOB pattern
	// (its LIKE optimization). parent identifies the term a constraint
	// was derived from (its WHERE clause and index there; a LIKE or GLOB
	// offered to the table is derived from the function's term too), or
	// is zero.
	likeOpt bool
	parent  termRef
	// numericIn: it is key IN (SELECT ...) and the subquery's column may
	// have a numeric affinity (inAffinityText). SQLite then compares key
	// with each value as a number, but once a table takes the constraint
	// it checks each row it returns against the value alone, as TEXT:
	// with `key IN (SELECT CAST(? AS REAL))` and 1.0 it kept '1' and lost
	// ' 1' and '1.0'. Such a constraint is left to SQLite.
	numericIn bool
	// outerLike: it is a LIKE whose term SQLite's LIKE optimization marked
	// (TERM_LIKE), in the ON clause of an outer join. When every term
	// derived from such a LIKE is omitted, SQLite marks the LIKE
	// TERM_LIKECOND instead of coded, and evaluates it again on the row of
	// NULLs an unmatched outer join row gets, which drops that row: the
	// scan must leave the LIKE to SQLite there (exactFor).
	outerLike bool
}

// termRef is a term of a WHERE clause.
type termRef struct {
	wc    uintptr
	index int32
}

// rhsKind says what the right-hand side of a constraint is.
type rhsKind uint8

const (
	rhsOther rhsKind = iota // anything else: a column, an expression, a non-TEXT literal
	rhsText                 // a TEXT literal, or a constant SQLite folds to TEXT
	rhsParam                // a bound parameter (?, ?N, :name, @name, $name)
)

// constraintDetails reads the details of the n constraints of the
// sqlite3_index_info at pInfo: the collation and a literal right-hand side
// from SQLite's API (sqlite3_vtab_collation, sqlite3_vtab_rhs_value), and
// whether the right-hand side is a bound parameter from the constraint's
// expression. The API says nothing of parameters (their values are not
// known while SQLite plans), so that is read from SQLite's own structures,
// the way sqlite3_vtab_rhs_value reaches them: the WHERE clause stored
// after the sqlite3_index_info (HiddenIndexInfo), the term the constraint
// came from (iTermOffset), and its expression's right operand. The Go
// types of those structures come from the same transpiled SQLite, so
// their layout is right by construction.
func constraintDetails(tls *libc.TLS, pInfo uintptr, n int) []constraintDetail {
	ds := make([]constraintDetail, n)
	pVal := tls.Alloc(int(unsafe.Sizeof(uintptr(0))))
	defer tls.Free(int(unsafe.Sizeof(uintptr(0))))
	for i := range ds {
		ds[i].binary = cstringIs(sqlite3.Xsqlite3_vtab_collation(tls, pInfo, int32(i)), "BINARY")
		*(*uintptr)(cptr(pVal)) = 0
		rc := sqlite3.Xsqlite3_vtab_rhs_value(tls, pInfo, int32(i), pVal)
		switch v := *(*uintptr)(cptr(pVal)); {
		case rc == sqlite3.SQLITE_OK && v != 0:
			if sqlite3.Xsqlite3_value_type(tls, v) == sqlite3.SQLITE_TEXT {
				ds[i].rhs = rhsText
			}
		case rhsOp(pInfo, i) == sqlite3.TK_VARIABLE:
			ds[i].rhs = rhsParam
		}
		if term := constraintTerm(pInfo, i); term != nil {
			ds[i].numericIn = !inAffinityText(term.FpExpr)
			ds[i].likeOpt = term.FwtFlags&sqlite3.TERM_LIKEOPT != 0
			if term.FiParent >= 0 {
				ds[i].parent = termRef{wc: term.FpWC, index: term.FiParent}
				ds[i].outerLike = outerLike(term.FpWC, term.FiParent)
			}
		}
	}
	return ds
}

// inAffinityText reports whether the expression at p, if it is an IN
// with a subquery (key IN (SELECT x ...)), compares key with x's values
// as TEXT: x's affinity (sqlite3ExprAffinity's, for the shapes read here)
// is TEXT, BLOB or none. An IN list compares with key's own affinity,
// TEXT, so any other IN is TEXT too. An x of another shape (a CAST, a
// vector, a nested subquery, a column out of range) is taken as numeric:
// that only leaves the constraint to SQLite.
func inAffinityText(p uintptr) bool {
	if p == 0 {
		return true
	}
	e := (*sqlite3.TExpr)(cptr(p))
	if e.Fop != sqlite3.TK_IN || e.Fflags&sqlite3.EP_xIsSelect == 0 {
		return true
	}
	if e.FpLeft == 0 || (*sqlite3.TExpr)(cptr(e.FpLeft)).Fop == sqlite3.TK_VECTOR {
		return false
	}
	sel := e.Fx.FpList // the union's pSelect (EP_xIsSelect)
	if sel == 0 {
		return false
	}
	list := (*sqlite3.TSelect)(cptr(sel)).FpEList
	if list == 0 || (*sqlite3.TExprList)(cptr(list)).FnExpr < 1 {
		return false
	}
	item := (*sqlite3.TExprList_item)(cptr(list + unsafe.Sizeof(sqlite3.TExprList{})))
	if item.FpExpr == 0 {
		return false
	}
	x := (*sqlite3.TExpr)(cptr(item.FpExpr))
	switch {
	case x.Fflags&(sqlite3.EP_Skip|sqlite3.EP_IfNullRow) != 0:
		return false
	case x.Fop == sqlite3.TK_COLUMN || x.Fop == sqlite3.TK_AGG_COLUMN:
		tab := x.Fy.FpTab
		if tab == 0 {
			return x.Fop == sqlite3.TK_AGG_COLUMN && x.FaffExpr < sqlite3.SQLITE_AFF_NUMERIC
		}
		t := (*sqlite3.TTable)(cptr(tab))
		if x.FiColumn < 0 || int(x.FiColumn) >= int(t.FnCol) || t.FaCol == 0 {
			return false // the rowid (INTEGER), or not a column we can read
		}
		col := (*sqlite3.TColumn)(cptr(t.FaCol + uintptr(x.FiColumn)*unsafe.Sizeof(sqlite3.TColumn{})))
		return col.Faffinity < sqlite3.SQLITE_AFF_NUMERIC
	case x.Fop == sqlite3.TK_CAST, x.Fop == sqlite3.TK_SELECT, x.Fop == sqlite3.TK_SELECT_COLUMN,
		x.Fop == sqlite3.TK_VECTOR, x.Fop == sqlite3.TK_REGISTER:
		return false
	}
	return x.FaffExpr < sqlite3.SQLITE_AFF_NUMERIC
}

// outerLike reports whether term i of the WHERE clause at wc is a LIKE
// the LIKE optimization marked (TERM_LIKE) in an outer join's ON clause
// (constraintDetail.outerLike).
func outerLike(wc uintptr, i int32) bool {
	c := (*sqlite3.TWhereClause)(cptr(wc))
	if wc == 0 || i < 0 || i >= c.FnTerm {
		return true // not where it should be: assume the worst
	}
	t := (*sqlite3.TWhereTerm)(cptr(c.Fa + uintptr(i)*unsafe.Sizeof(sqlite3.TWhereTerm{})))
	if t.FwtFlags&sqlite3.TERM_LIKE == 0 {
		return false
	}
	return t.FpExpr == 0 || (*sqlite3.TExpr)(cptr(t.FpExpr)).Fflags&sqlite3.EP_OuterON != 0
}

// constraintTerm is the WHERE clause term constraint i comes from (nil if
// none), as sqlite3_vtab_rhs_value finds it.
func constraintTerm(pInfo uintptr, i int) *sqlite3.TWhereTerm {
	info := (*sqlite3.Tsqlite3_index_info)(cptr(pInfo))
	hidden := (*sqlite3.THiddenIndexInfo)(cptr(pInfo + unsafe.Sizeof(sqlite3.Tsqlite3_index_info{})))
	c := unsafe.Slice((*sqlite3.Tsqlite3_index_constraint)(cptr(info.FaConstraint)), info.FnConstraint)[i]
	term := termFromWhereClause(hidden.FpWC, int(c.FiTermOffset))
	if term == 0 {
		return nil
	}
	return (*sqlite3.TWhereTerm)(cptr(term))
}

// rhsOp is the operator of the right operand of constraint i's expression
// (0 if it has none).
func rhsOp(pInfo uintptr, i int) uint8 {
	term := constraintTerm(pInfo, i)
	if term == nil || term.FpExpr == 0 {
		return 0
	}
	right := (*sqlite3.TExpr)(cptr(term.FpExpr)).FpRight
	if right == 0 {
		return 0
	}
	return (*sqlite3.TExpr)(cptr(right)).Fop
}

// termFromWhereClause is SQLite's own (where.c): term i of a WHERE clause
// counted on through its outer clauses.
func termFromWhereClause(pWC uintptr, i int) uintptr {
	for pWC != 0 {
		wc := (*sqlite3.TWhereClause)(cptr(pWC))
		if i < int(wc.FnTerm) {
			return wc.Fa + uintptr(i)*unsafe.Sizeof(sqlite3.TWhereTerm{})
		}
		i -= int(wc.FnTerm)
		pWC = wc.FpOuter
	}
	return 0
}

func xOpen(tls *libc.TLS, pVtab, ppCursor uintptr) int32 {
	bt := tableOf(pVtab)
	if bt == nil {
		return sqlite3.SQLITE_ERROR
	}
	impl, err := bt.impl.Open()
	if err != nil {
		setTableErrMsg(tls, pVtab, err.Error())
		return sqlite3.SQLITE_ERROR
	}
	p := sqlite3.Xsqlite3_malloc(tls, int32(unsafe.Sizeof(cCursor{})))
	if p == 0 {
		impl.Close()
		return sqlite3.SQLITE_NOMEM
	}
	bc := bt.idle
	if bc == nil {
		bc = &bridgeCursor{}
	}
	bt.idle, bc.impl = nil, impl
	c := (*cCursor)(cptr(p))
	*c = cCursor{handle: cursorRefs.add(bc)}
	c.base.FpVtab = pVtab
	*(*uintptr)(cptr(ppCursor)) = p
	return sqlite3.SQLITE_OK
}

func xClose(tls *libc.TLS, pCursor uintptr) int32 {
	c := (*cCursor)(cptr(pCursor))
	if bc := cursorRefs.get(c.handle); bc != nil {
		bc.impl.Close()
		bc.impl = nil
		cursorRefs.remove(c.handle)
		if bt := tableOf(c.base.FpVtab); bt != nil && bt.idle == nil {
			bt.idle = bc // keeps its buffer for the next xOpen
		} else if bc.buf != 0 {
			sqlite3.Xsqlite3_free(tls, bc.buf)
		}
	}
	sqlite3.Xsqlite3_free(tls, pCursor)
	return sqlite3.SQLITE_OK
}

// xFilter passes the plan and its arguments on. TEXT and BLOB arguments
// alias SQLite's memory for the call only (VolatileArgs).
func xFilter(tls *libc.TLS, pCursor uintptr, idxNum int32, idxStr uintptr, argc int32, argv uintptr) int32 {
	bc := cursorOf(pCursor)
	if bc == nil {
		return sqlite3.SQLITE_ERROR
	}
	if !cstringIs(idxStr, bc.plan) {
		bc.plan = libc.GoString(idxStr)
	}
	n := int(argc)
	if cap(bc.args) < n {
		bc.args, bc.strs = make([]vtab.Value, n), make([]string, n)
	}
	args := bc.args[:n]
	for i := range args {
		args[i] = bc.argValue(tls, *(*uintptr)(cptr(argv + uintptr(i)*unsafe.Sizeof(uintptr(0)))), i)
	}
	err := bc.impl.Filter(int(idxNum), bc.plan, args)
	clear(args) // hold nothing of SQLite's past the call
	clear(bc.strs)
	if err != nil {
		setTableErrMsg(tls, (*cCursor)(cptr(pCursor)).base.FpVtab, err.Error())
		return sqlite3.SQLITE_ERROR
	}
	return sqlite3.SQLITE_OK
}

// cstringIs reports whether the C string at p (0: none) is s.
func cstringIs(p uintptr, s string) bool {
	if p == 0 {
		return s == ""
	}
	for i := 0; ; i++ {
		c := *(*byte)(cptr(p + uintptr(i))) // stops at the NUL: reads nothing past it
		if i == len(s) {
			return c == 0
		}
		if c != s[i] {
			return false
		}
	}
}

// argValue is Filter's argument i as the vtab package passes it.
func (bc *bridgeCursor) argValue(tls *libc.TLS, v uintptr, i int) vtab.Value {
	switch sqlite3.Xsqlite3_value_type(tls, v) {
	case sqlite3.SQLITE_INTEGER:
		return sqlite3.Xsqlite3_value_int64(tls, v)
	case sqlite3.SQLITE_FLOAT:
		f := sqlite3.Xsqlite3_value_double(tls, v)
		if _, ok := bc.impl.(realTexter); !ok {
			return f
		}
		// The TEXT SQLite makes of it (as TEXT affinity and LIKE do):
		// its own rendering, which a setting of the connection tunes.
		// The register gains a TEXT form, as when a function reads it.
		p := sqlite3.Xsqlite3_value_text(tls, v)
		n := sqlite3.Xsqlite3_value_bytes(tls, v)
		r := realArg{F: f}
		if p != 0 && n > 0 {
			r.Text = string(unsafe.Slice((*byte)(cptr(p)), int(n)))
		}
		return r
	case sqlite3.SQLITE_TEXT:
		p := sqlite3.Xsqlite3_value_text(tls, v)
		n := sqlite3.Xsqlite3_value_bytes(tls, v)
		if p != 0 && n > 0 {
			bc.strs[i] = unsafe.String((*byte)(cptr(p)), int(n))
		}
		return textRef(&bc.strs[i])
	case sqlite3.SQLITE_BLOB:
		n := sqlite3.Xsqlite3_value_bytes(tls, v)
		p := sqlite3.Xsqlite3_value_blob(tls, v)
		if p == 0 || n == 0 {
			return []byte{}
		}
		return unsafe.Slice((*byte)(cptr(p)), int(n))
	}
	return nil
}

func xNext(tls *libc.TLS, pCursor uintptr) int32 {
	bc := cursorOf(pCursor)
	if bc == nil || bc.impl.Next() != nil {
		return sqlite3.SQLITE_ERROR
	}
	return sqlite3.SQLITE_OK
}

func xEof(tls *libc.TLS, pCursor uintptr) int32 {
	if bc := cursorOf(pCursor); bc != nil && !bc.impl.Eof() {
		return 0
	}
	return 1
}

func xRowid(tls *libc.TLS, pCursor, pRowid uintptr) int32 {
	bc := cursorOf(pCursor)
	if bc == nil {
		*(*int64)(cptr(pRowid)) = 0
		return sqlite3.SQLITE_OK
	}
	id, err := bc.impl.Rowid()
	*(*int64)(cptr(pRowid)) = id
	if err != nil {
		return sqlite3.SQLITE_ERROR
	}
	return sqlite3.SQLITE_OK
}

// xUpdate refuses every change. SQLite calls it only for a statement the
// authorizer let through, which it lets through none; without it SQLite
// would refuse writes itself, before the authorizer could say why.
func xUpdate(tls *libc.TLS, pVtab uintptr, argc int32, argv, pRowid uintptr) int32 {
	setTableErrMsg(tls, pVtab, ErrReadOnly.Error())
	return sqlite3.SQLITE_READONLY
}

// xColumn sets the column's value as the result of ctx.
func xColumn(tls *libc.TLS, pCursor, ctx uintptr, col int32) int32 {
	bc := cursorOf(pCursor)
	if bc == nil {
		sqlite3.Xsqlite3_result_null(tls, ctx)
		return sqlite3.SQLITE_OK
	}
	v, err := bc.impl.Column(int(col))
	if err == nil {
		err = bc.result(tls, ctx, v)
	}
	if err != nil {
		if z, cerr := libc.CString(err.Error()); cerr == nil {
			sqlite3.Xsqlite3_result_error(tls, ctx, z, -1)
			libc.Xfree(tls, z)
		}
		sqlite3.Xsqlite3_result_error_code(tls, ctx, sqlite3.SQLITE_ERROR)
		return sqlite3.SQLITE_ERROR
	}
	return sqlite3.SQLITE_OK
}

// result makes v the result of ctx, as modernc's bridge would (the same
// types, an empty BLOB a zero-length BLOB), copying TEXT and BLOB bytes
// through the cursor's buffer.
func (bc *bridgeCursor) result(tls *libc.TLS, ctx uintptr, v vtab.Value) error {
	switch v := v.(type) {
	case nil:
		sqlite3.Xsqlite3_result_null(tls, ctx)
	case int64:
		sqlite3.Xsqlite3_result_int64(tls, ctx, v)
	case float64:
		sqlite3.Xsqlite3_result_double(tls, ctx, v)
	case bool:
		sqlite3.Xsqlite3_result_int(tls, ctx, libc.Bool32(v))
	case time.Time:
		sqlite3.Xsqlite3_result_int64(tls, ctx, v.Unix())
	case string:
		p, err := bc.stage(tls, unsafe.StringData(v), len(v))
		if err != nil {
			return err
		}
		// Zero-terminated (stage ends the copy with a NUL, and SQLite's own
		// copy always is): SQLite then knows its copy is a C string, and
		// the driver's sqlite3_column_text returns it as it is instead of
		// terminating it again, a tenth of a scan's row.
		sqlite3.Xsqlite3_result_text64(tls, ctx, p, uint64(len(v)), sqlite3.SQLITE_TRANSIENT, sqlite3.SQLITE_UTF8_ZT)
	case []byte:
		if len(v) == 0 {
			sqlite3.Xsqlite3_result_zeroblob(tls, ctx, 0)
			return nil
		}
		p, err := bc.stage(tls, unsafe.SliceData(v), len(v))
		if err != nil {
			return err
		}
		sqlite3.Xsqlite3_result_blob(tls, ctx, p, int32(len(v)), sqlite3.SQLITE_TRANSIENT)
	default:
		return fmt.Errorf("kvtool/query: a column of type %T", v)
	}
	return nil
}

// maxColumnBytes is the largest TEXT or BLOB a column may return (SQLite
// takes its length as an int).
const maxColumnBytes = math.MaxInt32

// stage copies n bytes at b into the cursor's C buffer, followed by a NUL,
// and returns it.
func (bc *bridgeCursor) stage(tls *libc.TLS, b *byte, n int) (uintptr, error) {
	if n > maxColumnBytes-1 {
		return 0, fmt.Errorf("kvtool/query: a column of %d bytes is too big for SQLite", n)
	}
	if n+1 > bc.bufCap || bc.buf == 0 {
		size := max(n+1, 2*bc.bufCap, 64)
		p := sqlite3.Xsqlite3_realloc64(tls, bc.buf, uint64(size))
		if p == 0 {
			return 0, errors.New("kvtool/query: out of memory for a column")
		}
		bc.buf, bc.bufCap = p, size
	}
	dst := unsafe.Slice((*byte)(cptr(bc.buf)), n+1)
	if n > 0 {
		copy(dst, unsafe.Slice(b, n))
	}
	dst[n] = 0
	return bc.buf, nil
}

// cptr is a C pointer (memory SQLite or libc allocated, never Go's) as an
// unsafe.Pointer. Going through the variable's address, rather than
// converting the uintptr, says that p is not a Go pointer kept as an
// integer (which go vet's unsafeptr check looks for).
func cptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

// mallocString is s as a NUL-terminated string in SQLite's memory (which
// SQLite frees), or 0.
func mallocString(tls *libc.TLS, s string) uintptr {
	p := sqlite3.Xsqlite3_malloc64(tls, uint64(len(s)+1))
	if p == 0 {
		return 0
	}
	b := unsafe.Slice((*byte)(cptr(p)), len(s)+1)
	copy(b, s)
	b[len(s)] = 0
	return p
}

// setErr sets *pzErr to msg (xConnect's error).
func setErr(tls *libc.TLS, pzErr uintptr, msg string) {
	if pzErr != 0 {
		if z := mallocString(tls, msg); z != 0 {
			*(*uintptr)(cptr(pzErr)) = z
		}
	}
}

// setTableErrMsg sets the table's zErrMsg, which SQLite reports and frees.
func setTableErrMsg(tls *libc.TLS, pVtab uintptr, msg string) {
	if pVtab == 0 {
		return
	}
	t := (*cTable)(cptr(pVtab))
	if t.base.FzErrMsg != 0 {
		sqlite3.Xsqlite3_free(tls, t.base.FzErrMsg)
	}
	t.base.FzErrMsg = mallocString(tls, msg)
}

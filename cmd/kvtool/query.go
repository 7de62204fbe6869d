package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/query"
	"github.com/kvtool/kvtool/replay"
	"github.com/kvtool/kvtool/vfs"
)

const queryTablesHelp = `TABLES
  kv(key, value)            the state; key =, IN, <, <=, >, >=, LIKE 'prefix%',
                            GLOB 'prefix*' and ORDER BY key (either way) read
                            only the keys they select
  kv_at(N)                  the state right after log index N, rebuilt like
                            kvtool replay --to-index N: SELECT * FROM kv_at(100)
  wal                       one row per logged operation: "index", term,
                            segment, offset, op (put, del), key, value, delta
                            (a put's integer change to its key)
  segments                  WAL segments: name, first_index, last_index,
                            records, size, term, needed, problems
  checkpoints, deltas       the snapshot files and what they cover
  manifest                  the manifest, one row
  leases                    retention leases (a server's; empty on --data)
  members                   cluster members as the server sees them: name, id,
                            role, peer_addr, api_addr, match_index,
                            applied_index, lag (empty on a single node, --data)
  "index" is an SQL keyword: quote it ("index" or [index]). Values that are
  not UTF-8 are BLOBs.
  EXPLAIN QUERY PLAN shows what each table was asked (INDEX 0:key= ...).`

func queryCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "query",
		Usage:     "run read-only SQL over the state, any past state and the data directory's files",
		ArgsUsage: "SQL | -",
		Description: `Runs one SQL statement (SQLite's dialect) over one consistent state and
prints its rows as they are produced: an aligned table, --json (one JSON
object per line; a BLOB is {"base64": "..."}) or --csv.

With --addr HOST:PORT (or KVTOOL_ADDR) the statement runs on the server, on
one snapshot, within the server's time limit (or --timeout) and row limit
(or --max-rows). Otherwise it runs on --data: the state is rebuilt from the
directory's files as kvtool replay does; nothing is created, locked or
written, so it works on a read-only directory and beside a running server.

Queries are read-only: a statement that would write, attach a database,
load an extension or change a setting exits 2, as does SQL that SQLite
rejects (with its message and position). Ctrl-C stops a running query
(exit 130).

` + queryTablesHelp + `

Examples:
  kvtool query "SELECT count(*) FROM kv WHERE key LIKE 'acct:%'"
  kvtool query "SELECT key, value FROM kv WHERE CAST(value AS INTEGER) < 0"
  kvtool query "SELECT substr(key, 1, instr(key, ':')) AS prefix, count(*), sum(length(value)) FROM kv GROUP BY prefix"
  kvtool query "SELECT [index], op, value, delta FROM wal WHERE key = 'acct:1' AND [index] > 1000"
  kvtool query "SELECT a.key, a.value AS before, b.value AS after FROM kv_at(100) a JOIN kv b USING (key) WHERE a.value <> b.value"
  kvtool query --file report.sql --csv > report.csv
  echo "SELECT * FROM segments" | kvtool query --addr 127.0.0.1:7070 --json -`,
		Flags: append(sqlFlags(),
			&cli.StringFlag{Name: "file", Usage: "read the statement from `FILE`"},
			&cli.BoolFlag{Name: "csv", Usage: "print CSV: a header line, then one line per row", DisableDefaultText: true},
		),
		Action: action(e, spec{max: -1, scope: serverOrDir}, queryOptionsOf, func(c *call, q queryOptions) error {
			res, err := runSQL(c, q.text, q.sql, q.out)
			if err != nil {
				return sqlError(c.Context, err)
			}
			return finishRows(c.Context, res, "row")
		}),
	}
}

// queryOptions are the statement and flags of query.
type queryOptions struct {
	text string
	sql  sqlOptions
	out  rowSink
}

func queryOptionsOf(cCtx *cli.Context) (queryOptions, error) {
	var q queryOptions
	var err error
	if q.text, err = queryText(cCtx); err != nil {
		return q, err
	}
	if q.sql, err = sqlOptionsOf(cCtx); err != nil {
		return q, err
	}
	g := globalsOf(cCtx)
	switch {
	case g.JSON && cCtx.Bool("csv"):
		return q, usageErrorf(cCtx, "--json and --csv exclude each other")
	case g.JSON:
		q.out = &jsonRows{w: cCtx.App.Writer}
	case cCtx.Bool("csv"):
		q.out = &csvRows{w: csv.NewWriter(cCtx.App.Writer)}
	default:
		q.out = &tableRows{w: cCtx.App.Writer}
	}
	return q, nil
}

// sqlFlags are the flags of the commands that run SQL.
func sqlFlags() []cli.Flag {
	return []cli.Flag{
		addrFlag(),
		&cli.Int64Flag{Name: "max-rows", Usage: "stop after `N` rows", DefaultText: "all (a server caps it)"},
		&cli.DurationFlag{Name: "timeout", Usage: "stop the query after `DURATION` (e.g. 30s)", DefaultText: "none (a server caps it)"},
	}
}

// sqlOptions are what sqlFlags set (--addr: the prologue's target).
type sqlOptions struct {
	maxRows int64
	timeout time.Duration
}

func sqlOptionsOf(cCtx *cli.Context) (sqlOptions, error) {
	o := sqlOptions{maxRows: cCtx.Int64("max-rows"), timeout: cCtx.Duration("timeout")}
	if o.maxRows < 0 || o.timeout < 0 {
		return o, usageErrorf(cCtx, "--max-rows and --timeout must not be negative")
	}
	return o, nil
}

// queryText reads the statement: the argument, standard input (-) or
// --file.
func queryText(cCtx *cli.Context) (string, error) {
	file := cCtx.String("file")
	switch {
	case file != "" && cCtx.NArg() > 0:
		return "", usageErrorf(cCtx, "give the statement as an argument or with --file, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", failed(fmt.Errorf("read the statement: %w", err), "")
		}
		return string(b), nil
	case cCtx.NArg() == 0:
		return "", usageErrorf(cCtx, "no statement: give it as an argument, as - to read standard input, or with --file")
	case cCtx.NArg() > 1:
		return "", usageErrorf(cCtx, "give the statement as one argument (quote it); got %d arguments", cCtx.NArg())
	case cCtx.Args().First() == "-":
		b, err := io.ReadAll(cCtx.App.Reader)
		if err != nil {
			return "", failed(fmt.Errorf("read the statement from standard input: %w", err), "")
		}
		return string(b), nil
	}
	return cCtx.Args().First(), nil
}

// rowSink receives a statement's result.
type rowSink interface {
	header(cols []string) error
	row(vals []any) error
	end() error
}

// sqlResult is how a statement ended.
type sqlResult struct {
	rows      int64
	truncated bool // a row limit stopped it
	index     uint64
}

// runSQL runs text on the server or the data directory, sending the rows
// to out as they come.
func runSQL(c *call, text string, o sqlOptions, out rowSink) (sqlResult, error) {
	ctx := c.Context.Context
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	var res sqlResult
	var err error
	if c.t.remote() {
		res, err = runRemote(ctx, c.t.addr, o, text, out)
	} else {
		res, err = runLocal(ctx, c.fs, c.data(), o, text, out)
	}
	if err != nil {
		return res, err
	}
	return res, out.end()
}

func runRemote(ctx context.Context, addr string, o sqlOptions, text string, out rowSink) (sqlResult, error) {
	c := client.New(addr)
	defer c.Close()
	var res sqlResult
	req := client.QueryRequest{SQL: text, MaxRows: o.maxRows, TimeoutMS: o.timeout.Milliseconds()}
	end, err := c.Query(ctx, req, func(h client.QueryHeader) error {
		res.index = h.AppliedIndex
		return out.header(h.Columns)
	}, out.row)
	res.rows, res.truncated = end.Rows, end.Truncated
	return res, err
}

func runLocal(ctx context.Context, fsys vfs.FS, data string, o sqlOptions, text string, out rowSink) (sqlResult, error) {
	var res sqlResult
	sess, err := query.Open(ctx, query.Source{FS: fsys, Dir: data}, query.Options{})
	if err != nil {
		return res, err
	}
	defer sess.Close()
	rows, err := sess.Query(ctx, text)
	if err != nil {
		return res, err
	}
	defer rows.Close()
	if err := out.header(rows.Columns()); err != nil {
		return res, err
	}
	for rows.Next() {
		if o.maxRows > 0 && res.rows == o.maxRows {
			res.truncated = true
			break
		}
		if err := out.row(rows.Values()); err != nil {
			return res, err
		}
		res.rows++
	}
	res.index, _ = sess.Index()
	return res, rows.Err()
}

// finishRows prints the count of rows (on a terminal table) and says on
// standard error when a row limit cut the result.
func finishRows(cCtx *cli.Context, res sqlResult, noun string) error {
	g := globalsOf(cCtx)
	if res.truncated && !g.Quiet {
		fmt.Fprintf(cCtx.App.ErrWriter, "kvtool: note: stopped after %d rows (the row limit); raise --max-rows for more\n", res.rows)
	}
	if g.JSON || cCtx.Bool("csv") {
		return nil
	}
	if res.rows != 1 {
		noun += "s"
	}
	newPrinter(cCtx).Notef("%d %s", res.rows, noun)
	return nil
}

// sqlError gives a failed statement its exit code and hint.
func sqlError(cCtx *cli.Context, err error) error {
	var ee *exitError
	var se *query.SQLError
	var qe *client.QueryError
	hint := "`kvtool query --help` lists the tables and their columns"
	switch {
	case errors.As(err, &ee):
		return err
	case errors.Is(err, context.Canceled):
		return &exitError{code: exitInterrupted, err: errors.New("the query was interrupted"), hint: "nothing was changed"}
	case errors.Is(err, context.DeadlineExceeded):
		return failed(fmt.Errorf("the query ran past --timeout and was stopped"), "raise --timeout, or narrow the query")
	case errors.As(err, &se), errors.Is(err, query.ErrNoIndex):
		return &exitError{code: exitUsage, err: err, hint: hint}
	case errors.Is(err, query.ErrReadOnly):
		return &exitError{code: exitUsage, err: err, hint: "kvtool query only reads; change the store with put, del or txn"}
	case errors.Is(err, replay.ErrNotCovered):
		return failed(err, "kvtool replay --help explains which indexes the retained files cover")
	case errors.As(err, &qe):
		return remoteQueryError(qe, hint)
	case errors.Is(err, client.ErrNoServer):
		return failed(err, "is `kvtool serve` running there? Without --addr (and KVTOOL_ADDR) the query runs on --data")
	case errors.Is(err, format.ErrCorruption):
		return damaged(err, "run kvtool verify to list every damaged file")
	}
	return failed(err, "")
}

func remoteQueryError(qe *client.QueryError, hint string) error {
	err := errors.New(qe.Message)
	switch qe.Kind {
	case client.QueryKindSQL:
		return &exitError{code: exitUsage, err: err, hint: hint}
	case client.QueryKindReadOnly:
		return &exitError{code: exitUsage, err: err, hint: "kvtool query only reads; change the store with put, del or txn"}
	case client.QueryKindCorruption:
		return damaged(err, "run kvtool verify on the server's data directory")
	case client.QueryKindTimeout:
		return failed(err, "narrow the query, or run it on --data")
	case client.QueryKindCanceled:
		return &exitError{code: exitInterrupted, err: err}
	}
	if qe.Status == 400 || qe.Status == 413 {
		return &exitError{code: exitUsage, err: err, hint: hint}
	}
	return failed(err, "")
}

// ---- output ----

// tableSample is how many rows an aligned table holds back to size its
// columns; later rows are printed as they come, in those widths (a longer
// cell pushes the rest of its row right).
const tableSample = 200

// tableRows prints an aligned table.
type tableRows struct {
	w       io.Writer
	widths  []int
	pending [][]string
	started bool
}

func (t *tableRows) header(cols []string) error {
	hdr := make([]string, len(cols))
	for i, c := range cols {
		hdr[i] = strings.ToUpper(cellText(c))
	}
	t.pending = append(t.pending, hdr)
	return nil
}

func (t *tableRows) row(vals []any) error {
	cells := make([]string, len(vals))
	for i, v := range vals {
		cells[i] = cellText(v)
	}
	if t.started {
		return t.write(cells)
	}
	t.pending = append(t.pending, cells)
	if len(t.pending) > tableSample {
		return t.flush()
	}
	return nil
}

func (t *tableRows) end() error { return t.flush() }

func (t *tableRows) flush() error {
	if t.started {
		return nil
	}
	t.started = true
	for _, r := range t.pending {
		for i, c := range r {
			if i >= len(t.widths) {
				t.widths = append(t.widths, 0)
			}
			t.widths[i] = max(t.widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range t.pending {
		if err := t.write(r); err != nil {
			return err
		}
	}
	t.pending = nil
	return nil
}

func (t *tableRows) write(cells []string) error {
	var b strings.Builder
	for i, c := range cells {
		if i > 0 {
			b.WriteString("  ")
		}
		b.WriteString(c)
		if i < len(cells)-1 && i < len(t.widths) {
			b.WriteString(strings.Repeat(" ", max(0, t.widths[i]-utf8.RuneCountInString(c))))
		}
	}
	b.WriteByte('\n')
	_, err := io.WriteString(t.w, b.String())
	return writeErr(err)
}

// cellText is a value as a table or CSV shows it: NULL, numbers as SQLite
// prints them, text with control characters and bytes that are not UTF-8
// escaped, a BLOB as x'hex'.
func cellText(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return formatReal(v)
	case []byte:
		return fmt.Sprintf("x'%x'", v)
	case string:
		return escapeText(v)
	}
	return fmt.Sprint(v)
}

func formatReal(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !math.IsInf(f, 0) && !strings.ContainsAny(s, ".eEn") {
		s += ".0" // a REAL looks like one, as in sqlite3
	}
	return s
}

// escapeText escapes what would break a line or a terminal.
func escapeText(s string) string {
	clean := true
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

// csvRows prints CSV; NULL is an empty field.
type csvRows struct{ w *csv.Writer }

func (c *csvRows) header(cols []string) error { return writeErr(c.w.Write(cols)) }

func (c *csvRows) row(vals []any) error {
	rec := make([]string, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
		case string:
			rec[i] = v
		default:
			rec[i] = cellText(v)
		}
	}
	return writeErr(c.w.Write(rec))
}

func (c *csvRows) end() error {
	c.w.Flush()
	return writeErr(c.w.Error())
}

// jsonRows prints one JSON object per row, its fields in column order
// (a repeated column name gets _2, _3, ...).
type jsonRows struct {
	w    io.Writer
	keys [][]byte
	buf  []byte
}

func (j *jsonRows) header(cols []string) error {
	seen := map[string]int{}
	for _, c := range cols {
		name := c
		if seen[c]++; seen[c] > 1 {
			name = fmt.Sprintf("%s_%d", c, seen[c])
		}
		k, _ := json.Marshal(name)
		j.keys = append(j.keys, k)
	}
	return nil
}

func (j *jsonRows) row(vals []any) error {
	b := append(j.buf[:0], '{')
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(b, j.keys[i]...), ':')
		b = appendJSONValue(b, v)
	}
	b = append(b, '}', '\n')
	j.buf = b
	_, err := j.w.Write(b)
	return writeErr(err)
}

func (j *jsonRows) end() error { return nil }

// appendJSONValue appends a value as --json prints it: null, a number, a
// string, or {"base64": ...} for a BLOB and {"text_base64": ...} for text
// that is not UTF-8.
func appendJSONValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return strconv.AppendQuote(b, formatReal(v))
		}
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	case []byte:
		return appendBase64Object(b, "base64", v)
	case string:
		if !utf8.ValidString(v) {
			return appendBase64Object(b, "text_base64", []byte(v))
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.Encode(v)
		return append(b, bytes.TrimRight(buf.Bytes(), "\n")...)
	}
	s, _ := json.Marshal(fmt.Sprint(v))
	return append(b, s...)
}

func appendBase64Object(b []byte, name string, v []byte) []byte {
	b = append(b, `{"`...)
	b = append(b, name...)
	b = append(b, `":"`...)
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, `"}`...)
}

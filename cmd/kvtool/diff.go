package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/query"
)

func diffCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "diff",
		Usage: "show the keys added, changed and removed between two log indexes",
		Description: `Rebuilds the states right after --from-index and right after --to-index
(as kvtool replay --to-index does) and prints, in key order, every key
added, changed (with its old and new value) or removed between them; with
--prefix only keys that start with it. Both indexes must be covered by the
retained files (see kvtool replay --help); the command exits 1 naming
those that are.

Text output is a table: CHANGE, KEY, OLD, NEW. --json prints one object
per key: {"change": "changed", "key": ..., "old": ..., "new": ...}, without
old for an added key and without new for a removed one; a value that is not
UTF-8 is given as old_base64 or new_base64 instead.

It is the SQL of kvtool query over kv_at (run with --addr on a server, or on
--data: read-only, safe beside a running server).

Examples:
  kvtool diff --from-index 1000 --to-index 1200
  kvtool diff --from-index 1000 --to-index 1200 --prefix acct: --json | jq -r 'select(.change == "removed") | .key'
  kvtool diff --addr 127.0.0.1:7070 --from-index 50 --to-index 60`,
		Flags: append(sqlFlags(),
			&cli.Uint64Flag{Name: "from-index", Usage: "the earlier state: right after log `INDEX`", Required: true},
			&cli.Uint64Flag{Name: "to-index", Usage: "the later state: right after log `INDEX`", Required: true},
			&cli.StringFlag{Name: "prefix", Usage: "only keys that start with `PREFIX`"},
		),
		Action: action(e, spec{scope: serverOrDir}, diffOptionsOf, runDiff),
	}
}

// diffOptions are the flags of diff.
type diffOptions struct {
	from, to uint64
	sql      sqlOptions
}

func diffOptionsOf(cCtx *cli.Context) (diffOptions, error) {
	o := diffOptions{from: cCtx.Uint64("from-index"), to: cCtx.Uint64("to-index")}
	if o.from == 0 || o.to == 0 {
		return o, usageErrorf(cCtx, "log indexes start at 1")
	}
	var err error
	o.sql, err = sqlOptionsOf(cCtx)
	return o, err
}

// runDiff prints the keys that changed from o.from to o.to, then counts.
func runDiff(c *call, o diffOptions) error {
	cCtx := c.Context
	var out rowSink = &tableRows{w: cCtx.App.Writer}
	counts := &diffCounts{}
	if globalsOf(cCtx).JSON {
		out = &diffJSON{w: cCtx.App.Writer}
	}
	res, err := runSQL(c, query.DiffQuery(o.from, o.to, cCtx.String("prefix")), o.sql, countingSink{out, counts})
	if err != nil {
		return sqlError(cCtx, err)
	}
	if res.truncated {
		fmt.Fprintf(cCtx.App.ErrWriter, "kvtool: note: stopped after %d keys (the row limit); raise --max-rows for more\n", res.rows)
	}
	newPrinter(cCtx).Notef("%d added, %d changed, %d removed from index %d to %d", counts.added, counts.changed, counts.removed, o.from, o.to)
	return nil
}

// diffCounts counts the changes by kind.
type diffCounts struct{ added, changed, removed int64 }

// countingSink counts the rows of a diff on their way to out.
type countingSink struct {
	out rowSink
	c   *diffCounts
}

func (s countingSink) header(cols []string) error { return s.out.header(cols) }
func (s countingSink) end() error                 { return s.out.end() }

func (s countingSink) row(vals []any) error {
	switch vals[0] {
	case "added":
		s.c.added++
	case "changed":
		s.c.changed++
	case "removed":
		s.c.removed++
	}
	return s.out.row(vals)
}

// diffJSON prints a diff as JSON lines.
type diffJSON struct {
	w   io.Writer
	buf []byte
}

func (d *diffJSON) header([]string) error { return nil }
func (d *diffJSON) end() error            { return nil }

func (d *diffJSON) row(vals []any) error {
	b := append(d.buf[:0], `{"change":`...)
	b = appendJSONValue(b, vals[0])
	b = appendField(b, "key", vals[1])
	if vals[2] != nil {
		b = appendField(b, "old", vals[2])
	}
	if vals[3] != nil {
		b = appendField(b, "new", vals[3])
	}
	b = append(b, '}', '\n')
	d.buf = b
	_, err := d.w.Write(b)
	return writeErr(err)
}

// appendField appends ,"name":value, or ,"name_base64":"..." for bytes
// that are not UTF-8 (the convention of the transaction JSON).
func appendField(b []byte, name string, v any) []byte {
	var raw []byte
	switch v := v.(type) {
	case []byte:
		raw = v
	case string:
		if !utf8.ValidString(v) {
			raw = []byte(v)
		}
	}
	if raw != nil {
		b = append(b, ',')
		b = strconv.AppendQuote(b, name+"_base64")
		b = append(b, ':')
		return appendJSONValue(b, base64.StdEncoding.EncodeToString(raw))
	}
	b = append(b, ',')
	b = strconv.AppendQuote(b, name)
	b = append(b, ':')
	return appendJSONValue(b, v)
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// printer writes a command's results to standard output (App.Writer):
// aligned text tables for people, or JSON for programs (--json). With
// --json a command prints exactly one JSON document, or one JSON value per
// line for streams; with --quiet it prints its results but no notes.
type printer struct {
	w     io.Writer
	json  bool
	quiet bool
	store storeJSON // the store the command changed, if it recorded one (actedOn)
}

// newPrinter returns the printer for the command running in cCtx.
func newPrinter(cCtx *cli.Context) *printer {
	g := globalsOf(cCtx)
	p := &printer{w: cCtx.App.Writer, json: g.JSON, quiet: g.Quiet}
	if t, ok := cCtx.App.Metadata[actedOnKey].(target); ok {
		p.store = t.json()
	}
	return p
}

// JSON writes v as one indented JSON document. Field names are snake_case
// (set by the struct tags of v).
func (p *printer) JSON(v any) error {
	enc := json.NewEncoder(p.w)
	enc.SetIndent("", "  ")
	return writeErr(enc.Encode(v))
}

// JSONLine writes v as one compact line: the format of a stream (JSON lines).
func (p *printer) JSONLine(v any) error {
	return writeErr(json.NewEncoder(p.w).Encode(v))
}

// Notef prints a line meant for a person (a summary, a note): nothing with
// --json or --quiet.
func (p *printer) Notef(format string, args ...any) {
	if p.json || p.quiet {
		return
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// Table starts an aligned text table with the given column headers. Rows are
// buffered until Flush.
func (p *printer) Table(header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)}
	cols := make([]any, len(header))
	for i, h := range header {
		cols[i] = h
	}
	t.Row(cols...)
	return t
}

// table is an aligned text table; see printer.Table.
type table struct {
	tw *tabwriter.Writer
}

// Row adds a row; each column is formatted with fmt.Sprint, and tabs and
// newlines in it are replaced by spaces so they cannot break the alignment.
func (t *table) Row(cols ...any) {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(oneLine(fmt.Sprint(c)))
	}
	b.WriteByte('\n')
	t.tw.Write([]byte(b.String())) // errors surface in Flush
}

// Flush writes the table.
func (t *table) Flush() error { return writeErr(t.tw.Flush()) }

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// writeErr wraps a failure to write results (a closed pipe, a full disk).
func writeErr(err error) error {
	if err != nil {
		return failed(fmt.Errorf("write output: %w", err), "")
	}
	return nil
}

// progress draws a progress bar on standard error while a long operation
// runs. It draws only when standard error is a terminal and neither --json
// nor --quiet is set; otherwise every method does nothing. Use:
//
//	pr := startProgress(cCtx, "verify", 0)
//	err := lib.Do(lib.Options{Progress: pr.Update})
//	pr.Done()
type progress struct {
	p     *mpb.Progress // nil: disabled
	bar   *mpb.Bar
	mu    sync.Mutex
	total int64
}

// startProgress starts a progress bar labelled label for total bytes (0 if
// not known yet; Update may change it).
func startProgress(cCtx *cli.Context, label string, total int64) *progress {
	g := globalsOf(cCtx)
	if g.JSON || g.Quiet || !isTerminal(cCtx.App.ErrWriter) {
		return &progress{}
	}
	p := mpb.NewWithContext(cCtx.Context, mpb.WithOutput(cCtx.App.ErrWriter), mpb.WithWidth(40))
	bar := p.AddBar(total,
		mpb.BarRemoveOnComplete(),
		mpb.PrependDecorators(decor.Name(label, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(
			decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace),
			decor.Percentage(decor.WCSyncSpace),
		),
	)
	return &progress{p: p, bar: bar, total: total}
}

// Update reports done out of total. It is safe to call from any goroutine.
func (pr *progress) Update(done, total int64) {
	if pr.p == nil {
		return
	}
	pr.mu.Lock()
	if total != pr.total {
		pr.total = total
		pr.bar.SetTotal(total, false)
	}
	pr.mu.Unlock()
	pr.bar.SetCurrent(done)
}

// Done removes the bar and waits until it is erased. Call it once, before
// printing results, whether the operation succeeded or not.
func (pr *progress) Done() {
	if pr.p == nil {
		return
	}
	pr.bar.SetTotal(-1, true)
	pr.p.Wait()
}

// isTerminal reports whether w (a writer or a reader) is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

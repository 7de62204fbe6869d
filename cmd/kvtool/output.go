package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

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

// progress shows a long operation's progress on standard error: a bar
// (mpb) when standard error is a terminal and --json is not set; with
// --progress, a bar on a terminal and otherwise a line every few seconds
// and one at the end (for a log); never with --quiet. Otherwise every
// method does nothing. Use:
//
//	pr := startProgress(cCtx, "verify", 0)
//	err := lib.Do(lib.Options{Progress: pr.Update})
//	pr.Done()
type progress struct {
	p     *mpb.Progress // the bar; nil: none
	bar   *mpb.Bar
	lines *lineProgress // nil: none
	mu    sync.Mutex
	total int64
}

// startProgress starts a progress bar labelled label for total bytes (0 if
// not known yet; Update may change it).
func startProgress(cCtx *cli.Context, label string, total int64) *progress {
	switch progressMode(cCtx) {
	case noProgress:
		return &progress{}
	case linesProgress:
		return &progress{lines: &lineProgress{w: cCtx.App.ErrWriter, label: label, start: time.Now()}, total: total}
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
	if pr.lines != nil {
		pr.lines.update(done, total)
		return
	}
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

// Done removes the bar and waits until it is erased (or prints the last
// line). Call it once, before printing results, whether the operation
// succeeded or not.
func (pr *progress) Done() {
	if pr.lines != nil {
		pr.lines.done()
		return
	}
	if pr.p == nil {
		return
	}
	pr.bar.SetTotal(-1, true)
	pr.p.Wait()
}

// lineProgress writes progress as lines, for a standard error that is not
// a terminal: at most one per lineEvery, and one at the end.
type lineProgress struct {
	w           io.Writer
	label       string
	mu          sync.Mutex
	start, last time.Time
	moved       int64
	total       int64
}

// lineEvery is how often lineProgress writes a line.
const lineEvery = 5 * time.Second

func (l *lineProgress) update(done, total int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.moved, l.total = done, total
	if now := time.Now(); now.Sub(l.last) >= lineEvery && now.Sub(l.start) >= lineEvery {
		l.last = now
		fmt.Fprintf(l.w, "kvtool: %s: %s\n", l.label, progressText(done, total))
	}
}

func (l *lineProgress) done() {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "kvtool: %s: done: %s in %s\n", l.label, byteText(l.moved), time.Since(l.start).Round(time.Millisecond))
}

// progressText says "12.0MiB of 40.0MiB (30%)".
func progressText(done, total int64) string {
	if total <= 0 {
		return byteText(done)
	}
	return fmt.Sprintf("%s of %s (%d%%)", byteText(done), byteText(total), done*100/total)
}

// byteText says "12.0MiB".
func byteText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	f, u := float64(n), 0
	for f >= unit && u < 4 {
		f, u = f/unit, u+1
	}
	return fmt.Sprintf("%.1f%ciB", f, "KMGTP"[u-1])
}

// flagProgress forces progress, even into a pipe.
const flagProgress = "progress"

// progressFlag is --progress, on the commands that show progress.
func progressFlag() cli.Flag {
	return &cli.BoolFlag{Name: flagProgress, Usage: "show progress on standard error even when it is not a terminal (as lines; --quiet hides it)", DisableDefaultText: true}
}

// How a command shows progress.
const (
	noProgress    = iota
	barProgress   // a bar on a terminal
	linesProgress // lines, into a pipe or a file (--progress)
)

// progressMode says how the command running in cCtx shows progress.
func progressMode(cCtx *cli.Context) int {
	g := globalsOf(cCtx)
	term := isTerminal(cCtx.App.ErrWriter)
	forced := false
	if c := setIn(cCtx, flagProgress); c != nil {
		forced = c.Bool(flagProgress)
	}
	switch {
	case g.Quiet:
		return noProgress
	case forced && term, !g.JSON && term:
		return barProgress
	case forced:
		return linesProgress
	}
	return noProgress
}

// showProgress says whether the command running in cCtx shows progress.
func showProgress(cCtx *cli.Context) bool { return progressMode(cCtx) != noProgress }

// isTerminal reports whether w (a writer or a reader) is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

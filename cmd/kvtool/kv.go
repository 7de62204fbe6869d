package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// The key commands (put, get, del, scan, txn) run against a server when
// --addr (or KVTOOL_ADDR) is given, and otherwise open --data themselves,
// holding DATA/LOCK for the duration of the command.

const kvTargetHelp = `With --addr HOST:PORT (or KVTOOL_ADDR) the command goes to a running
kvtool serve; otherwise it opens --data directly, which fails with the
holder's pid while another process (such as a server) holds the directory.
An explicit --data beats KVTOOL_ADDR; --addr and --data together are refused.`

// initFlag is --init of put and txn: without it they never create a store.
func initFlag() cli.Flag {
	return &cli.BoolFlag{Name: "init", Usage: "create a new store if --data is missing or empty (never among other files)", DisableDefaultText: true}
}

const initHelp = `Without --init, a missing --data directory is an error: a typo in --data, or
an unset KVTOOL_DATA falling back to ./kvdata, would otherwise create a new,
empty store and put the write there instead of in the store meant. With
--init it creates the store in a missing or empty directory (whose parent
must exist), and never in a directory that holds other files.`

func putCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "put",
		Usage:     "set a key to a value",
		ArgsUsage: "KEY [VALUE | -]",
		Description: `Sets KEY to VALUE and returns once the write is durable, printing its log
index (with --quiet, the index alone), and on standard error the store it
wrote to. The value is the VALUE argument, or standard input with - (for
values that are not text, or longer than the shell accepts as an
argument), or the contents of --file FILE. To store a literal "-", use
printf -- - | kvtool put KEY -.

` + limitsHelp + `

` + initHelp + `

` + kvTargetHelp + `

Examples:
  kvtool put --init --data ./kvdata greeting hello
  kvtool put --addr 127.0.0.1:7070 --json acct:1 100
  tar c notes/ | kvtool put backup:notes -
  kvtool put cfg:nginx --file /etc/nginx/nginx.conf`,
		Flags: []cli.Flag{
			addrFlag(), initFlag(),
			&cli.StringFlag{Name: "file", Usage: "read the value from `FILE` (instead of a VALUE argument)"},
		},
		Action: action(e, spec{min: 1, max: 2, scope: serverOrAnyDir}, putInput, func(c *call, in keyValue) error {
			return commitOne(c, c.Bool("init"), func(kv kvTarget) (uint64, error) { return kv.put(c.Context.Context, in.key, in.val) })
		}),
	}
}

// keyValue is what put writes.
type keyValue struct {
	key string
	val []byte
}

// putInput checks put's key and reads its value (see putValue).
func putInput(cCtx *cli.Context) (keyValue, error) {
	kv := keyValue{key: cCtx.Args().Get(0)}
	if err := checkKeyValue(cCtx, kv.key, nil); err != nil {
		return kv, err
	}
	var err error
	if kv.val, err = putValue(cCtx); err != nil {
		return kv, err
	}
	return kv, checkKeyValue(cCtx, kv.key, kv.val)
}

// limitsHelp states the limits on what can be stored.
var limitsHelp = fmt.Sprintf(`Limits: a key is 1 to %d bytes; a value at most %d bytes (%s); a
transaction at most %d operations and %s of keys and values, in a JSON
document of at most %s. The same limits hold for the HTTP API.`,
	format.MaxKeySize, format.MaxValueSize, formatSize(format.MaxValueSize),
	format.MaxTxnOps, formatSize(store.MaxTxnBytes), formatSize(server.MaxTxnBody))

// putValue reads the value of put: the second argument, standard input
// (-), or --file; bounded by the value limit.
func putValue(cCtx *cli.Context) ([]byte, error) {
	arg, file := cCtx.Args().Get(1), cCtx.String("file")
	switch {
	case cCtx.NArg() == 2 && cCtx.IsSet("file"):
		return nil, usageErrorf(cCtx, "give the value as an argument or with --file, not both")
	case cCtx.NArg() == 1 && !cCtx.IsSet("file"):
		return nil, usageErrorf(cCtx, "no value: give VALUE, - to read it from standard input, or --file FILE")
	case cCtx.IsSet("file") && file == "":
		return nil, usageErrorf(cCtx, "--file is empty (is a shell variable unset?)")
	case cCtx.NArg() == 2 && arg != "-":
		return []byte(arg), nil
	}
	var r io.Reader = cCtx.App.Reader
	what := "standard input"
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, failed(fmt.Errorf("read the value: %w", err), "")
		}
		defer f.Close()
		r, what = f, file
	} else if isTerminalReader(r) && !globalsOf(cCtx).Quiet {
		fmt.Fprintln(cCtx.App.ErrWriter, "kvtool: reading the value from standard input (Ctrl-D to end)")
	}
	val, err := io.ReadAll(io.LimitReader(r, format.MaxValueSize+1))
	switch {
	case err != nil:
		return nil, failed(fmt.Errorf("read the value from %s: %w", what, err), "")
	case len(val) > format.MaxValueSize:
		return nil, usageErrorf(cCtx, "the value in %s is over the limit of %d bytes (%s)", what, format.MaxValueSize, formatSize(format.MaxValueSize))
	}
	return val, nil
}

// isTerminalReader reports whether r is a terminal.
func isTerminalReader(r io.Reader) bool {
	f, ok := r.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

func delCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "del",
		Usage:     "delete a key",
		ArgsUsage: "KEY",
		Description: `Deletes KEY and returns once the deletion is durable, printing the log index
of the resulting state (with --quiet, the index alone). Deleting an absent
key succeeds and changes nothing; del says so ("absent, nothing changed").
With --json prints {"index", "deleted"}: deleted is false when the key was
absent.

` + kvTargetHelp + `

Examples:
  kvtool del greeting
  kvtool del --addr 127.0.0.1:7070 --json tmp:1`,
		Flags: []cli.Flag{addrFlag()},
		Action: action(e, spec{min: 1, max: 1, scope: serverOrAnyDir}, keyArg, func(c *call, key string) error {
			kv, err := openKV(c, openMode{write: true})
			if err != nil {
				return err
			}
			// Whether the key was there: absent before, and no write at all
			// since (the delete answered the same index), means the delete
			// changed nothing. A write in between leaves it unknown: then
			// the delete is reported as one.
			ctx := c.Context.Context
			_, before, gerr := kv.get(ctx, key)
			idx, err := kv.del(ctx, key)
			if err := closeKV(kv, err); err != nil {
				return kvError(c.Context, err)
			}
			absent := errors.Is(gerr, errKeyNotFound) && idx == before
			return printDeleted(c.Context, c.t, idx, !absent)
		}),
	}
}

// keyArg is the KEY argument of get and del, checked.
func keyArg(cCtx *cli.Context) (string, error) {
	key := cCtx.Args().Get(0)
	return key, checkKeyValue(cCtx, key, nil)
}

// deletedJSON is the --json output of del.
type deletedJSON struct {
	Index   uint64 `json:"index"`
	Deleted bool   `json:"deleted"` // false: the key was absent; nothing changed
	storeJSON
}

func printDeleted(cCtx *cli.Context, t target, idx uint64, deleted bool) error {
	p := newPrinter(cCtx)
	switch {
	case p.json:
		return p.JSON(deletedJSON{Index: idx, Deleted: deleted, storeJSON: t.json()})
	case p.quiet:
		_, err := fmt.Fprintln(p.w, idx)
		return writeErr(err)
	}
	noteTarget(cCtx, t)
	if !deleted {
		p.Notef("absent, nothing changed (applied index %d)", idx)
		return nil
	}
	p.Notef("deleted at index %d", idx)
	return nil
}

// checkKeyValue refuses, before anything is opened (so a bad key never
// creates a data directory), a key or value that can never be stored.
func checkKeyValue(cCtx *cli.Context, key string, val []byte) error {
	switch {
	case key == "":
		return usageErrorf(cCtx, "the key is empty")
	case len(key) > format.MaxKeySize:
		return usageErrorf(cCtx, "the key is %d bytes, over the limit of %d bytes", len(key), format.MaxKeySize)
	case len(val) > format.MaxValueSize:
		return usageErrorf(cCtx, "the value is %d bytes, over the limit of %d bytes", len(val), format.MaxValueSize)
	}
	return nil
}

// commitOne runs do on a writable target (created with init) and prints
// the index.
func commitOne(c *call, init bool, do func(kvTarget) (uint64, error)) error {
	kv, err := openKV(c, openMode{write: true, create: init})
	if err != nil {
		return err
	}
	idx, err := do(kv)
	if err := closeKV(kv, err); err != nil {
		return kvError(c.Context, err)
	}
	return printIndex(c.Context, c.t, idx)
}

// indexJSON is the --json output of a write.
type indexJSON struct {
	Index uint64 `json:"index"`
	storeJSON
}

func printIndex(cCtx *cli.Context, t target, idx uint64) error {
	p := newPrinter(cCtx)
	switch {
	case p.json:
		return p.JSON(indexJSON{Index: idx, storeJSON: t.json()})
	case p.quiet: // the result alone
		_, err := fmt.Fprintln(p.w, idx)
		return writeErr(err)
	}
	noteTarget(cCtx, t)
	p.Notef("committed at index %d", idx)
	return nil
}

func getCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "print the value of a key",
		ArgsUsage: "KEY",
		Description: `Prints the value of KEY exactly as stored (no newline is added unless
standard output is a terminal). If KEY is absent it prints "key not found"
on standard error and exits 5, so that a script can tell a missing key from
a failure to ask (exit 1: no server, no data directory, ...). With --json
prints {"key", "value", "applied_index"}, with "key_base64" and
"value_base64" instead of "key" and "value" for bytes that are not UTF-8
text.

Never creates the data directory.

` + kvTargetHelp + `

Examples:
  kvtool get greeting
  kvtool get --addr 127.0.0.1:7070 --json acct:1`,
		Flags: []cli.Flag{addrFlag(), linearizableFlag()},
		Action: action(e, spec{min: 1, max: 1, scope: serverOrAnyDir}, keyArg, func(c *call, key string) error {
			kv, err := openKV(c, openMode{})
			if err != nil {
				return err
			}
			setReadOptions(c.Context, kv)
			val, idx, err := kv.get(c.Context.Context, key)
			if errors.Is(err, errKeyNotFound) {
				err = notFound(fmt.Errorf("key %q not found (applied index %d)", key, idx))
			}
			if err := closeKV(kv, err); err != nil {
				return kvError(c.Context, err)
			}
			return printValue(c.Context, key, val, idx)
		}),
	}
}

// valueJSON is the --json output of get.
type valueJSON struct {
	Key          string  `json:"key,omitempty"`
	KeyBase64    string  `json:"key_base64,omitempty"`
	Value        *string `json:"value,omitempty"`
	ValueBase64  *string `json:"value_base64,omitempty"`
	AppliedIndex uint64  `json:"applied_index"`
}

func printValue(cCtx *cli.Context, key string, val []byte, idx uint64) error {
	p := newPrinter(cCtx)
	if p.json {
		out := valueJSON{Key: key, AppliedIndex: idx}
		if !utf8.ValidString(key) {
			out.Key, out.KeyBase64 = "", base64.StdEncoding.EncodeToString([]byte(key))
		}
		s := string(val)
		if utf8.Valid(val) {
			out.Value = &s
		} else {
			s = base64.StdEncoding.EncodeToString(val)
			out.ValueBase64 = &s
		}
		return p.JSON(out)
	}
	if isTerminal(p.w) && !bytes.HasSuffix(val, []byte("\n")) {
		val = append(val, '\n')
	}
	_, err := p.w.Write(val)
	return writeErr(err)
}

func scanCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "scan",
		Usage: "list keys and values in key order",
		Description: `Prints the keys and values in a range, in key order: all of them, or those
with --prefix, from --start (inclusive) to --end (exclusive), at most
--limit (0: no limit). Rows are printed as they are read, so the first
appear at once and memory does not grow with the range. With --json prints
JSON lines, one {"key", "value"} per pair, with "key_base64" and
"value_base64" for bytes that are not UTF-8 text.

The scan reads one consistent snapshot, of --data or of the server (--addr;
an older server that cannot stream sends pages of 1000 pairs, each from one
snapshot of its own).

Never creates the data directory.

` + kvTargetHelp + `

Examples:
  kvtool scan --prefix acct:
  kvtool scan --start a --end b --limit 10 --json | jq -r .key`,
		Flags: []cli.Flag{
			addrFlag(),
			&cli.StringFlag{Name: "prefix", Usage: "only keys starting with `P`"},
			&cli.StringFlag{Name: "start", Usage: "only keys >= `KEY`"},
			&cli.StringFlag{Name: "end", Usage: "only keys < `KEY`"},
			&cli.IntFlag{Name: "limit", Usage: "print at most `N` pairs (0: no limit)"},
		},
		Action: action(e, spec{scope: serverOrAnyDir}, scanOptionsOf, scan),
	}
}

func scanOptionsOf(cCtx *cli.Context) (client.ScanOptions, error) {
	o := client.ScanOptions{Prefix: cCtx.String("prefix"), Start: cCtx.String("start"), End: cCtx.String("end"), Limit: cCtx.Int("limit")}
	switch {
	case o.Limit < 0:
		return o, usageErrorf(cCtx, "--limit must not be negative")
	case cCtx.IsSet("start") && cCtx.IsSet("end") && o.Start >= o.End:
		return o, usageErrorf(cCtx, "--start %q is not below --end %q: the range is empty (--start is inclusive, --end exclusive)", o.Start, o.End)
	}
	return o, nil
}

// scan prints the pairs of the range o as they are read.
func scan(c *call, o client.ScanOptions) error {
	kv, err := openKV(c, openMode{})
	if err != nil {
		return err
	}
	ctx := c.Context.Context
	pw := newPairWriter(c.Context)
	err = kv.scan(ctx, o, func(k string, v []byte) bool {
		if scanVisited != nil {
			scanVisited(k)
		}
		return pw.add(client.Pair{Key: k, Value: v}) && ctx.Err() == nil
	})
	if err == nil {
		err = ctx.Err()
	}
	if err := closeKV(kv, err); err != nil {
		pw.flush()
		return kvError(c.Context, err)
	}
	return pw.finish()
}

// scanVisited, when set (by tests), is called with each key a scan reads,
// before it is printed.
var scanVisited func(key string)

// maxShown is how much of a key or value a scan table shows.
const maxShown = 80

// widthRows is how many rows a scan table holds back to size its key
// column; later rows stream in that layout (a longer key pushes its value
// right).
const widthRows = 1000

// pairWriter prints the pairs of a scan as they come: JSON lines, or an
// aligned table whose key column is sized by the first widthRows rows.
type pairWriter struct {
	p     *printer
	bw    *bufio.Writer
	held  [][2]string // rows before the layout is fixed
	width int         // of the key column; 0 until fixed
	n     int
	cut   bool
	err   error // sticky write error
}

func newPairWriter(cCtx *cli.Context) *pairWriter {
	p := newPrinter(cCtx)
	bw := bufio.NewWriter(p.w)
	return &pairWriter{p: &printer{w: bw, json: p.json, quiet: p.quiet}, bw: bw}
}

// add prints (or holds) one pair; false means stop (the output failed).
func (w *pairWriter) add(pr client.Pair) bool {
	if w.err != nil {
		return false
	}
	w.n++
	if w.p.json {
		w.err = w.p.JSONLine(pr)
		return w.err == nil
	}
	k, kc := shown([]byte(pr.Key))
	v, vc := shown(pr.Value)
	w.cut = w.cut || kc || vc
	if w.width == 0 {
		w.held = append(w.held, [2]string{k, v})
		if len(w.held) == widthRows {
			w.release()
		}
		return w.err == nil
	}
	w.row(k, v)
	return w.err == nil
}

// release fixes the layout from the held rows and prints them.
func (w *pairWriter) release() {
	w.width = len("KEY")
	for _, r := range w.held {
		w.width = max(w.width, utf8.RuneCountInString(r[0]))
	}
	w.row("KEY", "VALUE")
	for _, r := range w.held {
		w.row(r[0], r[1])
	}
	w.held = nil
}

func (w *pairWriter) row(k, v string) {
	if w.err != nil {
		return
	}
	pad := w.width - utf8.RuneCountInString(k)
	_, err := fmt.Fprintf(w.bw, "%s%s  %s\n", k, strings.Repeat(" ", max(pad, 0)), v)
	w.err = writeErr(err)
}

// flush writes what is buffered (after a failure, so the rows printed so
// far are not lost).
func (w *pairWriter) flush() {
	if !w.p.json && w.width == 0 && len(w.held) > 0 {
		w.release()
	}
	w.bw.Flush()
}

// finish prints the rest and the summary.
func (w *pairWriter) finish() error {
	if !w.p.json && w.width == 0 {
		w.release()
	}
	if w.err == nil {
		w.err = writeErr(w.bw.Flush())
	}
	if w.err != nil {
		return w.err
	}
	if w.cut {
		w.p.w = w.bw
		w.p.Notef("(long or binary keys and values are shortened or quoted; use --json for the exact bytes)")
	}
	w.p.Notef("%s", plural(w.n, "pair"))
	return writeErr(w.bw.Flush())
}

// shown is b as a table shows it: as is when it is printable text, quoted
// otherwise, and shortened to maxShown; the bool says it was changed.
func shown(b []byte) (string, bool) {
	s, changed := string(b), false
	if !printable(b) {
		s, changed = strconv.Quote(s), true
	}
	if len(s) > maxShown {
		s, changed = s[:maxShown]+"...", true
	}
	return s, changed
}

func printable(b []byte) bool {
	return utf8.Valid(b) && bytes.IndexFunc(b, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}

func txnCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "txn",
		Usage:     "commit a transaction from a JSON file",
		ArgsUsage: "[FILE | -]",
		Description: `Commits the transaction in FILE (or standard input, with - or no argument)
atomically, and prints its log index once it is durable. The format:

  {"ops": [
    {"op": "add",   "key": "acct:1", "delta": -10},
    {"op": "add",   "key": "acct:2", "delta": 10},
    {"op": "check", "key": "acct:1", "min": 0},
    {"op": "put",   "key": "note", "value": "moved 10"},
    {"op": "del",   "key": "tmp"},
    {"op": "check", "key": "note", "exists": true},
    {"op": "check", "key": "cfg",  "equals": "v2"}
  ]}

Operations apply in order; a check sees the operations before it. "add"
treats a missing key as 0; "value_base64" may replace "value". If a check
fails, nothing changes and txn exits 4 naming the operation (counted from 0)
and the reason. A malformed transaction exits 2. Reading standard input
from a terminal, it says so; end the input with Ctrl-D.

` + initHelp + `

` + limitsHelp + `

` + kvTargetHelp + `

Examples:
  kvtool txn transfer.json
  echo '{"ops":[{"op":"add","key":"hits","delta":1}]}' | kvtool txn --json`,
		Flags:  []cli.Flag{addrFlag(), initFlag()},
		Action: action(e, spec{max: 1, scope: serverOrAnyDir}, readTxnInput, runTxn),
	}
}

// readTxnInput reads the transaction file (or standard input), bounded as
// the server bounds a transaction body.
func readTxnInput(cCtx *cli.Context) ([]byte, error) {
	name := cCtx.Args().First()
	var r io.Reader = cCtx.App.Reader
	if name == "" || name == "-" {
		promptStdin(cCtx, "reading a transaction from standard input (Ctrl-D to end)")
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, failed(fmt.Errorf("read transaction: %w", err), "")
		}
		defer f.Close()
		r = f
	}
	body, err := io.ReadAll(io.LimitReader(r, server.MaxTxnBody+1))
	switch {
	case err != nil:
		return nil, failed(fmt.Errorf("read transaction: %w", err), "")
	case len(body) > server.MaxTxnBody:
		return nil, usageErrorf(cCtx, "the transaction is over the limit of %d bytes", server.MaxTxnBody)
	case len(bytes.TrimSpace(body)) == 0:
		return nil, usageErrorf(cCtx, "the transaction input is empty; want {\"ops\": [...]}")
	}
	return body, nil
}

func runTxn(c *call, body []byte) error {
	var txn *store.Txn
	if !c.t.remote() {
		// Parse before opening, so a malformed file never creates a
		// data directory. A server parses it itself.
		t, err := server.ParseTxn(bytes.NewReader(body))
		if err != nil {
			return invalidInput(c.Context, err)
		}
		txn = t
	}
	return commitOne(c, c.Bool("init"), func(kv kvTarget) (uint64, error) { return kv.txn(c.Context.Context, body, txn) })
}

// kvTarget is what the key commands run against: a server or a store this
// process opened.
type kvTarget interface {
	get(ctx context.Context, key string) ([]byte, uint64, error)
	put(ctx context.Context, key string, val []byte) (uint64, error)
	del(ctx context.Context, key string) (uint64, error)
	scan(ctx context.Context, o client.ScanOptions, fn func(k string, v []byte) bool) error
	// txn commits the transaction: body is its JSON, parsed the parsed
	// form (nil when the target parses body itself).
	txn(ctx context.Context, body []byte, parsed *store.Txn) (uint64, error)
	close() error
}

// errKeyNotFound is returned by kvTarget.get for an absent key.
var errKeyNotFound = errors.New("key not found")

// openMode says how openKV opens a data directory.
type openMode struct {
	write  bool // for writing (else read-only)
	create bool // create a store in a missing or empty directory
}

// openKV returns the server t names, or opens its data directory.
func openKV(c *call, m openMode) (kvTarget, error) {
	t := c.t
	if t.remote() {
		return &remoteKV{c: client.New(t.addr)}, nil
	}
	fsys := c.fs
	if m.create {
		if err := checkCreate(fsys, t.from); err != nil {
			return nil, err
		}
	} else if _, err := existingDataDir(c.Context, fsys); err != nil {
		return nil, err
	}
	if !m.write {
		fsys = readOnlyFS(c.Context, c.e)
	}
	st, err := store.Open(store.Options{FS: fsys, Dir: t.data, Create: m.create, ReadOnly: !m.write})
	if err != nil {
		return nil, openError(err, t.data)
	}
	return &localKV{st: st}, nil
}

// openError gives a failure to open a data directory its exit code and hint.
func openError(err error, data string) error {
	if errors.Is(err, vfs.ErrLocked) {
		return failed(err, "another process holds the data directory (is `kvtool serve` running on it?); "+
			"send the command to it with --addr HOST:PORT, or stop it first")
	}
	// Damage in a checkpoint, a delta or the manifest is not the WAL's: point
	// at the command that checks every file, not at wal repair.
	if ce := format.AsCorruption(err); ce != nil && !isWALPath(ce.Path) {
		return damaged(err, fmt.Sprintf("run %s to list every fault in the directory; copy the directory before changing anything",
			cmdline(data, "verify")))
	}
	return walError(err, data)
}

// isWALPath reports whether path is a file of the WAL directory.
func isWALPath(path string) bool {
	return filepath.Base(filepath.Dir(path)) == format.WALDir
}

// closeKV closes kv and returns err, or the close error if err is nil.
func closeKV(kv kvTarget, err error) error {
	if cerr := kv.close(); err == nil && cerr != nil {
		return failed(fmt.Errorf("close the data directory: %w", cerr), "")
	}
	return err
}

// kvError gives an error of a key command its exit code: 4 for a failed
// check, 2 for input that can never commit, 1 otherwise.
func kvError(cCtx *cli.Context, err error) error {
	var ee *exitError
	var ce *client.Error
	switch {
	case errors.As(err, &ee):
		return err
	case errors.Is(err, store.ErrCheckFailed), errors.Is(err, client.ErrCheckFailed):
		return aborted(err)
	case errors.Is(err, store.ErrInvalid):
		return invalidInput(cCtx, err)
	case errors.As(err, &ce) && (ce.Status == http.StatusBadRequest || ce.Status == http.StatusRequestEntityTooLarge):
		// The request itself is wrong; other 4xx (a read replica's 403, a
		// 404) are about the server, not the command line.
		return invalidInput(cCtx, errors.New(ce.Message))
	case errors.Is(err, client.ErrNoServer), errors.Is(err, client.ErrNotKvtool):
		return serverError(err)
	}
	return failed(err, "")
}

// invalidInput is a usage error for a key, value or transaction that can
// never commit; the store's package prefix is left out of the message.
func invalidInput(cCtx *cli.Context, err error) error {
	msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "kvtool/store: "), "kvtool/api: ")
	return usageErrorf(cCtx, "%s", msg)
}

// remoteKV runs the key commands on a server.
type remoteKV struct {
	c    *client.Client
	read client.ReadOptions // get's
}

func (r *remoteKV) get(ctx context.Context, key string) ([]byte, uint64, error) {
	v, idx, err := r.c.GetWith(ctx, key, r.read)
	if errors.Is(err, client.ErrNotFound) {
		return nil, idx, errKeyNotFound
	}
	return v, idx, err
}

func (r *remoteKV) put(ctx context.Context, key string, val []byte) (uint64, error) {
	return r.c.Put(ctx, key, val)
}

func (r *remoteKV) del(ctx context.Context, key string) (uint64, error) { return r.c.Delete(ctx, key) }

func (r *remoteKV) scan(ctx context.Context, o client.ScanOptions, fn func(string, []byte) bool) error {
	return r.c.Scan(ctx, o, func(p client.Pair) bool { return fn(p.Key, p.Value) })
}

func (r *remoteKV) txn(ctx context.Context, body []byte, _ *store.Txn) (uint64, error) {
	return r.c.TxnJSON(ctx, bytes.NewReader(body))
}

func (r *remoteKV) close() error { r.c.Close(); return nil }

// localKV runs the key commands on a store this process opened.
type localKV struct{ st *store.Store }

func (l *localKV) get(_ context.Context, key string) ([]byte, uint64, error) {
	snap := l.st.Snapshot()
	v, ok := snap.Get(key)
	if !ok {
		return nil, snap.Index(), errKeyNotFound
	}
	return v, snap.Index(), nil
}

func (l *localKV) put(ctx context.Context, key string, val []byte) (uint64, error) {
	return l.st.Put(ctx, key, val)
}

func (l *localKV) del(ctx context.Context, key string) (uint64, error) { return l.st.Delete(ctx, key) }

func (l *localKV) scan(ctx context.Context, o client.ScanOptions, fn func(string, []byte) bool) error {
	l.st.Snapshot().Scan(store.ScanOptions{Prefix: o.Prefix, Start: o.Start, End: o.End, Limit: o.Limit},
		func(k string, v []byte) bool { return ctx.Err() == nil && fn(k, v) })
	return ctx.Err()
}

func (l *localKV) txn(ctx context.Context, _ []byte, t *store.Txn) (uint64, error) {
	return l.st.Commit(ctx, t)
}

func (l *localKV) close() error { return l.st.Close() }

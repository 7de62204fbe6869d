package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// walCommand is `kvtool wal`: tools for the write-ahead log in DATA/wal.
func walCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "wal",
		Usage: "list, dump, verify, repair, rotate and compact the write-ahead log",
		Description: `The write-ahead log lives in DATA/wal as segment files named by the index of
their first record (0000000000000001.wal, ...). Every record carries its log
index, term, type and an xxhash64 checksum; indexes are contiguous across
segments.

list, dump and verify only read: they never create, lock or change a file,
so they are safe on a directory a server is using (they may then see a
record being written as a torn tail). repair and rotate take DATA/LOCK and
refuse to run while another process, such as a running server, holds it;
compact does too, or asks the server with --addr.

Examples:
  kvtool wal list
  kvtool wal dump --from 1000 --to 1010
  kvtool wal verify || kvtool wal repair --dry-run`,
		Subcommands: []*cli.Command{
			walListCommand(e),
			walDumpCommand(e),
			walVerifyCommand(e),
			walRepairCommand(e),
			walRotateCommand(e),
			walCompactCommand(e),
		},
	}
}

// walDirOf returns DATA/wal after checking that both exist. It never creates
// anything, so read-only commands can call it safely.
func walDirOf(fsys vfs.FS, data string) (string, error) {
	fi, err := fsys.Stat(data)
	switch {
	case vfs.IsNotExist(err):
		return "", failed(fmt.Errorf("no data directory at %s (use --data or KVTOOL_DATA)", data), "")
	case err != nil:
		return "", failed(err, "")
	case !fi.IsDir():
		return "", failed(fmt.Errorf("%s is not a directory (use --data or KVTOOL_DATA to name the data directory)", data), "")
	}
	dir := filepath.Join(data, format.WALDir)
	if _, err := fsys.Stat(dir); vfs.IsNotExist(err) {
		return "", failed(fmt.Errorf("no write-ahead log at %s: %s does not look like a kvtool data directory", dir, data),
			"check --data (or KVTOOL_DATA); a data directory holds wal/, snap/, MANIFEST and LOCK")
	} else if err != nil {
		return "", failed(err, "")
	}
	return dir, nil
}

// lockData takes DATA/LOCK for a command that changes the directory.
func lockData(fsys vfs.FS, data string) (io.Closer, error) {
	l, err := fsys.Lock(filepath.Join(data, format.LockName))
	if err != nil {
		return nil, failed(err, "another process holds the data directory (a running `kvtool serve`?); "+
			"stop it first: this command must not run while a server holds the directory")
	}
	return l, nil
}

// walError gives an error from package segment its exit code and a hint.
func walError(err error, data string) error {
	var ee *exitError
	switch {
	case err == nil, errors.As(err, &ee):
		return err
	case errors.Is(err, segment.ErrTornTail):
		return damaged(err, repairHint(data))
	case errors.Is(err, segment.ErrStoreMismatch):
		return damaged(err, "a segment in "+filepath.Join(data, format.WALDir)+
			" belongs to another store; move it out of the directory, then run "+cmdline(data, "wal", "verify"))
	case errors.Is(err, format.ErrCorruption):
		return damaged(err, "run "+cmdline(data, "wal", "verify")+" to list every problem, then "+
			cmdline(data, "wal", "repair", "--dry-run")+" to see what a repair would cut")
	}
	return failed(err, "")
}

func repairHint(data string) string {
	return "run " + cmdline(data, "wal", "repair") + " to cut the torn tail; the cut bytes are kept in a quarantine file"
}

// cmdline formats a kvtool command line for a hint, with --data spelled out
// so that it can be pasted as is.
func cmdline(data string, args ...string) string {
	parts := append([]string{"kvtool", "--data", shellQuote(data)}, args...)
	return "`" + strings.Join(parts, " ") + "`"
}

// shellQuote quotes s for a POSIX shell if it needs quoting.
func shellQuote(s string) string {
	safe := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_./:@%+=,", r)))
	}) < 0
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// segmentJSON is one segment in JSON output.
type segmentJSON struct {
	Name       string `json:"name"`
	Path       string `json:"path"`
	FirstIndex uint64 `json:"first_index"`
	LastIndex  uint64 `json:"last_index"`
	Records    int64  `json:"records"`
	DataBytes  int64  `json:"data_bytes"`
	Term       uint64 `json:"term"`
}

func toSegmentJSON(s segment.SegmentInfo) segmentJSON {
	return segmentJSON{Name: s.Name, Path: s.Path, FirstIndex: s.FirstIndex, LastIndex: s.LastIndex,
		Records: s.Records, DataBytes: s.Size, Term: s.Term}
}

// lastIndexText shows a segment's last index, or "-" when it is empty.
func lastIndexText(s segment.SegmentInfo) string {
	if s.Records == 0 {
		return "-"
	}
	return strconv.FormatUint(s.LastIndex, 10)
}

// ---- wal list ----

func walListCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "describe every segment: indexes, records, bytes, term",
		Description: `Prints one row per segment, oldest first: file name, first and last log index,
number of records, bytes of data (header and records, not preallocated
space) and term. Reads only; changes nothing.

Examples:
  kvtool wal list
  kvtool --data /srv/kv wal list --json | jq '.segments[].last_index'`,
		Action: act(e, spec{scope: readDir}, func(c *call) error { return walList(c.Context, c.fs, c.data()) }),
	}
}

func walList(cCtx *cli.Context, fsys vfs.FS, data string) error {
	dir, err := walDirOf(fsys, data)
	if err != nil {
		return err
	}
	segs, err := segment.List(fsys, dir)
	if err != nil {
		return walError(err, data)
	}
	p := newPrinter(cCtx)
	if p.json {
		out := struct {
			WALDir   string        `json:"wal_dir"`
			Segments []segmentJSON `json:"segments"`
		}{WALDir: dir, Segments: make([]segmentJSON, 0, len(segs))}
		for _, s := range segs {
			out.Segments = append(out.Segments, toSegmentJSON(s))
		}
		return p.JSON(out)
	}
	if len(segs) == 0 {
		p.Notef("no segments in %s", dir)
		return nil
	}
	t := p.Table("SEGMENT", "FIRST", "LAST", "RECORDS", "BYTES", "TERM")
	var records, bytes int64
	for _, s := range segs {
		t.Row(s.Name, s.FirstIndex, lastIndexText(s), s.Records, s.Size, s.Term)
		records += s.Records
		bytes += s.Size
	}
	if err := t.Flush(); err != nil {
		return err
	}
	p.Notef("%s, %s, %d bytes in %s", plural(len(segs), "segment"), plural(int(records), "record"), bytes, dir)
	return nil
}

// ---- wal dump ----

// walDumpOptions are the flags of `wal dump`.
type walDumpOptions struct {
	from uint64 // first index to print
	to   uint64 // last index to print; 0 means the end of the log
	// fromSet and toSet say the range was asked for (not the defaults).
	fromSet, toSet bool
}

func walDumpCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "dump",
		Usage: "print log entries decoded: index, term, segment, offset and each put or del",
		Description: `Prints the log entries from --from to --to (both included), decoded, as
pg_waldump does: one line per operation, with the entry's log index, term,
segment file and the byte offset of its frame there, then the operation:
"put KEY VALUE" or "del KEY". A transaction of several operations prints
one line per operation, all with its index. The log records effects, not
requests: an "add" is logged as the put of the value it produced, and a
check changes nothing, so it is not logged. Other entries print their type
(noop, conf) and length.

Keys are printed as they are when they are printable text, quoted
otherwise; values are quoted text or hex, shortened. --json prints JSON
lines, one object per entry: {"index", "term", "segment", "offset",
"type", "length", "ops": [{"op", "key", "value"}]}, with "key_base64" and
"value_base64" instead of "key" and "value" for bytes that are not UTF-8,
so every byte survives.

A range outside the retained log (older entries are dropped by compaction
once a checkpoint holds them) exits 1 and says which indexes the log holds.
If the dump meets damage it stops there, after printing every entry before
it, names the file and byte offset on standard error, and exits 3.
Reads only; changes nothing.

Examples:
  kvtool wal dump --from 1000 --to 1010
  kvtool wal dump --json | jq -c '.ops[]? | select(.op == "del")'`,
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "from", Usage: "first log `INDEX` to print", DefaultText: "the first in the log"},
			&cli.Uint64Flag{Name: "to", Usage: "last log `INDEX` to print", DefaultText: "the last in the log"},
		},
		Action: action(e, spec{scope: readDir}, walDumpOptionsOf, func(c *call, o walDumpOptions) error {
			return walDump(c.Context, c.fs, c.data(), o)
		}),
	}
}

func walDumpOptionsOf(cCtx *cli.Context) (walDumpOptions, error) {
	o := walDumpOptions{from: cCtx.Uint64("from"), to: cCtx.Uint64("to"), fromSet: cCtx.IsSet("from"), toSet: cCtx.IsSet("to")}
	switch {
	case o.toSet && o.to < o.from:
		return o, usageErrorf(cCtx, "--to %d is below --from %d", o.to, o.from)
	case o.toSet && o.to == 0:
		return o, usageErrorf(cCtx, "--to 0: log indexes start at 1")
	}
	return o, nil
}

// entryJSON is one entry in `wal dump --json`.
type entryJSON struct {
	Index   uint64 `json:"index"`
	Term    uint64 `json:"term"`
	Segment string `json:"segment"`
	Offset  int64  `json:"offset"`
	Type    string `json:"type"`
	Length  int    `json:"length"`
	// Ops are the operations of a txn entry, in the order logged.
	Ops []opJSON `json:"ops,omitempty"`
	// DataBase64 is the data of an entry that is not a transaction, or of
	// one that cannot be decoded (then Error says why).
	DataBase64 []byte `json:"data_base64,omitempty"`
	Error      string `json:"error,omitempty"`
}

// opJSON is one logged operation: "key" or "key_base64", and for a put
// "value" or "value_base64".
type opJSON struct {
	Op          string  `json:"op"`
	Key         *string `json:"key,omitempty"`
	KeyBase64   []byte  `json:"key_base64,omitempty"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 []byte  `json:"value_base64,omitempty"`
}

// walOp is one decoded operation of a txn entry.
type walOp struct {
	kind       uint8
	key, value []byte
}

// decodedEntry is a WAL entry with where it is and what it holds.
type decodedEntry struct {
	segment.Entry
	path    string // of the segment file
	segment string // its name
	offset  int64  // of the entry's frame in the segment
	ops     []walOp
	bad     error // why a txn entry could not be decoded
}

func walDump(cCtx *cli.Context, fsys vfs.FS, data string, opts walDumpOptions) error {
	dir, err := walDirOf(fsys, data)
	if err != nil {
		return err
	}
	r, err := segment.NewReader(fsys, dir, opts.from)
	if err != nil {
		return walError(err, data)
	}
	defer r.Close()

	p := newPrinter(cCtx)
	bw := bufio.NewWriter(p.w)
	p.w = bw
	st, err := dumpEntries(cCtx, p, r, opts)
	if ferr := writeErr(bw.Flush()); err == nil {
		err = ferr
	}
	if err != nil {
		return dumpError(err, st, data)
	}
	if st.n == 0 && (opts.fromSet || opts.toSet) {
		return notRetained(fsys, dir, opts)
	}
	if st.n == 0 {
		p.w = cCtx.App.Writer
		p.Notef("no entries in %s", dir)
	}
	if st.first > opts.from && opts.fromSet && !p.quiet {
		fmt.Fprintf(cCtx.App.ErrWriter, "kvtool: note: the log starts at index %d: older entries were compacted into a checkpoint\n", st.first)
	}
	if st.bad != nil {
		return damaged(fmt.Errorf("wal dump: %s could not be decoded; the first: %w", plural(st.nbad, "entry"), st.bad),
			"run "+cmdline(data, "verify")+" to check every file; copy the data directory before changing anything")
	}
	return nil
}

// dumpError says how far a dump that failed got.
func dumpError(err error, st dumpStats, data string) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	what := "no entries were printed"
	if st.n > 0 {
		what = fmt.Sprintf("entries up to index %d were printed", st.last)
	}
	return walError(fmt.Errorf("%w (%s)", err, what), data)
}

// notRetained is the error for a --from/--to range the log does not hold.
func notRetained(fsys vfs.FS, dir string, opts walDumpOptions) error {
	asked := fmt.Sprintf("index %d on", opts.from)
	if opts.toSet {
		asked = fmt.Sprintf("indexes %d to %d", opts.from, opts.to)
	}
	segs, err := segment.List(fsys, dir)
	if err != nil {
		return failed(fmt.Errorf("wal dump: no entries at %s in %s", asked, dir), "")
	}
	var records int64
	first, last := uint64(0), uint64(0)
	for _, s := range segs {
		if s.Records == 0 {
			continue
		}
		if first == 0 {
			first = s.FirstIndex
		}
		records, last = records+s.Records, s.LastIndex
	}
	if records == 0 {
		return failed(fmt.Errorf("wal dump: asked for %s, but the log in %s holds no entries", asked, dir),
			"entries compacted into a checkpoint are no longer in the log; kvtool replay --to-index N rebuilds the state at any index the files cover")
	}
	return failed(fmt.Errorf("wal dump: asked for %s, but the log in %s holds indexes %d to %d", asked, dir, first, last),
		fmt.Sprintf("choose --from and --to between %d and %d; older entries were compacted into a checkpoint", first, last))
}

// dumpStats is what dumpEntries printed.
type dumpStats struct {
	n           int64  // entries printed
	first, last uint64 // indexes of the first and last printed
	nbad        int    // txn entries that could not be decoded
	bad         error  // the first of them
}

// dumpEntries prints entries until the end of the log or opts.to.
func dumpEntries(cCtx *cli.Context, p *printer, r *segment.Reader, opts walDumpOptions) (st dumpStats, err error) {
	for {
		if err := cCtx.Context.Err(); err != nil {
			return st, err
		}
		e, err := r.Next()
		if err == io.EOF || (err == nil && opts.to != 0 && e.Index > opts.to) {
			return st, nil
		}
		if err != nil {
			return st, err
		}
		if e.Index < opts.from {
			continue
		}
		d := decodeEntry(r, e)
		if d.bad != nil {
			if st.nbad++; st.bad == nil {
				st.bad = fmt.Errorf("%s: entry %d at offset %d: %w", d.path, d.Index, d.offset, d.bad)
			}
		}
		if st.n == 0 && !p.json {
			fmt.Fprintf(p.w, dumpFormat, "INDEX", "TERM", "SEGMENT", "OFFSET", "OP", "KEY", "VALUE")
		}
		if err := printEntry(p, d); err != nil {
			return st, err
		}
		if st.n == 0 {
			st.first = e.Index
		}
		st.n, st.last = st.n+1, e.Index
	}
}

// decodeEntry decodes the operations of a txn entry. The slices of the
// result alias e.Data: valid until the next call to r.Next.
func decodeEntry(r *segment.Reader, e segment.Entry) decodedEntry {
	path, off := r.Position()
	d := decodedEntry{Entry: e, path: path, segment: filepath.Base(path), offset: off}
	if e.Type != format.FrameWALTxn {
		return d
	}
	err := format.DecodeTxnRecord(e.Data, func(kind uint8, key, value []byte) {
		d.ops = append(d.ops, walOp{kind: kind, key: key, value: value})
	})
	if err != nil {
		d.ops, d.bad = nil, err
	}
	return d
}

func opName(kind uint8) string {
	if kind == format.TxnDelete {
		return "del"
	}
	return "put"
}

func printEntry(p *printer, d decodedEntry) error {
	if p.json {
		return p.JSONLine(toEntryJSON(d))
	}
	idx, term, off := strconv.FormatUint(d.Index, 10), strconv.FormatUint(d.Term, 10), strconv.FormatInt(d.offset, 10)
	line := func(op, key, value string) error {
		_, err := fmt.Fprint(p.w, strings.TrimRight(fmt.Sprintf(dumpFormat, idx, term, d.segment, off, op, key, value), " \n")+"\n")
		return writeErr(err)
	}
	switch {
	case d.bad != nil:
		return line("bad", "", "cannot decode the transaction: "+d.bad.Error())
	case d.Type != format.FrameWALTxn:
		return line(entryType(d.Type), "", fmt.Sprintf("(%s)", plural(len(d.Data), "byte")))
	case len(d.ops) == 0:
		return line("txn", "", "(no operations)")
	}
	for _, op := range d.ops {
		value := ""
		if op.kind == format.TxnPut {
			value = preview(op.value)
		}
		if err := line(opName(op.kind), keyText(op.key), value); err != nil {
			return err
		}
	}
	return nil
}

func toEntryJSON(d decodedEntry) entryJSON {
	out := entryJSON{Index: d.Index, Term: d.Term, Segment: d.segment, Offset: d.offset, Type: entryType(d.Type), Length: len(d.Data)}
	switch {
	case d.bad != nil:
		out.DataBase64, out.Error = d.Data, d.bad.Error()
	case d.Type != format.FrameWALTxn:
		out.DataBase64 = d.Data
	}
	for _, op := range d.ops {
		o := opJSON{Op: opName(op.kind)}
		o.Key, o.KeyBase64 = textOrBase64(op.key)
		if op.kind == format.TxnPut {
			o.Value, o.ValueBase64 = textOrBase64(op.value)
		}
		out.Ops = append(out.Ops, o)
	}
	return out
}

// textOrBase64 returns b as text when it is UTF-8, else as bytes for a
// _base64 JSON field (encoding/json writes []byte as base64). The bytes
// are copied: b may be reused.
func textOrBase64(b []byte) (*string, []byte) {
	if utf8.Valid(b) {
		s := string(b)
		return &s, nil
	}
	return nil, bytes.Clone(b)
}

// keyText shows a key: as is when it is printable text without spaces,
// quoted otherwise.
func keyText(k []byte) string {
	if printable(k) && len(k) > 0 && !bytes.ContainsAny(k, " \"") {
		return string(k)
	}
	return strconv.Quote(string(k))
}

// dumpFormat lays out a line of `wal dump`. The widths are fixed rather than
// computed (as a table's are) so that a dump of any length streams.
const dumpFormat = "%-10s  %-5s  %-20s  %8s  %-4s  %-16s  %s\n"

// entryType names a WAL entry type.
func entryType(t format.FrameType) string {
	switch t {
	case format.FrameWALTxn:
		return "txn"
	case format.FrameWALNoop:
		return "noop"
	case format.FrameWALConf:
		return "conf"
	}
	return fmt.Sprintf("type%d", t)
}

// preview shows the start of data: quoted if it is text, else hex.
func preview(data []byte) string {
	const maxText, maxHex = 48, 20
	if len(data) == 0 {
		return `""`
	}
	text, more := data, false
	if len(text) > maxText {
		text, more = text[:maxText], true
		for i := 0; i < utf8.UTFMax-1 && !utf8.Valid(text); i++ {
			text = text[:len(text)-1] // do not split the last rune
		}
	}
	if isText(text) {
		return strconv.Quote(string(text)) + ellipsis(more)
	}
	bin := data[:min(len(data), maxHex)]
	return "0x" + hex.EncodeToString(bin) + ellipsis(len(data) > maxHex)
}

func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && r != '\n' && r != '\t' {
			return false
		}
	}
	return true
}

func ellipsis(more bool) string {
	if more {
		return "..."
	}
	return ""
}

// ---- wal verify ----

func walVerifyCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check every segment; exit 3 on corruption, a gap or a torn tail",
		Description: `Reads every segment and checks headers, checksums, the chain of segments and
the continuity of log indexes. Prints every problem it finds (file, byte
offset, kind, reason), then a count. Exits 0 when the log is clean and 3 when
it found any problem, a torn tail included.

A torn tail is a record cut short at the end of the newest segment, left by a
crash during a write; kvtool wal repair cuts it. Other kinds (corruption,
gap, chain-break, truncated, foreign, garbage, unknown-file) mean the files
were damaged or changed by something other than kvtool: a record whose bytes
are all there but whose checksum fails, a newest segment that was deleted
(the segment before it is sealed and names it: a gap) or truncated.

Reads only; changes nothing.

Examples:
  kvtool wal verify
  kvtool wal verify --json | jq '.problems[] | .path + ":" + (.offset|tostring)'
  kvtool wal verify --quiet || echo "WAL damaged"`,
		Flags:  []cli.Flag{progressFlag()},
		Action: act(e, spec{scope: readDir}, func(c *call) error { return walVerify(c.Context, c.fs, c.data()) }),
	}
}

// verifyJSON is the document `wal verify --json` prints.
type verifyJSON struct {
	WALDir     string        `json:"wal_dir"`
	OK         bool          `json:"ok"`
	Segments   int           `json:"segments"`
	Records    int64         `json:"records"`
	FirstIndex uint64        `json:"first_index"`
	LastIndex  uint64        `json:"last_index"`
	Problems   []problemJSON `json:"problems"`
}

type problemJSON struct {
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
}

func toProblemJSON(pb segment.Problem) problemJSON {
	return problemJSON{Path: pb.Path, Offset: pb.Offset, Kind: pb.Kind.String(), Reason: pb.Reason}
}

func walVerify(cCtx *cli.Context, fsys vfs.FS, data string) error {
	dir, err := walDirOf(fsys, data)
	if err != nil {
		return err
	}
	pr := startProgress(cCtx, "verify", 0)
	rep, err := segment.Verify(fsys, dir, segment.VerifyOptions{Progress: pr.Update})
	pr.Done()
	if err != nil {
		return walError(err, data)
	}
	if err := printVerifyReport(newPrinter(cCtx), dir, rep); err != nil {
		return err
	}
	if len(rep.Problems) == 0 {
		return nil
	}
	return damaged(fmt.Errorf("wal verify: %s in %s", problemCount(rep.Problems), dir), verifyHint(data, rep.Problems))
}

func printVerifyReport(p *printer, dir string, rep *segment.Report) error {
	if p.json {
		out := verifyJSON{WALDir: dir, OK: len(rep.Problems) == 0, Segments: len(rep.Segments), Records: rep.Records,
			FirstIndex: rep.FirstIndex, LastIndex: rep.LastIndex, Problems: make([]problemJSON, 0, len(rep.Problems))}
		for _, pb := range rep.Problems {
			out.Problems = append(out.Problems, toProblemJSON(pb))
		}
		return p.JSON(out)
	}
	if len(rep.Problems) > 0 {
		t := p.Table("FILE", "OFFSET", "KIND", "REASON")
		for _, pb := range rep.Problems {
			t.Row(pb.Path, pb.Offset, pb.Kind, pb.Reason)
		}
		if err := t.Flush(); err != nil {
			return err
		}
	}
	status := "ok"
	if len(rep.Problems) > 0 {
		status = problemCount(rep.Problems)
	}
	p.Notef("%s: %s, %s, %s", status, plural(len(rep.Segments), "segment"), plural(int(rep.Records), "record"),
		indexRange(rep.FirstIndex, rep.LastIndex, rep.Records))
	return nil
}

func indexRange(first, last uint64, records int64) string {
	if records == 0 {
		return "no entries"
	}
	return fmt.Sprintf("indexes %d to %d", first, last)
}

// problemCount says "3 problems (2 corruption, 1 torn-tail)".
func problemCount(problems []segment.Problem) string {
	var kinds []string
	count := map[string]int{}
	for _, pb := range problems {
		k := pb.Kind.String()
		if count[k] == 0 {
			kinds = append(kinds, k)
		}
		count[k]++
	}
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%d %s", count[k], k)
	}
	return fmt.Sprintf("%s (%s)", plural(len(problems), "problem"), strings.Join(parts, ", "))
}

// plural says "1 segment", "2 segments".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func verifyHint(data string, problems []segment.Problem) string {
	for _, pb := range problems {
		if pb.Kind != segment.TornTail {
			return "run " + cmdline(data, "wal", "repair", "--dry-run", "--force") +
				" to see what a forced repair would cut and quarantine; copy the data directory before repairing"
		}
	}
	return repairHint(data)
}

// ---- wal repair ----

// walRepairOptions are the flags of `wal repair`.
type walRepairOptions struct {
	dryRun bool
	force  bool
}

func walRepairCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "repair",
		Usage: "cut a torn tail (or, with --force, any damage) into quarantine files",
		Description: `Cuts the damaged end of the log so that it can be opened again, and prints
exactly what it cut: file, byte offset, number of bytes, the quarantine file
the bytes were moved to, and the log indexes lost.

Without --force it only cuts a torn tail: a record cut short at the end of
the newest segment by a crash, which was never acknowledged. Any other damage
makes it refuse (exit 3) and change nothing.

With --force it also cuts other damage: the oldest damaged segment is cut at
its first problem and every later segment is moved whole into a quarantine
file, so that the log stays contiguous. Every record from the damage on
leaves the log (the bytes stay in the quarantine files), so copy the data
directory first and look with --dry-run --force.

Nothing is ever deleted: cut bytes are kept in DATA/wal/*.quarantine.
repair takes DATA/LOCK (except with --dry-run): the data directory must not
be held by a running server.

Examples:
  kvtool wal repair --dry-run
  kvtool wal repair
  kvtool wal repair --dry-run --force && kvtool wal repair --force`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would be cut; change nothing", DisableDefaultText: true},
			&cli.BoolFlag{Name: "force", Usage: "also cut damage other than a torn tail (the records from the damage on leave the log)", DisableDefaultText: true},
		},
		Action: act(e, spec{scope: writeDir, dryRun: true}, func(c *call) error {
			return walRepair(c.Context, c.fs, c.data(), walRepairOptions{dryRun: c.Bool("dry-run"), force: c.Bool("force")})
		}),
	}
}

// repairJSON is the document `wal repair --json` prints. Refused is true
// when repair found damage it cuts only with --force (and changed nothing).
type repairJSON struct {
	WALDir    string        `json:"wal_dir"`
	DryRun    bool          `json:"dry_run"`
	Refused   bool          `json:"refused"`
	Problems  []problemJSON `json:"problems"`
	Cuts      []cutJSON     `json:"cuts"`
	LastIndex uint64        `json:"last_index"`
}

type cutJSON struct {
	Path           string `json:"path"`
	Offset         int64  `json:"offset"`
	Bytes          int64  `json:"bytes"`
	Kind           string `json:"kind"`
	Reason         string `json:"reason"`
	QuarantinePath string `json:"quarantine_path"`
	FirstLostIndex uint64 `json:"first_lost_index"`
	LastLostIndex  uint64 `json:"last_lost_index"`
	MissingFrom    uint64 `json:"missing_from,omitempty"` // entries from here on were gone before the repair
	WholeFile      bool   `json:"whole_file"`
}

func walRepair(cCtx *cli.Context, fsys vfs.FS, data string, opts walRepairOptions) error {
	dir, err := walDirOf(fsys, data)
	if err != nil {
		return err
	}
	if !opts.dryRun { // a dry run only reads, like verify
		lock, err := lockData(fsys, data)
		if err != nil {
			return err
		}
		defer lock.Close()
	}
	res, err := segment.Repair(fsys, dir, segment.RepairOptions{DryRun: opts.dryRun, Force: opts.force})
	if errors.Is(err, segment.ErrNeedsForce) && res != nil {
		return refuseRepair(newPrinter(cCtx), dir, data, res)
	}
	if err != nil {
		return walError(err, data)
	}
	if !opts.dryRun {
		noteTarget(cCtx, dataTarget(cCtx, data))
	}
	return printRepair(newPrinter(cCtx), dir, res)
}

// refuseRepair reports damage that repair will not cut without --force:
// the problems on stdout, and on stderr what --force would do.
func refuseRepair(p *printer, dir, data string, res *segment.RepairResult) error {
	if err := printRepairProblems(p, dir, res); err != nil {
		return err
	}
	return damaged(fmt.Errorf("wal repair: refused: %s has damage other than a torn tail, %s; nothing was changed", dir, problemCount(res.Problems)),
		"--force would cut the oldest damaged segment at its first problem and move every later segment whole into "+
			"a quarantine file (the log must stay contiguous), so the records from the damage on leave the log; "+
			"see exactly what it would cut with "+cmdline(data, "wal", "repair", "--dry-run", "--force")+
			", and copy the data directory first")
}

func printRepairProblems(p *printer, dir string, res *segment.RepairResult) error {
	if p.json {
		return p.JSON(toRepairJSON(dir, res, true))
	}
	t := p.Table("FILE", "OFFSET", "KIND", "REASON")
	for _, pb := range res.Problems {
		t.Row(pb.Path, pb.Offset, pb.Kind, pb.Reason)
	}
	return t.Flush()
}

func toRepairJSON(dir string, res *segment.RepairResult, refused bool) repairJSON {
	out := repairJSON{WALDir: dir, DryRun: res.DryRun, Refused: refused, LastIndex: res.LastIndex,
		Problems: make([]problemJSON, 0, len(res.Problems)), Cuts: make([]cutJSON, 0, len(res.Cuts))}
	for _, pb := range res.Problems {
		out.Problems = append(out.Problems, toProblemJSON(pb))
	}
	for _, c := range res.Cuts {
		out.Cuts = append(out.Cuts, cutJSON{Path: c.Path, Offset: c.Offset, Bytes: c.Bytes, Kind: c.Kind.String(),
			Reason: c.Reason, QuarantinePath: c.QuarantinePath, FirstLostIndex: c.FirstLostIndex,
			LastLostIndex: c.LastLostIndex, MissingFrom: c.MissingFrom, WholeFile: c.WholeFile})
	}
	return out
}

func printRepair(p *printer, dir string, res *segment.RepairResult) error {
	if p.json {
		return p.JSON(toRepairJSON(dir, res, false))
	}
	if len(res.Cuts) == 0 {
		p.Notef("nothing to repair in %s", dir)
		return nil
	}
	t := p.Table("FILE", "OFFSET", "BYTES", "KIND", "LOST INDEXES", "QUARANTINE", "REASON")
	for _, c := range res.Cuts {
		offset := strconv.FormatInt(c.Offset, 10)
		if c.WholeFile {
			offset = "whole file"
		}
		t.Row(c.Path, offset, c.Bytes, c.Kind, lostText(c), c.QuarantinePath, c.Reason)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if res.DryRun {
		p.Notef("dry run: would cut %s; nothing was changed; %s", plural(len(res.Cuts), "range"), lostSummary(res, "would leave"))
	} else {
		p.Notef("cut %s; the log now ends at index %d; %s", plural(len(res.Cuts), "range"), res.LastIndex, lostSummary(res, "left"))
	}
	return nil
}

// lostSummary says which indexes the cuts take out of the log, all of
// them (the cuts' ranges run on from one to the next), and from which
// index entries were already missing.
func lostSummary(res *segment.RepairResult, verb string) string {
	var first, last, missing uint64
	for _, c := range res.Cuts {
		if c.FirstLostIndex != 0 {
			first = cmp.Or(first, c.FirstLostIndex)
			last = c.LastLostIndex
		}
		missing = cmp.Or(missing, c.MissingFrom)
	}
	s := "no whole record " + verb + " the log"
	if first != 0 {
		s = fmt.Sprintf("%s %s the log (their bytes are kept in the quarantine files)", indexesText(first, last), verb)
	}
	if missing != 0 {
		s += fmt.Sprintf("; entries from index %d on were already missing, and no file says how many", missing)
	}
	return s
}

func indexesText(first, last uint64) string {
	if first == last {
		return "index " + strconv.FormatUint(first, 10)
	}
	return fmt.Sprintf("indexes %d to %d", first, last)
}

func lostText(c segment.Cut) string {
	s := "none (no whole record)"
	switch {
	case c.FirstLostIndex == 0:
	case c.LastLostIndex == c.FirstLostIndex:
		s = strconv.FormatUint(c.FirstLostIndex, 10)
	default:
		s = fmt.Sprintf("%d to %d", c.FirstLostIndex, c.LastLostIndex)
	}
	if c.MissingFrom != 0 {
		s += fmt.Sprintf("; %d and later already missing", c.MissingFrom)
	}
	return s
}

// ---- wal rotate ----

func walRotateCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "rotate",
		Usage: "seal the newest segment and start a new one",
		Description: `Opens the log, seals the newest segment and starts a new, empty one, then
prints it. Use it to close off a segment before copying or archiving it.

The new segment is preallocated to --segment-size bytes; by default, to the
segment size the data directory was created with (in its MANIFEST), or 64MiB
without a manifest.

rotate takes DATA/LOCK: the data directory must not be held by a running
server (against a server, rotation is an HTTP admin request). A log with a
torn tail must be repaired first (kvtool wal repair).

Examples:
  kvtool wal rotate
  kvtool wal rotate --segment-size 16MiB --json`,
		Flags: []cli.Flag{rotateSizeFlag()},
		Action: action(e, spec{scope: writeDir}, walRotateOptionsOf, func(c *call, o walRotateOptions) error {
			return walRotate(c.Context, c.fs, c.data(), o)
		}),
	}
}

func walRotateOptionsOf(cCtx *cli.Context) (walRotateOptions, error) {
	var o walRotateOptions
	if cCtx.IsSet("segment-size") {
		if o.segmentSize = sizeFlag(cCtx, "segment-size"); o.segmentSize <= 0 {
			return o, usageErrorf(cCtx, "--segment-size must be more than 0")
		}
	}
	return o, nil
}

// walRotateOptions are the flags of `wal rotate`.
type walRotateOptions struct {
	segmentSize int64 // 0: the directory's own (see rotateSegmentSize)
}

func rotateSizeFlag() *cli.GenericFlag {
	f := newSizeFlag("segment-size", "preallocate the new segment to `SIZE`", 0)
	f.DefaultText = "the data directory's segment size"
	return f
}

// rotateSegmentSize is the size a rotation without --segment-size
// preallocates the new segment to: the one the directory was created with
// (in its MANIFEST), else the default.
func rotateSegmentSize(fsys vfs.FS, data string) int64 {
	if m, err := manifest.Load(fsys, data); err == nil && m.SegmentSize > 0 {
		return m.SegmentSize
	}
	return segment.DefaultSegmentSize
}

func walRotate(cCtx *cli.Context, fsys vfs.FS, data string, opts walRotateOptions) error {
	dir, err := walDirOf(fsys, data)
	if err != nil {
		return err
	}
	lock, err := lockData(fsys, data)
	if err != nil {
		return err
	}
	defer lock.Close()
	if opts.segmentSize == 0 {
		opts.segmentSize = rotateSegmentSize(fsys, data)
	}
	seg, rotated, err := rotateLog(fsys, dir, opts.segmentSize)
	if err != nil {
		return walError(err, data)
	}
	noteTarget(cCtx, dataTarget(cCtx, data))
	p := newPrinter(cCtx)
	if p.json {
		return p.JSON(struct {
			WALDir  string      `json:"wal_dir"`
			Rotated bool        `json:"rotated"`
			Segment segmentJSON `json:"segment"`
		}{dir, rotated, toSegmentJSON(seg)})
	}
	if p.quiet {
		_, err := fmt.Fprintln(p.w, seg.Path)
		return writeErr(err)
	}
	if !rotated {
		p.Notef("nothing to rotate: the newest segment %s is empty; new records start at index %d", seg.Path, seg.FirstIndex)
		return nil
	}
	p.Notef("rotated: new segment %s starts at index %d", seg.Path, seg.FirstIndex)
	return nil
}

// rotateLog opens the log in dir, rotates it and closes it. It returns the
// newest segment afterwards and whether it is a new one (rotating a log
// whose newest segment is empty changes nothing).
func rotateLog(fsys vfs.FS, dir string, segmentSize int64) (newest segment.SegmentInfo, rotated bool, err error) {
	l, err := segment.Open(segment.Options{FS: fsys, Dir: dir, SegmentSize: segmentSize})
	if err != nil {
		return newest, false, err
	}
	before := l.Segments()
	err = l.Rotate()
	after := l.Segments()
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err == nil && len(after) == 0 {
		err = errors.New("wal rotate: the log has no segments after rotating")
	}
	if err != nil {
		return newest, false, err
	}
	newest = after[len(after)-1]
	return newest, len(before) == 0 || before[len(before)-1].Name != newest.Name, nil
}

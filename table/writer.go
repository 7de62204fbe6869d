package table

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// writeBufferSize is the size of the buffer between a Writer and its file:
// large enough that the file sees few, big sequential writes.
const writeBufferSize = 256 << 10

// writebackStep is how often a paced (background) writer hands its bytes
// to the disk (format.AtomicFile.SetWriteback).
const writebackStep = 1 << 20

// Errors of Writer.
var (
	// ErrClosed is returned by Add after Close or Cancel.
	ErrClosed = errors.New("kvtool/table: writer is closed")
	// ErrCancelled is returned by Close after Cancel.
	ErrCancelled = errors.New("kvtool/table: writer was cancelled")
	// ErrBadOptions is returned by NewWriter for an invalid WriterOptions.
	ErrBadOptions = errors.New("kvtool/table: invalid writer options")
)

// WriterOptions says what to write in a table's header and footer and how
// to cut its blocks.
type WriterOptions struct {
	// Magic is the header magic: format.MagicCheckpoint or format.MagicDelta.
	Magic string
	// Ext holds the kind-specific header fields (at most format.MaxHeaderExt).
	Ext []byte
	// BlockSize is the uncompressed size at which blocks are cut
	// (0: format.TargetBlockSize; at most format.MaxBlockSize).
	BlockSize int
	// Codec compresses the blocks (format.CodecNone, CodecZstd,
	// CodecHuff0, or CodecAuto: zstd or huff0, chosen block by block).
	Codec format.BlockCodec
	// Index, FromIndex and Term are recorded in the footer: the applied
	// index the table brings the state to, the exclusive lower bound of the
	// range it covers (0 for a checkpoint), and the term.
	Index, FromIndex, Term uint64
	// Parallelism bounds the goroutines compressing blocks: 0 uses every
	// core (fastest), 1 compresses on the writer's goroutine (at most one
	// core: a background writer beside a busy store).
	Parallelism int
	// BytesPerSec paces the writer to this many bytes of entries per
	// second (0: as fast as it can), so background maintenance leaves the
	// disk and CPU to the foreground.
	BytesPerSec int64
	// BusyShare, if set (0 < BusyShare < 1), also paces the writer by the
	// time it works: between pacing points it sleeps so that its work (the
	// caller's between Adds included: scanning the source, encoding,
	// compressing, writing) takes at most this share of the wall time.
	// Work is measured in wall time, so on a loaded machine, where the
	// same work takes longer, the writer yields more.
	BusyShare float64
	// Context, if set, stops the writer: once it is done, the next block
	// cut (and a pacing pause) fails with its error, which is sticky, so
	// the table is abandoned at a block boundary; Close then publishes
	// nothing and Cancel removes the temporary file.
	Context context.Context
}

// Writer streams sorted entries into a table file. Nothing is visible
// under the final path until Close has published the file durably. Memory
// is bounded by the index (two keys per block) and a few blocks: with zstd,
// up to GOMAXPROCS+1 cut blocks compress on other goroutines while the
// next one fills (see pipeline.go); output stays in key order.
type Writer struct {
	path  string
	opts  WriterOptions
	af    *format.AtomicFile
	buf   *bufio.Writer
	sum   *xxhash.Digest  // whole-file checksum of the bytes written so far
	off   int64           // bytes written so far
	cur   *pendingBlock   // the block being filled
	queue []*pendingBlock // blocks cut and being compressed, oldest first
	free  []*pendingBlock // finished blocks to reuse
	par   int             // blocks that may be compressing at once (0: compress inline)

	paceStart time.Time     // pacing (opts.BytesPerSec, BusyShare): when the first block was cut
	paced     int64         // entry bytes cut into blocks so far
	resumed   time.Time     // when the writer last resumed work after a pacing point
	busy      time.Duration // time worked between pacing points so far
	last      []byte        // last key of the block cut before cur
	frame     []byte        // scratch for the index and footer frames
	index     indexBuilder
	hash      *entryHasher
	nblock    int
	puts      uint64
	tombs     uint64
	err       error // sticky: the first write error, or ErrClosed/ErrCancelled
	done      bool
	info      Info
}

// NewWriter starts a table that Close will publish at path.
func NewWriter(fs vfs.FS, path string, opts WriterOptions) (*Writer, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if opts.BlockSize == 0 {
		opts.BlockSize = format.TargetBlockSize
	}
	opts.Ext = bytes.Clone(opts.Ext)
	af, err := format.CreateAtomic(fs, path)
	if err != nil {
		return nil, fmt.Errorf("kvtool/table: %s: %w", path, err)
	}
	if opts.BytesPerSec > 0 {
		af.SetWriteback(writebackStep)
	}
	w := &Writer{
		path: path, opts: opts, af: af,
		buf:  bufio.NewWriterSize(af, writeBufferSize),
		sum:  xxhash.New(),
		hash: newEntryHasher(),
		par:  parallelism(opts.Codec, opts.Parallelism),
	}
	w.cur = w.newBlock()
	w.write(format.AppendHeader(nil, opts.Magic, opts.Ext))
	return w, nil
}

func (o *WriterOptions) check() error {
	switch {
	case o.Magic != format.MagicCheckpoint && o.Magic != format.MagicDelta:
		return fmt.Errorf("%w: magic %q is not a table kind", ErrBadOptions, o.Magic)
	case len(o.Ext) > format.MaxHeaderExt:
		return fmt.Errorf("%w: header ext of %d bytes exceeds %d", ErrBadOptions, len(o.Ext), format.MaxHeaderExt)
	case o.BlockSize < 0 || o.BlockSize > format.MaxBlockSize:
		return fmt.Errorf("%w: block size %d out of range", ErrBadOptions, o.BlockSize)
	case !o.Codec.Valid() && o.Codec != format.CodecAuto:
		return fmt.Errorf("%w: unknown codec %d", ErrBadOptions, o.Codec)
	}
	return nil
}

// Path returns the final path of the table.
func (w *Writer) Path() string { return w.path }

// Offset returns the number of bytes written so far (blocks still being
// filled are not counted).
func (w *Writer) Offset() int64 { return w.off }

// Entries returns the number of entries added so far.
func (w *Writer) Entries() uint64 { return w.puts + w.tombs }

// Add appends an entry. Keys must be strictly ascending; a tombstone
// (format.EntryDelete) carries no value. An invalid entry is rejected and
// nothing is added; a write error is sticky.
func (w *Writer) Add(key, value []byte, kind format.EntryKind) error {
	if w.err != nil {
		return w.err
	}
	bw := w.cur.bw
	if bw.Len() > 0 && bw.Size()+format.EntrySize(key, value) > w.opts.BlockSize {
		if err := w.cutBlock(); err != nil {
			return err
		}
		bw = w.cur.bw
	}
	if bw.Len() == 0 && w.nblock+len(w.queue) > 0 && bytes.Compare(key, w.last) <= 0 {
		return fmt.Errorf("kvtool/table: %s: %w: %s after %s", w.path, format.ErrKeyOrder, shortKey(key), shortKey(w.last))
	}
	if err := bw.Add(key, value, kind); err != nil {
		return fmt.Errorf("kvtool/table: %s: %w", w.path, err)
	}
	w.hash.add(key, value, kind)
	if kind == format.EntryPut {
		w.puts++
	} else {
		w.tombs++
	}
	return nil
}

// write appends p to the file, adding it to the whole-file checksum.
func (w *Writer) write(p []byte) error {
	if w.err != nil {
		return w.err
	}
	w.sum.Write(p)
	w.off += int64(len(p))
	if _, err := w.buf.Write(p); err != nil {
		w.err = fmt.Errorf("kvtool/table: writing %s: %w", w.path, err)
	}
	return w.err
}

// Close writes the last block, the index and the footer, and publishes the
// file durably at its path. On error nothing new is left under the path
// (unless only the directory sync failed; see format.AtomicFile.Close). A
// second Close returns the first one's result.
func (w *Writer) Close() (Info, error) {
	if w.done {
		return w.info, w.closeErr()
	}
	w.done = true
	if err := w.finish(); err != nil {
		w.wait()
		w.af.Cancel()
		return Info{}, err
	}
	if err := w.af.Close(); err != nil {
		w.err = fmt.Errorf("kvtool/table: publishing %s: %w", w.path, err)
		return Info{}, w.err
	}
	return w.info, nil
}

func (w *Writer) closeErr() error {
	if w.err == ErrClosed {
		return nil
	}
	return w.err
}

// finish writes everything after the last entry and flushes the buffer.
func (w *Writer) finish() error {
	if w.cur.bw.Len() > 0 {
		if err := w.cutBlock(); err != nil {
			return err
		}
	}
	if err := w.drain(0); err != nil {
		return err
	}
	indexOff := w.off
	for _, p := range w.index.payloads() {
		if err := w.write(format.AppendFrame(w.frame[:0], format.FrameIndex, p)); err != nil {
			return err
		}
	}
	f := w.footer(indexOff)
	if err := w.write(appendFooter(w.frame[:0], f)); err != nil {
		return err
	}
	if err := w.buf.Flush(); err != nil {
		w.err = fmt.Errorf("kvtool/table: writing %s: %w", w.path, err)
		return w.err
	}
	w.info = infoOf(w.path, w.opts.Magic, w.opts.Ext, w.off, f)
	w.err = ErrClosed
	return nil
}

func (w *Writer) footer(indexOff int64) footer {
	return footer{
		indexOff: uint64(indexOff), indexLen: uint64(w.off - indexOff),
		blocks: uint64(w.nblock), puts: w.puts, tombstones: w.tombs,
		hash: w.hash.sum(), index: w.opts.Index, fromIndex: w.opts.FromIndex,
		term: w.opts.Term, checksum: w.sum.Sum64(),
	}
}

// Cancel abandons the table and removes its temporary file. It does
// nothing after Close.
func (w *Writer) Cancel() {
	if w.done {
		return
	}
	w.done = true
	w.err = ErrCancelled
	w.wait()
	w.af.Cancel()
}

// shortKey formats a key for an error message, cut if long.
func shortKey(k []byte) string {
	if len(k) > 64 {
		return fmt.Sprintf("%q...(%d bytes)", k[:64], len(k))
	}
	return fmt.Sprintf("%q", k)
}

package checkpoint

import (
	"context"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// Options tunes writing a checkpoint.
type Options struct {
	// BlockSize is the uncompressed block size (0: format.TargetBlockSize).
	BlockSize int
	// Uncompressed stores blocks without compression.
	Uncompressed bool
	// Codec compresses the blocks unless Uncompressed is set: DefaultCodec
	// (zstd or huff0, block by block) when zero, or format.CodecZstd or
	// format.CodecHuff0 for every block (see DefaultCodec).
	Codec format.BlockCodec
	// Progress, if set, is called every few thousand keys and at the end
	// with the keys and the file bytes written so far.
	Progress func(keys, bytes int64)
	// Background makes the writer use one core and no more than
	// BytesPerSec (see table.WriterOptions): for maintenance beside a
	// serving store.
	Background  bool
	BytesPerSec int64
	// BusyShare, with Background, also paces the writer by the time it
	// works (see table.WriterOptions.BusyShare): at most this share of
	// one core's time (0: bytes only).
	BusyShare float64
	// Context, if set, abandons the file at the next block once it is done
	// (see table.WriterOptions.Context): the write fails with its error and
	// nothing is published.
	Context context.Context
}

// DefaultCodec is the block codec choice checkpoints and deltas are
// written with: format.CodecAuto, zstd on the blocks where its match
// search pays (at least a fifth smaller than huff0 on an 8 KiB sample of
// the block) and huff0 elsewhere. zstd alone made a checkpoint write
// CPU-bound at a quarter of sequential write + fsync on two cores
// (BenchmarkCheckpointWriteRatio: 117 vs 449 MB/s) and took commits from a
// store it was written beside (store.BenchmarkCheckpointInterference);
// huff0 compresses about 3.5x faster. On the benchmark states' blocks
// (BenchmarkBlockCodecs) huff0 gives 0.66 and 0.68 of the raw size where
// zstd's fastest level gives 0.57 and 0.91, so the choice costs at most a
// sixth of the file where zstd would win narrowly; on repeated strings
// (the README's 250-key example: huff0 2,065 bytes, zstd 868) every block
// stays zstd. Files written with any codec read the same way: each block
// names its own.
const DefaultCodec = format.CodecAuto

// TableOptions returns the table writer options for a file of this kind.
func (o Options) TableOptions(magic string, ext []byte) table.WriterOptions {
	codec := o.Codec
	if codec == format.CodecNone {
		codec = DefaultCodec
	}
	if o.Uncompressed {
		codec = format.CodecNone
	}
	topts := table.WriterOptions{Magic: magic, Ext: ext, BlockSize: o.BlockSize, Codec: codec, BytesPerSec: o.BytesPerSec,
		Context: o.Context}
	if o.Background {
		topts.Parallelism = 1
		topts.BusyShare = o.BusyShare
	}
	return topts
}

// Source is a frozen state: Ascend yields every pair in ascending key
// order until fn returns false. The store's Snapshot.Scan does this.
type Source interface {
	Ascend(fn func(key string, value []byte) bool)
}

// SourceFunc adapts a function to a Source, for example
//
//	checkpoint.SourceFunc(func(fn func(string, []byte) bool) { snap.Scan(store.ScanOptions{}, fn) })
type SourceFunc func(fn func(key string, value []byte) bool)

// Ascend calls f.
func (f SourceFunc) Ascend(fn func(key string, value []byte) bool) { f(fn) }

// Write writes the state src at meta.Index as dir/format.CheckpointName(
// meta.Index) and publishes it durably; an existing file of that name is
// replaced. Nothing is visible under the name until it is complete.
func Write(fs vfs.FS, dir string, meta Meta, src Source, opts Options) (Info, error) {
	return WriteFile(fs, filepath.Join(dir, format.CheckpointName(meta.Index)), meta, src, opts)
}

// WriteFile is Write to an arbitrary path (a point-in-time --out file).
func WriteFile(fs vfs.FS, path string, meta Meta, src Source, opts Options) (Info, error) {
	w, err := NewWriter(fs, path, meta, opts)
	if err != nil {
		return Info{}, err
	}
	var kb []byte
	var addErr error
	src.Ascend(func(key string, value []byte) bool {
		kb = append(kb[:0], key...)
		addErr = w.Add(kb, value)
		return addErr == nil
	})
	if addErr != nil {
		w.Cancel()
		return Info{}, addErr
	}
	return w.Close()
}

// Writer streams pairs into a checkpoint file.
type Writer struct {
	w *table.KindWriter[Meta, Info]
}

// NewWriter starts the checkpoint that Close publishes at path (use
// filepath.Join(dir, format.CheckpointName(meta.Index)) for the snapshot
// directory).
func NewWriter(fs vfs.FS, path string, meta Meta, opts Options) (*Writer, error) {
	w, err := Kind.NewWriter(fs, path, meta, opts.TableOptions(Kind.Magic, nil), opts.Progress)
	if err != nil {
		return nil, err
	}
	return &Writer{w}, nil
}

// Add appends a pair; keys must be strictly ascending.
func (w *Writer) Add(key, value []byte) error { return w.w.Put(key, value) }

// Close publishes the checkpoint durably and describes it. A second Close
// returns the first one's result.
func (w *Writer) Close() (Info, error) { return w.w.Close() }

// Cancel abandons the checkpoint and removes its temporary file.
func (w *Writer) Cancel() { w.w.Cancel() }

// Restamp publishes durably, as dir/format.CheckpointName(meta.Index) on
// fs, a copy of the verified checkpoint src on srcFS whose header carries
// meta instead of its own (another store's identity): its blocks are
// copied, not decoded (see table.Kind.Restamp). meta must keep src's
// index and term.
func Restamp(srcFS vfs.FS, src string, fs vfs.FS, dir string, meta Meta) (Info, error) {
	return Kind.Restamp(srcFS, src, fs, filepath.Join(dir, format.CheckpointName(meta.Index)), meta)
}

package segment

import (
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// A quarantine file keeps bytes a repair cut, next to the segment they came
// from. Layout: a format header (magic format.MagicQuarantine) whose ext is
//
//	+------------+------------+-------------+-------------+
//	| offset u64 | length u64 | nameLen u16 | source name |
//	+------------+------------+-------------+-------------+
//
// followed by frames of type format.FrameQuarantine, each holding one chunk:
// its offset in the source file (u64) and at most quarantineChunk bytes.
const quarantineChunk = 1 << 20

// Quarantine is the content of a quarantine file.
type Quarantine struct {
	Source string // name of the file the bytes were cut from
	Offset int64  // offset in Source of the first byte
	Data   []byte // the bytes, exactly as they were
}

// writeQuarantine durably publishes at path the n bytes of src starting at
// off (src is the file named source): fsync, rename, fsync of the directory.
func writeQuarantine(fsys vfs.FS, path, source string, src vfs.File, off, n int64) error {
	a, err := format.CreateAtomic(fsys, path)
	if err != nil {
		return fmt.Errorf("kvtool/segment: %w", err)
	}
	ext := binary.LittleEndian.AppendUint64(nil, uint64(off))
	ext = binary.LittleEndian.AppendUint64(ext, uint64(n))
	ext = binary.LittleEndian.AppendUint16(ext, uint16(len(source)))
	ext = append(ext, source...)
	if _, err := a.Write(format.AppendHeader(nil, format.MagicQuarantine, ext)); err != nil {
		a.Cancel()
		return fmt.Errorf("kvtool/segment: %w", err)
	}
	if err := copyChunks(a, src, off, n); err != nil {
		a.Cancel()
		return err
	}
	if err := a.Close(); err != nil {
		return fmt.Errorf("kvtool/segment: %w", err)
	}
	return nil
}

// copyChunks writes [off, off+n) of src to w as quarantine frames.
func copyChunks(w io.Writer, src vfs.File, off, n int64) error {
	buf := make([]byte, 0, format.FrameHeaderSize+8+min(n, quarantineChunk))
	for done := int64(0); done < n; {
		k := int(min(n-done, quarantineChunk))
		frame, start := format.BeginFrame(buf[:0], format.FrameQuarantine)
		frame = binary.LittleEndian.AppendUint64(frame, uint64(off+done))
		body := len(frame)
		frame = frame[:body+k]
		if _, err := src.ReadAt(frame[body:], off+done); err != nil && err != io.EOF {
			return fmt.Errorf("kvtool/segment: read %s at offset %d: %w", src.Name(), off+done, err)
		}
		format.FinishFrame(frame, start)
		if _, err := w.Write(frame); err != nil {
			return fmt.Errorf("kvtool/segment: %w", err)
		}
		done += int64(k)
	}
	return nil
}

// ReadQuarantine reads and checks the quarantine file at path. Damage is a
// *format.CorruptionError.
func ReadQuarantine(fsys vfs.FS, path string) (*Quarantine, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kvtool/segment: open %s: %w", path, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("kvtool/segment: %w", err)
	}
	r := io.NewSectionReader(f, 0, size)
	h, err := format.ReadHeader(r, path, format.MagicQuarantine)
	if err != nil {
		return nil, err
	}
	q, n, err := decodeQuarantineExt(h.Ext, path)
	if err != nil {
		return nil, err
	}
	start := int64(format.HeaderSize(len(h.Ext)))
	fr := format.NewFrameReader(r, path, start, size, false)
	for {
		f, err := fr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		if err := q.addChunk(f, path); err != nil {
			return nil, err
		}
	}
	if int64(len(q.Data)) != n {
		return nil, format.Corruptf(path, size, "quarantine holds %d bytes, its header says %d", len(q.Data), n)
	}
	return q, nil
}

func decodeQuarantineExt(ext []byte, path string) (*Quarantine, int64, error) {
	if len(ext) < 18 || len(ext) != 18+int(binary.LittleEndian.Uint16(ext[16:])) {
		return nil, 0, format.Corruptf(path, 16, "bad quarantine header ext (%d bytes)", len(ext))
	}
	q := &Quarantine{Source: string(ext[18:]), Offset: int64(binary.LittleEndian.Uint64(ext))}
	return q, int64(binary.LittleEndian.Uint64(ext[8:])), nil
}

// addChunk appends one chunk frame, checking that chunks are contiguous.
func (q *Quarantine) addChunk(f format.Frame, path string) error {
	if f.Type != format.FrameQuarantine || len(f.Payload) < 8 {
		return format.Corruptf(path, f.Offset, "not a quarantine chunk (type %d, %d bytes)", f.Type, len(f.Payload))
	}
	if at := int64(binary.LittleEndian.Uint64(f.Payload)); at != q.Offset+int64(len(q.Data)) {
		return format.Corruptf(path, f.Offset, "chunk for offset %d, want %d", at, q.Offset+int64(len(q.Data)))
	}
	q.Data = append(q.Data, f.Payload[8:]...)
	return nil
}

// quarantinePath returns a path in dir for the bytes cut from name at off
// that no file holds yet: format.QuarantineName(name, off), or, if an
// earlier repair already cut at the same offset, the same with ".N" after
// name.
func quarantinePath(fsys vfs.FS, dir, name string, off int64) (string, error) {
	base := name
	for n := 1; ; n++ {
		p := filepath.Join(dir, format.QuarantineName(base, off))
		if _, err := fsys.Stat(p); vfs.IsNotExist(err) {
			return p, nil
		} else if err != nil {
			return "", fmt.Errorf("kvtool/segment: %w", err)
		}
		base = fmt.Sprintf("%s.%d", name, n)
	}
}

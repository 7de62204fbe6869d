package table

import (
	"encoding/binary"

	"github.com/kvtool/kvtool/format"
)

// ExtOffset is the file offset of a table's header ext: it follows the
// fixed part of the file header (magic, version, reserved, ext length).
const ExtOffset = 16

// ExtCodec encodes or decodes the header ext of one kind of table. A kind
// describes its ext once, as a function that hands each field to the codec
// in file order (Kind.Ext); the codec appends the fields when a file is
// written and fills them in when one is read, so the two cannot drift
// apart. Integers are little-endian. A name is a u16 length and its bytes;
// it must be the last field, and the ext ends where it ends.
//
// Decoding checks every length against the ext before it reads, and
// reports damage as a *format.CorruptionError at the field's offset.
type ExtCodec struct {
	decoding bool
	b        []byte // encoding: the ext so far; decoding: the whole ext
	pos      int    // decoding: offset in b of the next field
	variable bool   // a name was seen: the ext has no fixed size
	path     string // decoding: the file, for errors
	err      error  // decoding: the first damage found
}

// Bytes is a field of len(p) bytes: p's.
func (c *ExtCodec) Bytes(p []byte) {
	if !c.decoding {
		c.b = append(c.b, p...)
		return
	}
	if b := c.take(len(p)); b != nil {
		copy(p, b)
	}
}

// Uint64 is a u64 field.
func (c *ExtCodec) Uint64(p *uint64) {
	if !c.decoding {
		c.b = binary.LittleEndian.AppendUint64(c.b, *p)
		return
	}
	if b := c.take(8); b != nil {
		*p = binary.LittleEndian.Uint64(b)
	}
}

// Uint32 is a u32 field.
func (c *ExtCodec) Uint32(p *uint32) {
	if !c.decoding {
		c.b = binary.LittleEndian.AppendUint32(c.b, *p)
		return
	}
	if b := c.take(4); b != nil {
		*p = binary.LittleEndian.Uint32(b)
	}
}

// Name is the last field: a u16 length and at most max bytes, which must
// fill the rest of the ext. what names it in errors.
func (c *ExtCodec) Name(p *string, max int, what string) {
	c.variable = true
	if !c.decoding {
		c.b = binary.LittleEndian.AppendUint16(c.b, uint16(len(*p)))
		c.b = append(c.b, *p...)
		return
	}
	at := c.pos
	b := c.take(2)
	if b == nil {
		return
	}
	n := int(binary.LittleEndian.Uint16(b))
	if n > max || len(c.b)-c.pos != n {
		c.fail(at, "%s of %d bytes in a %d-byte ext", what, n, len(c.b))
		return
	}
	*p = string(c.take(n))
}

// take returns the next n bytes of the ext being decoded, or nil (and
// records the damage) if the ext ends first or is damaged already.
func (c *ExtCodec) take(n int) []byte {
	if c.err != nil {
		return nil
	}
	if len(c.b)-c.pos < n {
		c.fail(c.pos, "header ext of %d bytes ends inside a %d-byte field at %d", len(c.b), n, c.pos)
		return nil
	}
	b := c.b[c.pos : c.pos+n]
	c.pos += n
	return b
}

func (c *ExtCodec) fail(at int, reason string, args ...any) {
	if c.err == nil {
		c.err = format.Corruptf(c.path, ExtOffset+int64(at), reason, args...)
	}
}

// AppendExt appends the header ext of m to dst.
func (k *Kind[M, I]) AppendExt(dst []byte, m M) []byte {
	c := ExtCodec{b: dst}
	k.Ext(&c, &m)
	return c.b
}

// extSize returns the size of the kind's ext without a name, and whether
// a name may follow.
func (k *Kind[M, I]) extSize() (fixed int, variable bool) {
	var c ExtCodec
	var zero M
	k.Ext(&c, &zero)
	return len(c.b), c.variable
}

// ParseExt decodes the header ext of the file at path. An ext of the wrong
// size, or one that holds metadata Check rejects, is a
// *format.CorruptionError.
func (k *Kind[M, I]) ParseExt(ext []byte, path string) (M, error) {
	var m M
	fixed, variable := k.extSize()
	switch {
	case variable && len(ext) < fixed:
		return m, format.Corruptf(path, ExtOffset, "%s header ext of %d bytes, want at least %d", k.Noun, len(ext), fixed)
	case !variable && len(ext) != fixed:
		return m, format.Corruptf(path, ExtOffset, "%s header ext of %d bytes, want %d", k.Noun, len(ext), fixed)
	}
	c := ExtCodec{decoding: true, b: ext, path: path}
	k.Ext(&c, &m)
	if c.err == nil && c.pos != len(ext) {
		c.fail(c.pos, "%d stray bytes after the %s header ext", len(ext)-c.pos, k.Noun)
	}
	if c.err != nil {
		return m, c.err
	}
	if err := k.Check(m); err != nil {
		return m, format.Corruptf(path, ExtOffset, "%s header: %v", k.Noun, err)
	}
	return m, nil
}

package manifest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// ErrNotFound is returned (wrapped) by Load when the directory has no
// manifest: it was never initialised.
var ErrNotFound = errors.New("kvtool/manifest: no manifest")

// maxSize bounds the manifest's JSON body.
const maxSize = 1 << 20

// StoreID identifies one store; every file it writes carries it, so files of
// two stores are never mixed.
type StoreID [16]byte

// NewStoreID returns a random store ID.
func NewStoreID() StoreID {
	var id StoreID
	if _, err := rand.Read(id[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return id
}

// String is the ID as 32 hex digits.
func (id StoreID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText encodes the ID as hex.
func (id StoreID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes a hex ID.
func (id *StoreID) UnmarshalText(b []byte) error {
	if len(b) != 32 {
		return fmt.Errorf("store id %q is not 32 hex digits", b)
	}
	_, err := hex.Decode(id[:], b)
	return err
}

// FileRef names a checkpoint or delta file and what it covers.
type FileRef struct {
	Name      string `json:"name"`
	FromIndex uint64 `json:"from_index"` // exclusive lower bound (0 for a checkpoint)
	Index     uint64 `json:"index"`      // applied index the file brings the state to
	Size      int64  `json:"size"`
	Checksum  uint64 `json:"checksum"` // whole-file checksum from the file's footer
}

// Manifest is the decoded manifest.
type Manifest struct {
	StoreID StoreID `json:"store_id"`
	Shards  int     `json:"shards"`
	Epoch   uint64  `json:"epoch"`
	// SegmentSize is the WAL rotation threshold the directory was created
	// with; every process that opens it uses it unless told otherwise.
	SegmentSize int64 `json:"segment_size,omitempty"`
	// Base is the base checkpoint (nil: the state starts empty at index 0).
	Base *FileRef `json:"base,omitempty"`
	// Deltas is the chain on top of Base, oldest first.
	Deltas []FileRef `json:"deltas,omitempty"`
	// WALFirstIndex is the first WAL index recovery still needs.
	WALFirstIndex uint64 `json:"wal_first_index"`
	// Generation counts publications; it only grows.
	Generation uint64 `json:"generation"`
}

// SnapshotIndex is the index the base and delta chain bring the state to.
func (m *Manifest) SnapshotIndex() uint64 {
	if n := len(m.Deltas); n > 0 {
		return m.Deltas[n-1].Index
	}
	if m.Base != nil {
		return m.Base.Index
	}
	return 0
}

// Path returns the manifest path of the data directory dir.
func Path(dir string) string { return filepath.Join(dir, format.ManifestName) }

// Load reads the manifest of data directory dir.
func Load(fsys vfs.FS, dir string) (*Manifest, error) {
	path := Path(dir)
	f, err := fsys.Open(path)
	if vfs.IsNotExist(err) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return decode(f, path, size)
}

func decode(r io.Reader, path string, size int64) (*Manifest, error) {
	if _, err := format.ReadHeader(r, path, format.MagicManifest); err != nil {
		return nil, err
	}
	off := int64(format.HeaderSize(0))
	fr := format.NewFrameReader(r, path, off, size, false)
	f, err := fr.Next()
	if err == io.EOF {
		return nil, format.Corruptf(path, off, "manifest has no body")
	} else if err != nil {
		return nil, err
	}
	at, body := f.Offset, f.Payload
	if f.Type != format.FrameManifest || len(body) > maxSize {
		return nil, format.Corruptf(path, at, "unexpected frame type %d or size %d", f.Type, len(body))
	}
	if _, err := fr.Next(); err != io.EOF {
		return nil, format.Corruptf(path, fr.Offset(), "bytes after the manifest body")
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, format.Corruptf(path, at, "manifest body: %v", err)
	}
	if err := m.validate(); err != nil {
		return nil, format.Corruptf(path, at, "%v", err)
	}
	return &m, nil
}

// validate checks what a decoder can check without opening other files.
func (m *Manifest) validate() error {
	if m.Shards < 1 || m.Shards > 4096 {
		return fmt.Errorf("shard count %d out of range", m.Shards)
	}
	prev := uint64(0)
	if m.Base != nil {
		prev = m.Base.Index
	}
	for _, d := range m.Deltas {
		if d.FromIndex != prev || d.Index < d.FromIndex {
			return fmt.Errorf("delta chain broken at %s: covers (%d, %d], want from %d", d.Name, d.FromIndex, d.Index, prev)
		}
		prev = d.Index
	}
	return nil
}

// Encode returns the file bytes of m.
func Encode(m *Manifest) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	b := format.AppendHeader(nil, format.MagicManifest, nil)
	return format.AppendFrame(b, format.FrameManifest, body), nil
}

// Publish durably replaces the manifest of dir with m, after incrementing
// m.Generation.
func Publish(fsys vfs.FS, dir string, m *Manifest) error {
	if err := m.validate(); err != nil {
		return fmt.Errorf("kvtool/manifest: refusing to publish: %w", err)
	}
	m.Generation++
	b, err := Encode(m)
	if err != nil {
		return err
	}
	return format.WriteFileAtomic(fsys, Path(dir), b)
}

package manifest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

func sample() *Manifest {
	base := FileRef{Name: format.CheckpointName(20), Index: 20, Size: 100, Checksum: 7}
	return &Manifest{StoreID: NewStoreID(), Shards: 16, Epoch: 1, SegmentSize: 1 << 20, Base: &base,
		Deltas:        []FileRef{{Name: format.DeltaName(20, 30), FromIndex: 20, Index: 30, Size: 50, Checksum: 9}},
		WALFirstIndex: 21}
}

func TestPublishLoad(t *testing.T) {
	fsys := vfs.NewMem()
	if err := format.MkdirAllDurable(fsys, "/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(fsys, "/d"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("load before publish: %v", err)
	}
	m := sample()
	if err := Publish(fsys, "/d", m); err != nil {
		t.Fatal(err)
	}
	got, err := Load(fsys, "/d")
	if err != nil {
		t.Fatal(err)
	}
	if got.StoreID != m.StoreID || got.Generation != 1 || got.SnapshotIndex() != 30 || got.Base.Name != m.Base.Name {
		t.Fatalf("loaded %+v, published %+v", got, m)
	}
	// Only what was synced survives a crash: the manifest is whole.
	crashed := fsys.CrashClone(vfs.CrashOptions{})
	if again, err := Load(crashed, "/d"); err != nil || again.Generation != 1 {
		t.Fatalf("after crash: %+v %v", again, err)
	}
}

func TestPublishRefusesBrokenChain(t *testing.T) {
	m := sample()
	m.Deltas[0].FromIndex = 25 // gap after the base at 20
	if err := Publish(vfs.NewMem(), "/", m); err == nil {
		t.Fatal("published a manifest whose delta chain has a gap")
	}
}

// TestEveryByteIsChecked flips every byte of an encoded manifest: each
// flip is corruption (or an unknown version), never a wrong manifest.
func TestEveryByteIsChecked(t *testing.T) {
	b, err := Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		_, err := decode(bytes.NewReader(c), "MANIFEST", int64(len(c)))
		if err == nil {
			t.Fatalf("flip at byte %d not detected", i)
		}
		if !errors.Is(err, format.ErrCorruption) && !errors.Is(err, format.ErrUnknownVersion) {
			t.Fatalf("flip at byte %d: %v is neither corruption nor an unknown version", i, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := Encode(sample())
	f.Add(b)
	f.Add(b[:len(b)-3])
	f.Add([]byte(format.MagicManifest))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decode(bytes.NewReader(data), "MANIFEST", int64(len(data)))
		if err != nil {
			if !errors.Is(err, format.ErrCorruption) && !errors.Is(err, format.ErrUnknownVersion) {
				t.Fatalf("error is neither corruption nor an unknown version: %v", err)
			}
			return
		}
		// What decoded re-encodes and decodes to the same manifest.
		again, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decode(bytes.NewReader(again), "MANIFEST", int64(len(again)))
		if err != nil || m2.Generation != m.Generation || m2.SnapshotIndex() != m.SnapshotIndex() || m2.StoreID != m.StoreID {
			t.Fatalf("re-encoded manifest differs: %+v vs %+v (%v)", m2, m, err)
		}
	})
}

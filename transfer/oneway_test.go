package transfer

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"path/filepath"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/dirtest"
	"github.com/kvtool/kvtool/vfs"
)

// oneWayStream writes a one-way stream of src.
func oneWayStream(t *testing.T, src Source) []byte {
	t.Helper()
	var buf bytes.Buffer
	res, err := WriteStream(context.Background(), &buf, src, SendOptions{Secret: testSecret, ChunkSize: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	if res.WireBytes != int64(buf.Len()) || res.ChunkBytes != res.Size {
		t.Fatalf("%+v for %d bytes", res, buf.Len())
	}
	return buf.Bytes()
}

func TestOneWayStream(t *testing.T) {
	src := newMemSource(t, 1500, 7)
	if _, err := src.snapshot(); err != nil {
		t.Fatal(err)
	}
	src.append("tail:1", []byte("x"))
	src.append("tail:2", []byte("y"))
	stream := oneWayStream(t, src)

	rep, err := VerifyStream(bytes.NewReader(stream), "s.xfer", VerifyOptions{Secret: testSecret, TempDir: t.TempDir()})
	if err != nil || !rep.OK() || !rep.MACChecked || !rep.CheckpointChecked || rep.Entries != 2 || rep.ChunksOK != rep.Chunks {
		t.Fatalf("verify: %+v %v %v", rep, err, rep.Err())
	}
	dir := filepath.Join(t.TempDir(), "data")
	res, err := ReadStream(context.Background(), bytes.NewReader(stream), ReceiveOptions{Dir: dir, Secret: testSecret})
	if err != nil || !res.CutOver || res.Applied != src.LastIndex() {
		t.Fatalf("read stream: %+v %v", res, err)
	}
	checkInstalled(t, vfs.Default, dir, src)
}

// TestOneWayDamage damages a saved stream at every kind of place: verify
// reports it with an offset inside the stream and recv refuses to cut
// over, leaving no store behind.
func TestOneWayDamage(t *testing.T) {
	src := newMemSource(t, 300, 1)
	src.append("t", []byte("v"))
	stream := oneWayStream(t, src)
	for _, at := range []int{3, 40, 100, 300, 5000, len(stream) / 2, len(stream) - 120, len(stream) - 10} {
		bad := bytes.Clone(stream)
		bad[at] ^= 0x10
		rep, err := VerifyStream(bytes.NewReader(bad), "bad", VerifyOptions{Secret: testSecret})
		if err != nil || rep.OK() {
			t.Fatalf("damage at %d: verify found nothing (%v)", at, err)
		}
		for _, p := range rep.Problems {
			if p.Offset < 0 || p.Offset > int64(len(bad)) {
				t.Errorf("damage at %d: problem at offset %d: %v", at, p.Offset, p)
			}
		}
		dir := t.TempDir()
		res, err := ReadStream(context.Background(), bytes.NewReader(bad), ReceiveOptions{Dir: dir, Secret: testSecret})
		if err == nil || res.CutOver {
			t.Fatalf("damage at %d: received %+v", at, res)
		}
		if _, serr := vfs.Default.Stat(filepath.Join(dir, format.ManifestName)); serr == nil {
			t.Fatalf("damage at %d: a manifest was published", at)
		}
	}
	rep, err := VerifyStream(bytes.NewReader(stream[:len(stream)-50]), "cut", VerifyOptions{})
	if err != nil || rep.OK() || rep.MACChecked {
		t.Fatalf("truncated stream: %+v %v", rep, err)
	}
	rep, err = VerifyStream(bytes.NewReader(append(bytes.Clone(stream), 0)), "long", VerifyOptions{})
	if err != nil || rep.OK() {
		t.Fatalf("trailing byte: %+v %v", rep, err)
	}
}

// TestOneWayWrongSecret: a stream signed with another secret is rejected
// before anything is written, and verify says so.
func TestOneWayWrongSecret(t *testing.T) {
	src := newMemSource(t, 100, 1)
	stream := oneWayStream(t, src)
	other := mustSecret("not the secret the stream used..")
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	before := dirtest.Snapshot(t, root)
	_, err := ReadStream(context.Background(), bytes.NewReader(stream), ReceiveOptions{Dir: dir, Secret: other})
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("read stream: %v", err)
	}
	if !maps.Equal(before, dirtest.Snapshot(t, root)) {
		t.Fatal("a rejected stream changed the directory")
	}
	rep, err := VerifyStream(bytes.NewReader(stream), "s", VerifyOptions{Secret: other})
	if err != nil || rep.OK() || len(rep.Problems) != 2 {
		t.Fatalf("verify with the wrong secret: %v %v", rep.Problems, err)
	}
}

// TestOneWayOtherStore: the receiver's own check refuses a stream of
// another store than the partial snapshot it holds.
func TestOneWayOtherStore(t *testing.T) {
	src := newMemSource(t, 3000, 1)
	dir := partialDir(t, src)
	other := newMemSource(t, 10, 1)
	stream := oneWayStream(t, other)
	before := dirtest.Snapshot(t, dir)
	_, err := ReadStream(context.Background(), bytes.NewReader(stream), ReceiveOptions{Dir: dir, Secret: testSecret})
	if !errors.Is(err, ErrStoreMismatch) {
		t.Fatalf("read stream: %v", err)
	}
	if !maps.Equal(before, dirtest.Snapshot(t, dir)) {
		t.Fatal("a stream of another store changed the directory")
	}
}

// TestOneWayAfterPartial: a one-way stream of the snapshot a directory
// holds part of completes it without writing the verified chunks again.
func TestOneWayAfterPartial(t *testing.T) {
	src := newMemSource(t, 3000, 1)
	dir := partialDir(t, src)
	stream := oneWayStream(t, src)
	res, err := ReadStream(context.Background(), bytes.NewReader(stream), ReceiveOptions{Dir: dir, Secret: testSecret})
	if err != nil || !res.Resumed || !res.CutOver {
		t.Fatalf("%+v %v", res, err)
	}
	checkInstalled(t, vfs.Default, dir, src)
}

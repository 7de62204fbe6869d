package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// storeDir is a data directory holding 200 puts in 4 KiB segments, closed.
func storeDir(t *testing.T) (string, []segment.SegmentInfo) {
	t.Helper()
	data := t.TempDir()
	st, err := store.Open(store.Options{Dir: data, Create: true, Shards: 2, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if _, err := st.Put(context.Background(), fmt.Sprintf("key:%03d", i), []byte("value")); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return data, segments(t, data)
}

// TestServeRefusesLostWALEnd deletes the newest segment, or flips a byte
// in the last record after a kill: serve refuses to open (exit 3), naming
// the file and pointing at wal repair, and verify exits 3 without claiming
// a recovery index. (Before, serve opened and verify said "recovery
// reaches index N" for a directory that had silently lost records.)
func TestServeRefusesLostWALEnd(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, segs []segment.SegmentInfo) string
	}{
		{"newest segment deleted", func(t *testing.T, segs []segment.SegmentInfo) string {
			if err := os.Remove(segs[len(segs)-1].Path); err != nil {
				t.Fatal(err)
			}
			return segs[len(segs)-2].Path
		}},
		{"last record damaged", func(t *testing.T, segs []segment.SegmentInfo) string {
			newest := segs[len(segs)-1]
			b, err := os.ReadFile(newest.Path)
			if err != nil {
				t.Fatal(err)
			}
			const closeRecord = format.FrameHeaderSize + 8
			clear(b[newest.Size-closeRecord : newest.Size]) // a kill: no clean-shutdown record
			b[newest.Size-closeRecord-1] ^= 0x01
			if err := os.WriteFile(newest.Path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return newest.Path
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			data, segs := storeDir(t)
			path := c.damage(t, segs)
			code, stderr := serveRefuses(t, data)
			mustCode(t, code, exitDamage, "", stderr)
			if !strings.Contains(stderr, path) || !strings.Contains(stderr, "wal repair") {
				t.Errorf("serve stderr does not name %s and wal repair:\n%s", path, stderr)
			}
			stdout, stderr, code := run(t, "--data", data, "verify")
			mustCode(t, code, exitDamage, stdout, stderr)
			if strings.Contains(stdout, "recovery reaches") || !strings.Contains(stdout, filepath.Base(path)) {
				t.Errorf("verify:\n%s", stdout)
			}
		})
	}
}

// serveRefuses runs serve on data, which must exit without listening, and
// returns its exit code and stderr. If it listens, it is stopped and the
// test fails.
func serveRefuses(t *testing.T, data string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	e := env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, fs: vfs.Default}
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, []string{"kvtool", "serve", "--json", "--data", data, "--listen", "127.0.0.1:0"}, e)
	}()
	for {
		select {
		case code := <-done:
			return code, stderr.String()
		case <-time.After(time.Millisecond):
		}
		if strings.Contains(stdout.String(), `"event":"listening"`) {
			cancel()
			<-done
			t.Fatalf("serve opened the damaged directory:\n%s%s", stdout.String(), stderr.String())
		}
	}
}

// TestWALRepairForceListsWhatLeft damages the first record of a middle
// segment: wal repair --force lists, row by row and in its summary,
// exactly the indexes from the log's new end to its old one (the review
// saw "13000 to 13031" for a log that ended at 12992).
func TestWALRepairForceListsWhatLeft(t *testing.T) {
	data := newTestLog(t)
	segs := segments(t, data)
	mid := segs[len(segs)/2]
	flipByte(t, mid.Path, int64(format.HeaderSize(48))+markerBytes+20) // inside its first record
	stdout, stderr, code := run(t, "--data", data, "wal", "repair", "--force", "--json")
	mustCode(t, code, exitOK, stdout, stderr)
	var res repairJSON
	mustJSON(t, stdout, &res)
	if res.LastIndex != mid.FirstIndex-1 {
		t.Fatalf("the log ends at %d after the repair, want %d", res.LastIndex, mid.FirstIndex-1)
	}
	next := res.LastIndex + 1
	for _, c := range res.Cuts {
		if c.FirstLostIndex != next || c.LastLostIndex < c.FirstLostIndex {
			t.Fatalf("cut of %s lists %d to %d, want it to start at %d", c.Path, c.FirstLostIndex, c.LastLostIndex, next)
		}
		next = c.LastLostIndex + 1
	}
	if next != testRecords+1 {
		t.Fatalf("the cuts list indexes up to %d, the log ended at %d", next-1, testRecords)
	}

	data = newTestLog(t) // and the same in words
	flipByte(t, filepath.Join(data, format.WALDir, mid.Name), int64(format.HeaderSize(48))+markerBytes+20)
	stdout, stderr, code = run(t, "--data", data, "wal", "repair", "--force")
	mustCode(t, code, exitOK, stdout, stderr)
	want := fmt.Sprintf("the log now ends at index %d; indexes %d to %d left the log", mid.FirstIndex-1, mid.FirstIndex, testRecords)
	if !strings.Contains(stdout, want) {
		t.Errorf("repair --force:\n%s\nwant %q", stdout, want)
	}
}

// markerBytes is the size of the segment info record after a segment's
// header.
const markerBytes = format.FrameHeaderSize + 8

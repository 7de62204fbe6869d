package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/vfs"
)

func (ts *testServer) puts(t *testing.T, from, n int) uint64 {
	t.Helper()
	var idx uint64
	for i := from; i < from+n; i++ {
		var err error
		if idx, err = ts.c.Put(context.Background(), fmt.Sprintf("k%04d", i), []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	return idx
}

func TestAdminMaintenance(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	ctx := context.Background()

	if _, err := ts.c.Delta(ctx); !errors.Is(err, client.ErrNothingToDo) {
		t.Fatalf("delta of an empty store: %v, want ErrNothingToDo", err)
	}
	idx := ts.puts(t, 0, 50)
	d, err := ts.c.Delta(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.FromIndex != 0 || d.ToIndex != idx || d.Keys != 50 || d.Puts != 50 || d.Size <= 0 || len(d.Checksum) != 16 {
		t.Errorf("delta %+v", d)
	}
	m, err := ts.c.Merge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Index != idx || m.Keys != 50 {
		t.Errorf("merge %+v", m)
	}
	if _, err := ts.c.Merge(ctx); !errors.Is(err, client.ErrNothingToDo) {
		t.Errorf("merge without deltas: %v, want ErrNothingToDo", err)
	}

	idx = ts.puts(t, 50, 30)
	c, err := ts.c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ts.c.Hash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Index != idx || c.Keys != 80 || c.StateHash != h.StateHash || h.AppliedIndex != idx {
		t.Errorf("checkpoint %+v, hash %+v", c, h)
	}
	if _, err := ts.c.Checkpoint(ctx); !errors.Is(err, client.ErrNothingToDo) {
		t.Errorf("second checkpoint at the same index: %v, want ErrNothingToDo", err)
	}

	cr, err := ts.c.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cr.Checkpoint != nil || cr.WALFirstIndex != idx+1 || cr.DroppedSegments == nil || cr.RemovedFiles == nil {
		t.Errorf("compact of a checkpointed state %+v", cr)
	}
	if len(cr.RemovedFiles) == 0 {
		t.Errorf("compact removed no old snapshot files: %+v", cr)
	}
	idx = ts.puts(t, 80, 5)
	if cr, err = ts.c.Compact(ctx); err != nil || cr.Checkpoint == nil || cr.Checkpoint.Index != idx {
		t.Errorf("compact after writes: %+v, %v", cr, err)
	}

	rep, err := datadir.Verify(vfs.Default, ts.st.Dir(), datadir.VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("directory after maintenance: %v %v", err, rep.Problems())
	}
}

func TestAdminAnswers(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	a := ts.do(http.MethodPost, "/v1/admin/merge", nil)
	if a.status != http.StatusConflict || a.errorMessage(t) == "" {
		t.Errorf("merge with nothing to merge: %d %s", a.status, a.body)
	}
	a = ts.do(http.MethodGet, "/v1/admin/checkpoint", nil)
	if a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != http.MethodPost {
		t.Errorf("GET checkpoint: %d, Allow %q", a.status, a.header.Get("Allow"))
	}
	ts.puts(t, 0, 3)
	a = ts.do(http.MethodPost, "/v1/admin/checkpoint", nil)
	var raw map[string]any
	if err := json.Unmarshal(a.body, &raw); err != nil || a.status != http.StatusOK {
		t.Fatalf("checkpoint: %d %s", a.status, a.body)
	}
	for _, k := range []string{"name", "path", "index", "term", "keys", "blocks", "size", "state_hash", "checksum"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("checkpoint answer has no %q: %s", k, a.body)
		}
	}
	a = ts.do(http.MethodPost, "/v1/admin/compact", nil)
	if err := json.Unmarshal(a.body, &raw); err != nil || a.status != http.StatusOK {
		t.Fatalf("compact: %d %s", a.status, a.body)
	}
	if raw["dropped_segments"] == nil || raw["removed_files"] == nil {
		t.Errorf("compact lists are null: %s", a.body)
	}
}

// TestAdminUnderLoad runs maintenance while writers and readers keep going:
// none of them fails, and the result verifies.
func TestAdminUnderLoad(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	ctx := context.Background()
	ts.puts(t, 0, 20)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				k := fmt.Sprintf("w%d:%d", w, i%40)
				if _, err := ts.c.Put(ctx, k, []byte("x")); err != nil {
					t.Errorf("put during maintenance: %v", err)
					return
				}
				if _, _, err := ts.c.Get(ctx, "k0001"); err != nil {
					t.Errorf("get during maintenance: %v", err)
					return
				}
			}
		}()
	}
	steps := []func(context.Context) error{
		func(ctx context.Context) error { _, err := ts.c.Delta(ctx); return err },
		func(ctx context.Context) error { _, err := ts.c.Checkpoint(ctx); return err },
		func(ctx context.Context) error { _, err := ts.c.Delta(ctx); return err },
		func(ctx context.Context) error { _, err := ts.c.Merge(ctx); return err },
		func(ctx context.Context) error { _, err := ts.c.Compact(ctx); return err },
	}
	for round := range 3 {
		for i, step := range steps {
			if err := step(ctx); err != nil && !errors.Is(err, client.ErrNothingToDo) {
				t.Errorf("round %d step %d: %v", round, i, err)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	if _, err := ts.c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := datadir.Verify(vfs.Default, ts.st.Dir(), datadir.VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("directory after maintenance under load: %v %v", err, rep.Problems())
	}
}

package server_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
)

func TestRunShutsDownCleanly(t *testing.T) {
	st, err := store.Open(store.Options{Dir: t.TempDir(), Create: true, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, ln, server.New(st, server.Options{Logger: log}), server.RunOptions{Logger: log, ShutdownTimeout: 5 * time.Second})
	}()
	c := client.New(ln.Addr().String())
	if _, err := c.Put(t.Context(), "k", []byte("secret-value")); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	c.Close()
	if _, _, err := c.Get(t.Context(), "k"); !errors.Is(err, client.ErrNoServer) {
		t.Fatalf("get after shutdown: %v, want ErrNoServer", err)
	}
	if !strings.Contains(logs.String(), `route="PUT /v1/kv/{key...}"`) || !strings.Contains(logs.String(), "shutting down") {
		t.Errorf("logs lack the request or the shutdown:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "secret-value") {
		t.Errorf("a value was logged:\n%s", logs.String())
	}
}

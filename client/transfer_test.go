package client_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
	"github.com/kvtool/kvtool/xferstore"
)

// transferServer serves a store with the transfer endpoints; a zero
// secret leaves sending disabled.
func transferServer(t *testing.T, secret transfer.Secret) *client.Client {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Create: true, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	h := server.WithTransfers(server.New(st, server.Options{}), st, server.TransferOptions{
		Source: xferstore.NewStoreSource(st, xferstore.StoreSourceOptions{}), Secret: secret, Context: t.Context()})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.ServerHeader, api.ServerID) // as server.Run does
		h.ServeHTTP(w, r)
	}))
	c := client.New(srv.Listener.Addr().String())
	t.Cleanup(func() { c.Close(); srv.Close(); st.Close() })
	return c
}

func TestTransferEndpoints(t *testing.T) {
	secret, err := transfer.NewSecret([]byte("a secret of sixteen bytes or more"))
	if err != nil {
		t.Fatal(err)
	}
	c := transferServer(t, secret)
	ctx := t.Context()
	if _, err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}

	// A send to a port nothing listens on is started, listed, and fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	id, err := c.StartSend(ctx, client.SendRequest{To: closed})
	if err != nil || id != 1 {
		t.Fatalf("StartSend = %d, %v", id, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st server.TransfersStatus
		if err := c.Transfers(ctx, &st); err != nil {
			t.Fatal(err)
		}
		if len(st.Sends) == 1 && st.Sends[0].State == server.JobFailed {
			if st.Sends[0].ID != id || st.Sends[0].Kind != "unreachable" {
				t.Fatalf("send %+v", st.Sends[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the send did not fail: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The one-way stream is a transfer stream.
	body, err := c.TransferStream(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	head := make([]byte, len(format.MagicTransfer))
	if _, err := io.ReadFull(body, head); err != nil || string(head) != format.MagicTransfer {
		t.Fatalf("stream starts %q, %v", head, err)
	}
}

// TestTransferEndpointsRefused: a server without a secret refuses to
// send; the error names the request and the server's reason.
func TestTransferEndpointsRefused(t *testing.T) {
	c := transferServer(t, transfer.Secret{})
	var ce *client.Error
	if _, err := c.StartSend(t.Context(), client.SendRequest{To: "127.0.0.1:1"}); !errors.As(err, &ce) ||
		ce.Status != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "POST /v1/transfer/send: ") {
		t.Errorf("StartSend without a secret: %v", err)
	}
	if _, err := c.TransferStream(t.Context(), 0); !errors.As(err, &ce) || ce.Status != http.StatusServiceUnavailable {
		t.Errorf("TransferStream without a secret: %v", err)
	}
	var st server.TransfersStatus
	if err := c.Transfers(t.Context(), &st); err != nil || st.Sends == nil || st.Leases == nil {
		t.Errorf("Transfers: %+v, %v", st, err)
	}
}

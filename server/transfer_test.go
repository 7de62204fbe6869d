package server_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
	"github.com/kvtool/kvtool/xferstore"
)

var transferSecret, _ = transfer.NewSecret([]byte("server tests' transfer secret..."))

// newTransferServer is a test server with the transfer endpoints in front.
func newTransferServer(t *testing.T, secret transfer.Secret) (*testServer, *httptest.Server) {
	ts := newTestServer(t, server.Options{})
	h := server.WithTransfers(server.New(ts.st, server.Options{}), ts.st, server.TransferOptions{
		Source: xferstore.NewStoreSource(ts.st, xferstore.StoreSourceOptions{}), Secret: secret, Context: t.Context()})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return ts, srv
}

func get(t *testing.T, srv *httptest.Server, method, path, body string) answer {
	t.Helper()
	ts := &testServer{t: t, srv: endpointOf(srv)}
	return ts.doString(method, path, body)
}

func TestTransfersListing(t *testing.T) {
	ts, srv := newTransferServer(t, transfer.Secret{})
	l := ts.st.AcquireLease("peer:1", 0, nil, time.Minute)
	defer l.Release()
	a := get(t, srv, http.MethodGet, "/v1/transfers", "")
	var st server.TransfersStatus
	decodeJSON(t, a.body, &st)
	if a.status != 200 || len(st.Leases) != 1 || st.Leases[0].Peer != "peer:1" || st.Sends == nil || st.Join != nil {
		t.Fatalf("%d %s", a.status, a.body)
	}
	// The rest of the API is still there.
	if a := get(t, srv, http.MethodPut, "/v1/kv/k", "v"); a.status != 200 {
		t.Fatalf("put through the wrapper: %d %s", a.status, a.body)
	}
	// Sending needs the secret.
	for _, r := range [][2]string{{http.MethodPost, "/v1/transfer/send"}, {http.MethodGet, "/v1/transfer/stream"}} {
		a := get(t, srv, r[0], r[1], `{"to": "127.0.0.1:1"}`)
		if a.status != http.StatusServiceUnavailable || !strings.Contains(a.errorMessage(t), "--secret-file") {
			t.Errorf("%s %s without a secret: %d %s", r[0], r[1], a.status, a.body)
		}
	}
	if a := get(t, srv, http.MethodDelete, "/v1/transfers", ""); a.status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /v1/transfers: %d", a.status)
	}
}

func TestTransferSendJob(t *testing.T) {
	ts, srv := newTransferServer(t, transferSecret)
	ts.mustPut("k", "v")
	if a := get(t, srv, http.MethodPost, "/v1/transfer/send", `{"to": ""}`); a.status != http.StatusBadRequest {
		t.Fatalf("a send without a receiver: %d %s", a.status, a.body)
	}
	// A receiver on loopback, into a fresh directory.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	recvd := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, err = transfer.Receive(context.Background(), c, transfer.ReceiveOptions{Dir: dir, Secret: transferSecret})
			c.Close()
		}
		recvd <- err
	}()
	a := get(t, srv, http.MethodPost, "/v1/transfer/send", `{"to": "`+ln.Addr().String()+`"}`)
	if a.status != http.StatusAccepted {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if err := <-recvd; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st server.TransfersStatus
		decodeJSON(t, get(t, srv, http.MethodGet, "/v1/transfers", "").body, &st)
		if len(st.Sends) == 1 && st.Sends[0].State == server.JobDone && st.Sends[0].Result.Applied == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the send never finished: %+v", st.Sends[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTransferStream(t *testing.T) {
	ts, srv := newTransferServer(t, transferSecret)
	ts.mustPut("k", "v")
	a := get(t, srv, http.MethodGet, "/v1/transfer/stream", "")
	rep, err := transfer.VerifyStream(bytes.NewReader(a.body), "body", transfer.VerifyOptions{Secret: transferSecret})
	if a.status != 200 || err != nil || !rep.OK() || rep.Snapshot.Index != 1 {
		t.Fatalf("%d: %+v %v", a.status, rep, err)
	}
}

func TestSyncingAndReplica(t *testing.T) {
	js := &server.JoinStatus{Source: "src:7071", Phase: transfer.PhaseSnapshot, Progress: transfer.Progress{Chunks: 10, ChunksDone: 3}}
	syncing := httptest.NewServer(server.Syncing(func() *server.JoinStatus { return js }))
	defer syncing.Close()
	a := get(t, syncing, http.MethodGet, "/v1/status", "")
	if a.status != 200 || !strings.Contains(string(a.body), `"syncing":true`) || !strings.Contains(string(a.body), `"chunks_done":3`) {
		t.Fatalf("status while syncing: %d %s", a.status, a.body)
	}
	a = get(t, syncing, http.MethodGet, "/v1/kv/k", "")
	if a.status != http.StatusServiceUnavailable || !strings.HasPrefix(a.errorMessage(t), "syncing: ") || a.header.Get("Retry-After") == "" {
		t.Fatalf("a read while syncing: %d %s", a.status, a.body)
	}

	st, err := store.Open(store.Options{Dir: t.TempDir(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep := httptest.NewServer(server.ReadReplica(server.New(st, server.Options{}), "src:7071"))
	defer rep.Close()
	for _, r := range [][3]string{{http.MethodPut, "/v1/kv/k", "v"}, {http.MethodDelete, "/v1/kv/k", ""}, {http.MethodPost, "/v1/txn", `{"ops":[]}`}} {
		a := get(t, rep, r[0], r[1], r[2])
		if a.status != http.StatusForbidden || !strings.Contains(a.errorMessage(t), "read replica of src:7071") {
			t.Errorf("%s %s on a replica: %d %s", r[0], r[1], a.status, a.body)
		}
	}
	if a := get(t, rep, http.MethodGet, "/v1/kv/k", ""); a.status != http.StatusNotFound {
		t.Errorf("a read on a replica: %d", a.status)
	}
}

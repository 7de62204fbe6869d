package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	xferpkg "github.com/kvtool/kvtool/transfer"
	"github.com/kvtool/kvtool/vfs"
)

const cliSecret = "the CLI tests' shared secret...."

// background is a kvtool invocation running in a goroutine.
type background struct {
	stdout, stderr *lockedBuffer
	code           chan int
	cancel         context.CancelFunc
}

// startKvtool runs kvtool args in the background with stdin.
func startKvtool(t *testing.T, stdin io.Reader, args ...string) *background {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, code: make(chan int, 1), cancel: cancel}
	go func() {
		b.code <- execute(ctx, append([]string{"kvtool"}, args...), env{stdin: stdin, stdout: b.stdout, stderr: b.stderr, fs: vfs.Default})
	}()
	t.Cleanup(func() { cancel(); <-b.code; b.code <- -1 })
	return b
}

// wait returns the exit code.
func (b *background) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-b.code:
		b.code <- code
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("kvtool did not finish:\n%s\n%s", b.stdout, b.stderr)
		return -1
	}
}

// line waits for line n of stdout (a JSON line) and decodes it into v.
func (b *background) line(t *testing.T, n int, v any) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		lines := strings.Split(b.stdout.String(), "\n")
		if len(lines) > n+1 || len(lines) == n+1 && json.Valid([]byte(lines[n])) {
			mustJSON(t, lines[n], v)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line %d in stdout:\n%s\nstderr:\n%s", n, b.stdout, b.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sourceDir makes a data directory holding n keys with random values
// (so the checkpoint is many 4 KiB chunks) and returns it with its state.
func sourceDir(t *testing.T, n int) (string, uint64, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	st, err := store.Open(store.Options{Dir: dir, Create: true, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := rand.New(rand.NewPCG(uint64(n), 3))
	txn := &store.Txn{}
	for i := 0; i < n; i++ {
		v := make([]byte, 100)
		for j := range v {
			v[j] = byte('a' + r.IntN(26))
		}
		txn.Ops = append(txn.Ops, store.Op{Kind: store.OpPut, Key: fmt.Sprintf("k%05d", i), Value: v})
	}
	if _, err := st.Commit(context.Background(), txn); err != nil {
		t.Fatal(err)
	}
	snap := st.Snapshot()
	return dir, snap.Index(), format.FormatStateHash(snap.Hash())
}

// startRecv starts transfer recv --listen on a free port and returns it
// with the address it listens on.
func startRecv(t *testing.T, dst string, args ...string) (*background, string) {
	t.Helper()
	r := startKvtool(t, nil, append([]string{"transfer", "recv", "--listen", "127.0.0.1:0", "--data", dst, "--json"}, args...)...)
	var l recvListeningJSON
	r.line(t, 0, &l)
	return r, l.ListenAddr
}

func TestTransferSendRecv(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	src, idx, hash := sourceDir(t, 2000)
	dst := filepath.Join(t.TempDir(), "dst")
	r, addr := startRecv(t, dst)
	out, errOut, code := run(t, "transfer", "send", "--data", src, "--to", addr, "--chunk-size", "4KiB", "--json")
	mustCode(t, code, exitOK, out, errOut)
	var sent sentJSON
	mustJSON(t, out, &sent)
	if sent.Applied != idx || sent.Chunks < 10 || sent.ChunkBytes != sent.Size {
		t.Fatalf("send printed %+v", sent)
	}
	mustCode(t, r.wait(t), exitOK, r.stdout.String(), r.stderr.String())
	var got receivedJSON
	r.line(t, 1, &got)
	if got.Event != "received" || !got.CutOver || got.Applied != idx || got.StateHash != hash {
		t.Fatalf("recv printed %+v, want index %d hash %s", got, idx, hash)
	}
	if out, _ := kvMust(t, exitOK, "", "get", "--data", dst, "k01999"); len(out) != 100 {
		t.Fatalf("get on the received directory: %q", out)
	}
	if _, err := os.Stat(filepath.Join(src, format.TransferDir, format.XferSendDir)); !os.IsNotExist(err) {
		t.Errorf("the send checkpoint was kept after a confirmed transfer: %v", err)
	}
}

func TestTransferOneWay(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	src, idx, hash := sourceDir(t, 500)
	stream, errOut, code := run(t, "transfer", "send", "--data", src, "--to", "-")
	mustCode(t, code, exitOK, "(the stream)", errOut)
	if !strings.Contains(errOut, "one-way stream") {
		t.Errorf("stderr %q does not describe the stream", errOut)
	}
	file := filepath.Join(t.TempDir(), "s.xfer")
	if err := os.WriteFile(file, []byte(stream), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "transfer", "verify", "--json", file)
	mustCode(t, code, exitOK, out, errOut)
	var rep streamReportJSON
	mustJSON(t, out, &rep)
	if !rep.OK || !rep.MACChecked || !rep.CheckpointChecked || rep.ChunksOK != rep.Chunks {
		t.Fatalf("verify: %s", out)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	out, errOut, code = kvRun(t, stream, "transfer", "recv", "--from", "-", "--data", dst, "--json")
	mustCode(t, code, exitOK, out, errOut)
	var got receivedJSON
	mustJSON(t, out, &got)
	if got.Applied != idx || got.StateHash != hash {
		t.Fatalf("received %+v, want %d %s", got, idx, hash)
	}

	// A damaged stream: verify names the offset and exits 3, recv refuses
	// it with 3 and installs nothing; verify changed nothing.
	bad := []byte(stream)
	bad[len(bad)/2] ^= 0x20
	if err := os.WriteFile(file, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = run(t, "transfer", "verify", file)
	mustCode(t, code, exitDamage, out, errOut)
	if !strings.Contains(out, "s.xfer: offset ") || !strings.Contains(errOut, "problem") {
		t.Errorf("verify output:\n%s\n%s", out, errOut)
	}
	if b, _ := os.ReadFile(file); !bytes.Equal(b, bad) {
		t.Error("verify changed the file")
	}
	dst2 := filepath.Join(t.TempDir(), "dst2")
	out, errOut, code = kvRun(t, string(bad), "transfer", "recv", "--from", "-", "--data", dst2)
	mustCode(t, code, exitDamage, out, errOut)
	if _, err := os.Stat(filepath.Join(dst2, format.ManifestName)); err == nil {
		t.Error("a damaged stream was installed")
	}
}

// TestTransferInterrupted stops a slow send halfway as Ctrl-C does: the
// sender exits 130 and the receiver 1, both saying the transfer can be
// resumed, status shows the partial snapshot, and running both again
// resumes it.
func TestTransferInterrupted(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	src, idx, hash := sourceDir(t, 2000)
	dst := filepath.Join(t.TempDir(), "dst")
	r, addr := startRecv(t, dst, "--window", "16KiB")
	// The sender reaches the receiver through a proxy that passes its
	// first 48 KiB and holds the rest back, so the cancel below lands with
	// some chunks held and others missing however loaded the machine is.
	s := startKvtool(t, nil, "transfer", "send", "--data", src, "--to", stallingProxy(t, addr, 48<<10), "--chunk-size", "4KiB")
	waitReceiving(t, dst, s)
	s.cancel()
	mustCode(t, s.wait(t), exitInterrupted, s.stdout.String(), s.stderr.String())
	mustCode(t, r.wait(t), exitFailure, r.stdout.String(), r.stderr.String())
	for _, b := range []*background{s, r} {
		if !strings.Contains(b.stderr.String(), "can be resumed") {
			t.Errorf("no resume hint:\n%s", b.stderr)
		}
	}
	out, errOut, code := run(t, "transfer", "status", "--data", dst, "--json")
	mustCode(t, code, exitOK, out, errOut)
	var ls struct {
		Receiving  bool   `json:"receiving"`
		ChunksDone uint64 `json:"chunks_done"`
		Chunks     uint64 `json:"chunks"`
	}
	mustJSON(t, out, &ls)
	if !ls.Receiving || ls.ChunksDone == 0 || ls.ChunksDone >= ls.Chunks {
		t.Fatalf("status after the interruption: %s", out)
	}

	r, addr = startRecv(t, dst)
	out, errOut, code = run(t, "transfer", "send", "--data", src, "--to", addr, "--chunk-size", "4KiB")
	mustCode(t, code, exitOK, out, errOut)
	mustCode(t, r.wait(t), exitOK, r.stdout.String(), r.stderr.String())
	var got receivedJSON
	r.line(t, 1, &got)
	if !got.Resumed || got.ResumeFrom == 0 || got.Applied != idx || got.StateHash != hash {
		t.Fatalf("the second run %+v, want a resume to %d %s", got, idx, hash)
	}
}

// waitReceiving waits until the receiver in dst holds at least one chunk
// of the snapshot as durable, or the sender b ended.
func waitReceiving(t *testing.T, dst string, b *background) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := xferpkg.ReadLocalStatus(vfs.Default, dst)
		if err == nil && st.Receiving && st.ChunksDone > 0 {
			return
		}
		select {
		case code := <-b.code:
			b.code <- code
			t.Fatalf("the sender ended (exit %d) before the receiver held a chunk:\n%s\n%s", code, b.stdout, b.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver in %s held no chunk after 60s (status %+v, %v)", dst, st, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTransferCancelledBeforeConnect defines what a sender cancelled
// before it ever connected does: it exits 130 or 1 without a
// resume hint, and the receiver, which never saw it, keeps listening and
// writes nothing.
func TestTransferCancelledBeforeConnect(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	src, idx, hash := sourceDir(t, 200)
	dst := filepath.Join(t.TempDir(), "dst")
	r, addr := startRecv(t, dst)
	// A sender to a port nothing listens on, cancelled: it must stop.
	dead := refusedAddr(t)
	s := startKvtool(t, nil, "transfer", "send", "--data", src, "--to", dead)
	s.cancel()
	if code := s.wait(t); code == exitOK {
		t.Fatalf("a cancelled sender exited 0:\n%s", s.stderr)
	}
	select {
	case code := <-r.code:
		r.code <- code
		t.Fatalf("the receiver exited %d with no sender:\n%s", code, r.stderr)
	default:
	}
	if st, err := xferpkg.ReadLocalStatus(vfs.Default, dst); err == nil && (st.Receiving || st.Complete) {
		t.Fatalf("the receiver wrote a transfer with no sender: %+v", st)
	}
	// The receiver still takes a sender that comes later.
	out, errOut, code := run(t, "transfer", "send", "--data", src, "--to", addr)
	mustCode(t, code, exitOK, out, errOut)
	mustCode(t, r.wait(t), exitOK, r.stdout.String(), r.stderr.String())
	var got receivedJSON
	r.line(t, 1, &got)
	if got.Applied != idx || got.StateHash != hash {
		t.Fatalf("received %+v, want %d %s", got, idx, hash)
	}
}

// stallingProxy forwards one connection to target, passing everything the
// target sends back but only the first limit bytes the client sends; the
// rest it reads and drops, so the client stalls for credit. When either
// side closes, it closes both.
func stallingProxy(t *testing.T, target string, limit int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		u, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer u.Close()
		go func() { io.Copy(c, u); c.Close() }()
		if _, err := io.CopyN(u, c, limit); err == nil {
			io.Copy(io.Discard, c)
		}
	}()
	return ln.Addr().String()
}

func TestTransferWrongSecret(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	src, _, _ := sourceDir(t, 10)
	root := t.TempDir()
	dst := filepath.Join(root, "dst")
	r, addr := startRecv(t, dst)
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("another secret, long enough....\n"), 0o600)
	out, errOut, code := run(t, "transfer", "send", "--data", src, "--to", addr, "--secret-file", secret)
	mustCode(t, code, exitFailure, out, errOut)
	if !strings.Contains(errOut, "same secret") || strings.Contains(errOut, "another secret") || strings.Contains(errOut, cliSecret) {
		t.Errorf("stderr:\n%s", errOut)
	}
	mustCode(t, r.wait(t), exitFailure, r.stdout.String(), r.stderr.String())
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("the receiver created %s for a sender with the wrong secret (%v)", dst, err)
	}
}

func TestTransferUsage(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	data := t.TempDir()
	for _, args := range [][]string{
		{"transfer", "send", "--data", data},
		{"transfer", "send", "--data", data, "--to", "h:1", "--chunk-size", "1KiB"},
		{"transfer", "send", "--data", data, "--to", "h:1", "--addr", "h:2"},
		{"transfer", "recv", "--data", data},
		{"transfer", "recv", "--data", data, "--from", "file"},
		{"transfer", "recv", "--data", data, "--from", "-", "--listen", "h:1"},
		{"transfer", "verify"},
		{"transfer", "status", "extra"},
	} {
		out, errOut, code := run(t, args...)
		mustCode(t, code, exitUsage, out, errOut)
	}
	t.Setenv("KVTOOL_SECRET", "short")
	out, errOut, code := run(t, "transfer", "send", "--data", data, "--to", "h:1")
	mustCode(t, code, exitUsage, out, errOut)
	if !strings.Contains(errOut, "KVTOOL_SECRET") {
		t.Errorf("stderr %q", errOut)
	}
}

// transferAddr reads the transfer listener's address from serve's second
// line.
func transferAddr(t *testing.T, s *inProcessServer) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		lines := strings.Split(s.stdout.String(), "\n")
		if len(lines) > 2 || len(lines) == 2 && json.Valid([]byte(lines[1])) {
			var l struct {
				TransferAddr string `json:"transfer_addr"`
			}
			mustJSON(t, lines[1], &l)
			return l.TransferAddr
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve printed no transfer address:\n%s", s.stdout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestServeJoin starts a source with --transfer-listen and a node with
// --join: the node catches up, follows new writes, refuses its own, and
// the source shows the node's lease.
func TestServeJoin(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	s := startServe(t, "--data", t.TempDir(), "--transfer-listen", "127.0.0.1:0")
	xaddr := transferAddr(t, s)
	c := client.New(s.addr)
	defer c.Close()
	ctx := t.Context()
	for i := 0; i < 100; i++ {
		if _, err := c.Put(ctx, fmt.Sprintf("k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	j := startServe(t, "--data", filepath.Join(t.TempDir(), "replica"), "--join", xaddr)
	jc := client.New(j.addr)
	defer jc.Close()
	sameHash := func() bool {
		a, err1 := c.Hash(ctx)
		b, err2 := jc.Hash(ctx)
		return err1 == nil && err2 == nil && *a == *b
	}
	waitUntil(t, "the replica to catch up", sameHash)
	if _, err := c.Put(ctx, "later", []byte("x")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the replica to follow", sameHash)
	if _, err := jc.Put(ctx, "mine", []byte("x")); err == nil || !strings.Contains(err.Error(), "read replica") {
		t.Fatalf("a write on the replica: %v", err)
	}
	out, errOut, code := run(t, "transfer", "status", "--addr", s.addr, "--json")
	mustCode(t, code, exitOK, out, errOut)
	var st server.TransfersStatus
	mustJSON(t, out, &st)
	if len(st.Leases) != 1 || st.Leases[0].State != store.LeaseActive {
		t.Fatalf("the source's leases: %s", out)
	}
	out, errOut, code = run(t, "transfer", "status", "--addr", j.addr, "--json")
	mustCode(t, code, exitOK, out, errOut)
	mustJSON(t, out, &st)
	if st.Join == nil || !st.Join.CutOver || st.Join.Source != xaddr {
		t.Fatalf("the replica's join: %s", out)
	}
}

// TestTransferSendViaServer asks a running server to send, and to stream.
func TestTransferSendViaServer(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	s := startServe(t, "--data", t.TempDir())
	c := client.New(s.addr)
	defer c.Close()
	for i := 0; i < 50; i++ {
		if _, err := c.Put(t.Context(), fmt.Sprintf("k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	want, err := c.Hash(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	r, addr := startRecv(t, dst)
	out, errOut, code := run(t, "transfer", "send", "--addr", s.addr, "--to", addr, "--json")
	mustCode(t, code, exitOK, out, errOut)
	mustCode(t, r.wait(t), exitOK, r.stdout.String(), r.stderr.String())
	var got receivedJSON
	r.line(t, 1, &got)
	if got.Applied != want.AppliedIndex || got.StateHash != want.StateHash {
		t.Fatalf("received %+v, the server has %+v", got, want)
	}
	stream, errOut, code := run(t, "transfer", "send", "--addr", s.addr, "--to", "-")
	mustCode(t, code, exitOK, "(stream)", errOut)
	out, errOut, code = kvRun(t, stream, "transfer", "verify", "-")
	mustCode(t, code, exitOK, out, errOut)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTransferTLS sends over mutual TLS: the listener presents a
// certificate the sender checks against the CA, and requires the
// sender's, signed by the same CA. A sender without one is refused.
func TestTransferTLS(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	pki := newTestPKI(t)
	src, idx, _ := sourceDir(t, 100)
	dst := filepath.Join(t.TempDir(), "dst")
	r, addr := startRecv(t, dst, "--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-ca", pki.ca)
	out, errOut, code := run(t, "transfer", "send", "--data", src, "--to", addr,
		"--tls-ca", pki.ca, "--tls-cert", pki.clientCert, "--tls-key", pki.clientKey, "--json")
	mustCode(t, code, exitOK, out, errOut)
	mustCode(t, r.wait(t), exitOK, r.stdout.String(), r.stderr.String())
	var got receivedJSON
	r.line(t, 1, &got)
	if got.Applied != idx {
		t.Fatalf("received %+v", got)
	}

	r, addr = startRecv(t, filepath.Join(t.TempDir(), "dst2"), "--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-ca", pki.ca)
	out, errOut, code = run(t, "transfer", "send", "--data", src, "--to", addr, "--tls-ca", pki.ca)
	mustCode(t, code, exitFailure, out, errOut)
	mustCode(t, r.wait(t), exitFailure, r.stdout.String(), r.stderr.String())
}

// testPKI is a CA and a server and a client certificate it signed, as PEM
// files.
type testPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kvtool test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(crand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p := testPKI{ca: writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(crand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+".key", "EC PRIVATE KEY", kder)
	}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

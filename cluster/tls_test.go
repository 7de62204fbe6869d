package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// testCA is a certificate authority made in memory for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// member returns a TLS configuration for a member on 127.0.0.1: a
// certificate of this CA for both ends of a connection, and the CA as the
// only one trusted.
func (ca *testCA) member(t testing.TB, name string) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, RootCAs: ca.pool}
}

// TestTCPMutualTLS: members with certificates of the cluster's CA talk,
// and tell each other their names and API addresses; a dialer without a
// certificate, with one of another CA, or without TLS at all gets nothing
// through, and the acceptor says why.
func TestTCPMutualTLS(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	t.Run("valid", func(t *testing.T) {
		t1, t2, rec := pair(t, func(c1, c2 *TCPConfig) {
			c1.TLS, c2.TLS = ca.member(t, "n1"), ca.member(t, "n2")
			c1.Name, c1.APIAddr = "n1", "127.0.0.1:7070"
		})
		for range 10 {
			t1.Send([]*pb.Message{heartbeat(1, 2)})
		}
		waitFor(t, "10 messages over TLS", func() bool { return rec.count() == 10 })
		peers, rej, last := t2.Peers()
		if p := peers[1]; p.Name != "n1" || p.APIAddr != "127.0.0.1:7070" || rej != 0 {
			t.Fatalf("acceptor's view of the dialer: %+v, %d refused (%s)", p, rej, last)
		}
	})
	other := newTestCA(t, "another CA")
	cases := []struct {
		name  string
		tweak func(c1 *TCPConfig)
		want  string // in the acceptor's reason (Go's client sends no certificate the acceptor's CAs did not sign)
	}{
		{"another CA", func(c1 *TCPConfig) { c1.TLS = other.member(t, "n1"); c1.TLS.RootCAs = ca.pool }, "certificate"},
		{"no TLS", func(c1 *TCPConfig) { c1.TLS = nil }, "not look like a TLS handshake"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t1, t2, rec := pair(t, func(c1, c2 *TCPConfig) {
				c2.TLS = ca.member(t, "n2")
				tc.tweak(c1)
			})
			t1.Send([]*pb.Message{heartbeat(1, 2)})
			waitFor(t, "the acceptor to refuse the dialer", func() bool {
				t1.Send([]*pb.Message{heartbeat(1, 2)})
				_, rej, last := t2.Peers()
				return rej > 0 && strings.Contains(last, tc.want)
			})
			if n := rec.count(); n != 0 {
				t.Fatalf("%d messages got through", n)
			}
		})
	}
	t.Run("no client certificate", func(t *testing.T) {
		_, t2, rec := pair(t, func(c1, c2 *TCPConfig) { c1.TLS, c2.TLS = ca.member(t, "n1"), ca.member(t, "n2") })
		conn, err := tls.Dial("tcp", t2.Addr().String(), &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1"})
		if err == nil {
			defer conn.Close()
			h := hello{clusterID: 9, from: 1, to: 2}
			conn.Write(h.encode())
			conn.Read(make([]byte, 1)) // TLS 1.3: the refusal comes with the first read
		}
		waitFor(t, "the acceptor to refuse the dialer", func() bool {
			_, rej, last := t2.Peers()
			return rej > 0 && strings.Contains(last, "didn't provide a certificate")
		})
		if n := rec.count(); n != 0 {
			t.Fatalf("%d messages got through", n)
		}
	})
}

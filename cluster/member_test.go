package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// startMembers starts a cluster of members n1..nN with StartMember, each
// on its own in-memory file system, over TCP on loopback.
func startMembers(t *testing.T, size int) []*Member {
	t.Helper()
	spec := map[string]string{}
	lns := map[string]net.Listener{}
	for i := 1; i <= size; i++ {
		name := fmt.Sprint("n", i)
		lns[name] = listen(t)
		spec[name] = lns[name].Addr().String()
	}
	var ms []*Member
	for i := 1; i <= size; i++ {
		name := fmt.Sprint("n", i)
		fs := vfs.NewMem()
		st, err := store.Open(store.Options{FS: fs, Dir: "/data", Create: true, Replica: true, Shards: 4, SegmentSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		m, err := StartMember(MemberConfig{
			Name: name, Members: spec, PeerListener: lns[name], APIAddr: "api-of-" + name, Secret: testSecret,
			Node: Config{FS: fs, Dir: "/data", Store: st, TickInterval: 10 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(); st.Close() })
		ms = append(ms, m)
	}
	return ms
}

// memberLeader waits until every member knows the same leader and
// returns its index in ms.
func memberLeader(t *testing.T, ms []*Member) int {
	t.Helper()
	lead := -1
	waitFor(t, "a leader every member knows", func() bool {
		l, _ := ms[0].Leader()
		for _, m := range ms {
			if ml, _ := m.Leader(); ml != l || l == 0 {
				return false
			}
		}
		for i, m := range ms {
			if m.ID() == l {
				lead = i
			}
		}
		return true
	})
	return lead
}

// TestMemberStatusAndTransfer: members started with StartMember name each
// other, know every member's peer and API address, measure round trips
// as leader, and hand leadership to the member asked for, from any member.
func TestMemberStatusAndTransfer(t *testing.T) {
	ms := startMembers(t, 3)
	lead := memberLeader(t, ms)
	if _, err := ms[(lead+1)%3].Propose(t.Context(), Request{Txn: put("k", "v")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every member to know every address and the leader to time its heartbeats", func() bool {
		for i, m := range ms {
			st := m.Status()
			if st.Name != m.Name() || len(st.Members) != 3 {
				return false
			}
			for _, mm := range st.Members {
				if mm.Name == "" || mm.PeerAddr == "" || mm.APIAddr != "api-of-"+mm.Name || !mm.Connected || mm.Self != (mm.ID == m.ID()) {
					return false
				}
				if i == lead && !mm.Self && mm.RoundTrip <= 0 {
					return false
				}
			}
		}
		return true
	})
	from, to := ms[(lead+1)%3], ms[(lead+2)%3] // a follower asks for the other follower
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := from.TransferLeader(ctx, to.ID()); err != nil {
		t.Fatalf("transfer from %s to %s: %v", from.Name(), to.Name(), err)
	}
	waitFor(t, "the new leader to lead", func() bool { return to.Status().Role == "leader" })
	if err := from.TransferLeader(ctx, MemberID("n9")); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("transfer to a stranger: %v, want ErrUnknownMember", err)
	}
	if _, err := ms[lead].Propose(ctx, Request{Txn: put("k", "w")}); err != nil {
		t.Fatalf("write after the transfer: %v", err)
	}
}

func TestParseMembers(t *testing.T) {
	got, err := ParseMembers("n1=127.0.0.1:7080, n2=127.0.0.1:7081,n-3.x_y=host:7082")
	if err != nil || len(got) != 3 || got["n1"] != "127.0.0.1:7080" || got["n-3.x_y"] != "host:7082" {
		t.Fatalf("ParseMembers: %v, %v", got, err)
	}
	for spec, want := range map[string]string{
		"":                                    "NAME=HOST:PORT",
		"n1":                                  "NAME=HOST:PORT",
		"n1=127.0.0.1":                        "HOST:PORT",
		"=127.0.0.1:1":                        "member name",
		"n 1=127.0.0.1:1":                     "member name",
		"n1=127.0.0.1:1,n1=127.0.0.1:2":       "twice",
		"n1=127.0.0.1:1,n2=127.0.0.1:1":       "same peer address",
		strings.Repeat("n", 65) + "=h:1":      "member name",
		"n1=127.0.0.1:1,,n2=127.0.0.1:2":      "NAME=HOST:PORT",
		"n1=127.0.0.1:1,n2=127.0.0.1:2,n3=h:": "",
	} {
		_, err := ParseMembers(spec)
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", spec, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", spec, err, want)
		}
	}
	if MemberID("n1") == MemberID("n2") || MemberID("n1") == 0 || ClusterIDOf([]string{"b", "a"}, "") != ClusterIDOf([]string{"a", "b"}, "") {
		t.Fatal("IDs")
	}
	// The token tells apart clusters with the same member names; without
	// one the ID is what every earlier build derived (a cluster
	// bootstrapped by one still matches).
	names := []string{"n1", "n2", "n3"}
	if ClusterIDOf(names, "prod") == ClusterIDOf(names, "staging") || ClusterIDOf(names, "prod") == ClusterIDOf(names, "") {
		t.Fatal("a cluster token does not change the cluster ID")
	}
	if got := ClusterIDOf(names, ""); got != 0x785b6c4de7d4ffe7 {
		t.Fatalf("cluster ID of n1, n2, n3 without a token: %x, want 785b6c4de7d4ffe7 (as earlier builds derived it)", got)
	}
}

// TestStartMemberRefuses: a member that is not in --cluster gets a clear
// error, and its listener is closed.
func TestStartMemberRefuses(t *testing.T) {
	ln := listen(t)
	_, err := StartMember(MemberConfig{Name: "n4", Members: map[string]string{"n1": "127.0.0.1:1"}, PeerListener: ln, Secret: testSecret})
	if err == nil || !strings.Contains(err.Error(), "n4") {
		t.Fatalf("StartMember of a stranger: %v", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the listener is still open: %v", err)
	}
}

// TestClusterTokenFencesSameNames: two clusters whose members have the same
// names and secret, bootstrapped with different --cluster-token values,
// are strangers: members that reach each other (a port typed into the
// wrong cluster's --cluster) get no message through, and say why; with the
// same token (or none) they form one cluster.
func TestClusterTokenFencesSameNames(t *testing.T) {
	start := func(name string, members map[string]string, ln net.Listener, token string) *Member {
		fs := vfs.NewMem()
		st, err := store.Open(store.Options{FS: fs, Dir: "/data", Create: true, Replica: true, Shards: 4, SegmentSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		m, err := StartMember(MemberConfig{Name: name, Members: members, PeerListener: ln, Secret: testSecret, Token: token,
			Node: Config{FS: fs, Dir: "/data", Store: st, TickInterval: 10 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(); st.Close() })
		return m
	}
	for _, tc := range []struct {
		name       string
		tokA, tokB string
		fenced     bool
	}{{"different tokens", "prod", "staging", true}, {"same token", "prod", "prod", false}} {
		t.Run(tc.name, func(t *testing.T) {
			// A's n1 and B's n2 reach each other at the addresses their
			// --cluster give (a port typed into the wrong cluster's list).
			la, lb := listen(t), listen(t)
			members := map[string]string{"n1": la.Addr().String(), "n2": lb.Addr().String()}
			b := start("n2", members, lb, tc.tokB)
			a := start("n1", members, la, tc.tokA)
			if tc.fenced {
				waitFor(t, "B's n2 to refuse A's n1", func() bool {
					_, rej, last := b.Transport().Peers()
					return rej > 0 && strings.Contains(last, "cluster")
				})
				return
			}
			waitFor(t, "A's n1 and B's n2 to elect a leader together", func() bool {
				la, _ := a.Leader()
				lb, _ := b.Leader()
				return la != 0 && la == lb
			})
		})
	}
}

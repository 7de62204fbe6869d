package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/cluster"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/loopport"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// TestVerifyMemberRaftLog runs a one-member cluster, stops it, and flips a
// byte in the middle of its raft log: `kvtool verify` must name the raft
// segment and the offset (exit 3), and the member's start must be refused
// with exit 3 and a hint to rebuild it, not to check its flags; so must a
// joiner's whose JOIN record is damaged.
func TestVerifyMemberRaftLog(t *testing.T) {
	data, args, peer := oneMemberWith(t, 40, strings.Repeat("v", 100))
	if stdout, stderr, code := kvRun(t, "", "verify", "--data", data); code != exitOK || !strings.Contains(stdout, "raft-segment") {
		t.Fatalf("verify of the intact member: exit %d, want 0 and the raft log among the files checked\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code := kvRun(t, "", "inspect", "--json", "--no-state", "--data", data)
	var insp struct {
		Raft *struct {
			NodeID       string   `json:"node_id"`
			Term         uint64   `json:"term"`
			Voters       []string `json:"voters"`
			LogLastIndex uint64   `json:"log_last_index"`
		} `json:"raft"`
	}
	if code != exitOK || json.Unmarshal([]byte(stdout), &insp) != nil || insp.Raft == nil || insp.Raft.Term == 0 ||
		len(insp.Raft.Voters) != 1 || insp.Raft.Voters[0] != insp.Raft.NodeID || insp.Raft.LogLastIndex < 40 {
		t.Fatalf("inspect --json of the member: exit %d, want its raft term, itself the one voter and a log of at least 40 entries\n%s%s", code, stdout, stderr)
	}

	raftDir := filepath.Join(data, format.RaftDir)
	rep, err := segment.Verify(vfs.Default, raftDir, segment.VerifyOptions{})
	if err != nil || len(rep.Segments) == 0 {
		t.Fatalf("raft log: %v", err)
	}
	seg := rep.Segments[0]
	flipByte(t, seg.Path, seg.Size/2)

	stdout, stderr, code = kvRun(t, "", "verify", "--data", data)
	if code != exitDamage || !strings.Contains(stdout, seg.Path) {
		t.Fatalf("verify of the damaged raft log: exit %d, want %d naming %s\n%s%s", code, exitDamage, seg.Path, stdout, stderr)
	}
	if !strings.Contains(stderr, "rebuild it from its peers") {
		t.Errorf("verify's hint for a damaged member does not say to rebuild it from its peers:\n%s", stderr)
	}
	stdout, stderr, code = kvRun(t, "", append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	if code != exitDamage || !strings.Contains(stderr, seg.Path) || !strings.Contains(stderr, "rebuild the member from its peers") {
		t.Fatalf("serve on the damaged raft log: exit %d, want %d naming %s with a hint to rebuild the member\n%s%s", code, exitDamage, seg.Path, stdout, stderr)
	}

	// A joiner whose JOIN record is damaged: refused the same way, before
	// it asks anyone (the member address given is never dialled).
	joiner := filepath.Join(t.TempDir(), "n4")
	if _, stderr, code := kvRun(t, "", "put", "--init", "--data", joiner, "k", "v"); code != exitOK { // a store, as a joiner makes first
		t.Fatalf("create the joiner's store: exit %d: %s", code, stderr)
	}
	if err := cluster.WriteJoin(vfs.Default, joiner, cluster.JoinRecord{ClusterID: 7, Self: cluster.MemberRecord{Name: "n4", ID: 4, PeerAddr: peer}}); err != nil {
		t.Fatal(err)
	}
	flipByte(t, filepath.Join(joiner, format.RaftDir, cluster.JoinName), 40)
	if _, stderr, code := kvRun(t, "", "inspect", "--no-state", "--data", joiner); code != exitDamage || !strings.Contains(stderr, "JOIN") {
		t.Fatalf("inspect of a damaged JOIN: exit %d, want %d naming it\n%s", code, exitDamage, stderr)
	}
	stdout, stderr, code = kvRun(t, "", "serve", "--listen", "127.0.0.1:0", "--data", joiner, "--node", "n4", "--peer-listen", peer, "--join-cluster", "127.0.0.1:1")
	if code != exitDamage || !strings.Contains(stderr, "JOIN") || !strings.Contains(stderr, "rebuild the member from its peers") {
		t.Fatalf("serve --join-cluster on a damaged JOIN: exit %d, want %d naming it with a hint to rebuild the member\n%s%s", code, exitDamage, stdout, stderr)
	}
}

// TestInspectJoinerBeforeRaft: a joiner that recorded its JOIN and stopped
// before it first started raft (its peer listener could not bind, a crash)
// has no raft STATE yet: its start creates it. verify calls that a note,
// and inspect must not call it damage (exit 3) either: it shows the join.
func TestInspectJoinerBeforeRaft(t *testing.T) {
	data := filepath.Join(t.TempDir(), "n4")
	st, err := store.Open(store.Options{FS: vfs.Default, Dir: data, Create: true, Replica: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cluster.WriteJoin(vfs.Default, data, cluster.JoinRecord{ClusterID: 7, Self: cluster.MemberRecord{Name: "n4", ID: 4, PeerAddr: "127.0.0.1:1"}}); err != nil {
		t.Fatal(err)
	}
	if stdout, stderr, code := kvRun(t, "", "verify", "--data", data); code != exitOK {
		t.Fatalf("verify of a joiner before raft: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code := kvRun(t, "", "inspect", "--no-state", "--data", data)
	if code != exitOK || !strings.Contains(stdout, "as n4") {
		t.Fatalf("inspect of a joiner before raft: exit %d, want 0 showing the join\n%s%s", code, stdout, stderr)
	}
}

// TestServeMemberRaftLogBehind: a member whose raft log lost committed
// entries the store applied (its end cut off) is damage verify reports
// (coverage, exit 3); its start must be refused the same way, exit 3
// with the hint to rebuild it from its peers, not exit 1 with a hint to
// check its flags.
func TestServeMemberRaftLogBehind(t *testing.T) {
	data, args, _ := oneMemberWith(t, 20, "v")
	raftDir := filepath.Join(data, format.RaftDir)
	rep, err := segment.Verify(vfs.Default, raftDir, segment.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := segment.TruncateAfter(vfs.Default, raftDir, rep.LastIndex-10); err != nil {
		t.Fatal(err)
	}
	if stdout, stderr, code := kvRun(t, "", "verify", "--data", data); code != exitDamage || !strings.Contains(stdout, "coverage") {
		t.Fatalf("verify of a raft log behind the store: exit %d, want %d and a coverage fault\n%s%s", code, exitDamage, stdout, stderr)
	}
	stdout, stderr, code := kvRun(t, "", append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	if code != exitDamage || !strings.Contains(stderr, "rebuild the member from its peers") {
		t.Fatalf("serve on a raft log behind the store: exit %d, want %d with a hint to rebuild the member\n%s%s", code, exitDamage, stdout, stderr)
	}
}

// oneMemberWith runs a one-member cluster (serve --node n1 --cluster
// n1=PEER) on a new data directory, writes n keys with value val and stops
// it; it returns the directory, serve's arguments for it, and the peer
// address.
func oneMemberWith(t *testing.T, n int, val string) (data string, args []string, peer string) {
	t.Helper()
	t.Setenv("KVTOOL_SECRET", clusterTestSecret)
	peer, err := loopport.Free()
	if err != nil {
		t.Fatal(err)
	}
	data = filepath.Join(t.TempDir(), "n1")
	args = []string{"--data", data, "--node", "n1", "--cluster", "n1=" + peer}
	s := startServe(t, args...)
	for i := range n {
		if _, stderr, code := kvRun(t, "", "put", "--addr", s.addr, fmt.Sprintf("k%02d", i), val); code != exitOK {
			t.Fatalf("put: exit %d: %s", code, stderr)
		}
	}
	if code := s.shutdown(t); code != exitOK {
		t.Fatalf("serve: exit %d\n%s", code, s.stderr)
	}
	return data, args, peer
}

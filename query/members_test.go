package query

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// fakeCluster is a Cluster whose members a test sets.
type fakeCluster struct {
	members []Member
	err     error
	calls   int
}

func (f *fakeCluster) Members() ([]Member, error) {
	f.calls++
	return f.members, f.err
}

// The members table shows what the cluster reports, unknown numbers and
// empty texts as NULL; a single node and a data directory have no rows.
func TestMembersTable(t *testing.T) {
	st := openStore(t)
	put(t, st, "a", "1")
	fc := &fakeCluster{members: []Member{
		{Name: "n1", ID: 1, Role: "leader", PeerAddr: "127.0.0.1:7080", APIAddr: "127.0.0.1:7070", MatchIndex: 42, AppliedIndex: 42, Lag: 0},
		{Name: "n2", ID: 2, Role: "follower", PeerAddr: "127.0.0.1:7081", APIAddr: "127.0.0.1:7071", MatchIndex: 40, AppliedIndex: 39, Lag: 2},
		{Name: "", ID: 1 << 63, Role: "learner", PeerAddr: "127.0.0.1:7082", MatchIndex: -1, AppliedIndex: -1, Lag: -1},
	}}
	s, err := Open(context.Background(), Source{Dir: st.Dir(), Snapshot: st.Snapshot(), Cluster: fc}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := all(t, s, "SELECT * FROM members")
	want := []string{
		`"n1"|1|"leader"|"127.0.0.1:7080"|"127.0.0.1:7070"|42|42|0`,
		`"n2"|2|"follower"|"127.0.0.1:7081"|"127.0.0.1:7071"|40|39|2`,
		`NULL|-9223372036854775808|"learner"|"127.0.0.1:7082"|NULL|NULL|NULL|NULL`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("members:\n got %q\nwant %q", got, want)
	}
	// SQLite filters and joins the rows like any table's.
	if got := all(t, s, "SELECT name FROM members WHERE lag > 0 ORDER BY id"); !slices.Equal(got, []string{`"n2"`}) {
		t.Errorf("members behind: %q", got)
	}
	if got := all(t, s, `SELECT m.name, k.value FROM members AS m JOIN kv AS k ON k.key = 'a' WHERE m.role = 'leader'`); !slices.Equal(got, []string{`"n1"|"1"`}) {
		t.Errorf("members joined with kv: %q", got)
	}

	// The cluster's error is the query's.
	fc.err = errors.New("the node is stopped")
	if _, err := queryAll(s, "SELECT * FROM members"); err == nil || !strings.Contains(err.Error(), "the node is stopped") {
		t.Errorf("members when the cluster fails: %v", err)
	}

	// A single node, and a data directory, have no members.
	for name, s := range map[string]*Session{"single node": openSession(t, st, Options{}), "directory": openDir(t, st.Dir(), Options{})} {
		if got := all(t, s, "SELECT count(*) FROM members"); !slices.Equal(got, []string{"0"}) {
			t.Errorf("%s: members %q; want none", name, got)
		}
	}
}

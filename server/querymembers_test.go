package server_test

import (
	"testing"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/cluster"
)

// On a clustered node POST /v1/query's members table lists every member
// with the roles the node sees: every node answers three rows, exactly one
// of them the leader, each with its name, raft ID and addresses; the
// leader knows every match index and lag, a follower its own applied
// index and lag only.
func TestQueryMembersCluster(t *testing.T) {
	c := newHTTPCluster(t)
	c.leader()
	const q = `SELECT name, id, role, peer_addr, api_addr, match_index, applied_index, lag FROM members ORDER BY name`
	for _, on := range c.names {
		var rows [][]any
		leaders := 0
		// A node between leaders (an election on a loaded machine) names
		// none: ask again.
		waitUntil(t, "a members table naming one leader on "+on, func() bool {
			_, got, end, err := queryRows(t, c.client(on), client.QueryRequest{SQL: q})
			if err != nil || end.Error != "" {
				t.Fatalf("members on %s: %v %q", on, err, end.Error)
			}
			rows, leaders = got, 0
			for _, r := range rows {
				if r[2] == "leader" {
					leaders++
				}
			}
			return leaders == 1
		})
		if len(rows) != len(c.names) {
			t.Fatalf("members on %s: %d rows %v; want %d", on, len(rows), rows, len(c.names))
		}
		var leading bool // whether on is the leader, as it sees itself
		for i, r := range rows {
			if c.names[i] == on {
				leading = r[2] == "leader"
			}
		}
		for i, r := range rows {
			name := c.names[i]
			if r[0] != name || r[1] != int64(cluster.MemberID(name)) || r[3] != c.spec[name] || r[4] != c.api[name] {
				t.Errorf("members on %s: row %v; want %s id %d peer %s api %s", on, r, name, int64(cluster.MemberID(name)), c.spec[name], c.api[name])
			}
			if r[2] != "leader" && r[2] != "follower" {
				t.Errorf("members on %s: %s has role %v", on, name, r[2])
			}
			self := name == on
			if (r[6] != nil) != self {
				t.Errorf("members on %s: %s applied index %v (known only for the node itself)", on, name, r[6])
			}
			if (r[5] != nil) != leading || (r[7] != nil) != (leading || self) {
				t.Errorf("members on %s: %s match %v lag %v (the leader knows every one, a follower its own lag)", on, name, r[5], r[7])
			}
		}
	}
}

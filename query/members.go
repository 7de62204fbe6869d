package query

import (
	"fmt"

	"modernc.org/sqlite/vtab"
)

// members is the cluster's members as the serving node sees them, one row
// per member in the order Cluster.Members gives them:
//
//	members(name TEXT, id INTEGER, role TEXT, peer_addr TEXT, api_addr TEXT,
//	        match_index INTEGER, applied_index INTEGER, lag INTEGER)
//
// On a single node (no Source.Cluster), and from a data directory, the
// table is empty: a store that is not clustered has no members, not one.
// An index or lag the node does not know (a follower does not track the
// others' progress) is NULL, an empty name or address too. The rows are
// asked for when a scan starts. Nothing is pushed down (see list.go).
var membersDef = listDef("members",
	"CREATE TABLE x(name TEXT, id INTEGER, role TEXT, peer_addr TEXT, api_addr TEXT, match_index INTEGER, applied_index INTEGER, lag INTEGER)",
	memberRows)

// Cluster is what the members table reads: a clustered node's view of the
// cluster. Members is called once per scan of the table, from the query's
// goroutine, and must not block on the cluster for long (a status the node
// keeps is what it should return).
type Cluster interface {
	Members() ([]Member, error)
}

// Member is one row of the members table.
type Member struct {
	Name     string // the member's name, "" if it has none
	ID       uint64 // its raft id
	Role     string // leader, follower, learner, candidate, ...
	PeerAddr string // where peers reach it
	APIAddr  string // where clients reach it
	// MatchIndex is the last log index known to be replicated to the
	// member, AppliedIndex the last it applied, and Lag how many entries
	// it is behind the leader's commit. Negative: not known (NULL).
	MatchIndex   int64
	AppliedIndex int64
	Lag          int64
}

func memberRows(s *Session) ([][]vtab.Value, error) {
	if s.src.Cluster == nil {
		return nil, nil
	}
	ms, err := s.src.Cluster.Members()
	if err != nil {
		return nil, fmt.Errorf("kvtool/query: members: %w", err)
	}
	rows := make([][]vtab.Value, len(ms))
	for i, m := range ms {
		rows[i] = []vtab.Value{
			textOrNull(m.Name), uint64Value(m.ID), textOrNull(m.Role), textOrNull(m.PeerAddr), textOrNull(m.APIAddr),
			knownIndex(m.MatchIndex), knownIndex(m.AppliedIndex), knownIndex(m.Lag),
		}
	}
	return rows, nil
}

// knownIndex is n, or NULL when it is negative (not known).
func knownIndex(n int64) vtab.Value {
	if n < 0 {
		return nil
	}
	return n
}

// uint64Value is n as an INTEGER; SQLite's are signed, so an id above
// MaxInt64 reads as its two's-complement (negative) value, which still
// tells members apart and compares equal to itself.
func uint64Value(n uint64) vtab.Value { return int64(n) }

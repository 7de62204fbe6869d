package server

import "github.com/kvtool/kvtool/query"

// queryMembers is the members table's view of a clustered node: its
// Status, asked for once per scan of the table (Status reads what the
// node keeps; it does not ask the other members).
type queryMembers struct{ c Cluster }

// queryCluster is the query.Source's Cluster: nil on a single node, so
// the members table is empty there.
func (s *Server) queryCluster() query.Cluster {
	if s.cluster == nil {
		return nil
	}
	return queryMembers{s.cluster}
}

// Members implements query.Cluster, with the meanings GET /v1/cluster
// gives (memberRole, lag). What a node does not know is negative (NULL):
// only the leader tracks the others' match index and lag, and a node
// knows only its own applied index (its lag is then its commit index
// less its applied index).
func (q queryMembers) Members() ([]query.Member, error) {
	st := q.c.Status()
	leading := st.Role == "leader"
	out := make([]query.Member, 0, len(st.Members))
	for _, ms := range st.Members {
		m := query.Member{Name: ms.Name, ID: ms.ID, Role: memberRole(ms, st.Leader),
			PeerAddr: ms.PeerAddr, APIAddr: ms.APIAddr, MatchIndex: -1, AppliedIndex: -1, Lag: -1}
		if leading {
			m.MatchIndex, m.Lag = int64(ms.Match), int64(lag(st.Commit, ms.Match))
		}
		if ms.Self {
			m.Role, m.AppliedIndex, m.Lag = st.Role, int64(st.AppliedIndex), int64(lag(st.Commit, st.AppliedIndex))
		}
		out = append(out, m)
	}
	return out, nil
}

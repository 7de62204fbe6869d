package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvtool/kvtool/cluster"
)

// clusterCollector exports a cluster member's state and counters, read
// from one Status at each scrape. Per-peer series are labelled with the
// member's name (its ID when the name is unknown).
type clusterCollector struct {
	c     Cluster
	descs map[string]*prometheus.Desc
}

// clusterMetric names, help and labels.
var clusterMetrics = []struct {
	name, help string
	labels     []string
}{
	{"kvtool_cluster_term", "The raft term this member is in.", nil},
	{"kvtool_cluster_is_leader", "1 while this member is the leader.", nil},
	{"kvtool_cluster_leader_changes_total", "Changes of leader this member saw.", nil},
	{"kvtool_cluster_proposals_total", "Writes proposed through raft, by result: ok, aborted (a failed check, committed, changed nothing), failed (no quorum in time, or the member stopped).", []string{"result"}},
	{"kvtool_cluster_proposal_retries_total", "Proposals made again while waiting (a lost proposal, a new leader).", nil},
	{"kvtool_cluster_read_index_total", "Linearizable reads (raft ReadIndex).", nil},
	{"kvtool_cluster_read_index_retries_total", "ReadIndex attempts made again after no answer.", nil},
	{"kvtool_cluster_commit_index", "Last log index this member knows committed.", nil},
	{"kvtool_cluster_last_index", "Last index in this member's raft log.", nil},
	{"kvtool_cluster_commit_lag_entries", "Entries in this member's log not yet known committed (last index - commit index).", nil},
	{"kvtool_cluster_apply_lag_entries", "Committed entries this member has not applied yet (commit index - applied index).", nil},
	{"kvtool_cluster_snapshot_sends_total", "Snapshots this member streamed to a member behind its retained log (a joiner, a member that fell behind), by result.", []string{"result"}},
	{"kvtool_cluster_refused_messages_total", "Peers' messages this member refused (a snapshot whose membership raft cannot hold, a membership change that does not decode, a message for another member); /v1/status has the last one, naming its sender.", nil},
	{"kvtool_cluster_failed", "1 once this member stopped after a disk error (fail stop).", nil},
	{"kvtool_cluster_peer_connected", "1 while this member's link to the peer is up.", []string{"peer"}},
	{"kvtool_cluster_peer_round_trip_seconds", "Smoothed heartbeat round trip to the peer (leader only).", []string{"peer"}},
	{"kvtool_cluster_peer_lag_entries", "Entries the peer lacks (leader only: last index - its match index).", []string{"peer"}},
	{"kvtool_cluster_peer_dropped_messages_total", "Messages to the peer dropped (queue full, link down); raft sends them again.", []string{"peer"}},
}

func newClusterCollector(c Cluster) *clusterCollector {
	cc := &clusterCollector{c: c, descs: map[string]*prometheus.Desc{}}
	for _, m := range clusterMetrics {
		cc.descs[m.name] = prometheus.NewDesc(m.name, m.help, m.labels, nil)
	}
	return cc
}

// Describe implements prometheus.Collector.
func (cc *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range cc.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (cc *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	st := cc.c.Status()
	gauge := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(cc.descs[name], prometheus.GaugeValue, v, labels...)
	}
	counter := func(name string, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(cc.descs[name], prometheus.CounterValue, float64(v), labels...)
	}
	gauge("kvtool_cluster_term", float64(st.Term))
	gauge("kvtool_cluster_is_leader", b2f(st.Role == "leader"))
	counter("kvtool_cluster_leader_changes_total", st.LeaderChanges)
	counter("kvtool_cluster_proposals_total", st.ProposalsOK, "ok")
	counter("kvtool_cluster_proposals_total", st.ProposalsAborted, "aborted")
	counter("kvtool_cluster_proposals_total", st.ProposalsFailed, "failed")
	counter("kvtool_cluster_proposal_retries_total", st.ProposalRetries)
	counter("kvtool_cluster_read_index_total", st.ReadIndexes)
	counter("kvtool_cluster_read_index_retries_total", st.ReadRetries)
	gauge("kvtool_cluster_commit_index", float64(st.Commit))
	gauge("kvtool_cluster_last_index", float64(st.LastIndex))
	gauge("kvtool_cluster_commit_lag_entries", float64(lag(st.LastIndex, st.Commit)))
	gauge("kvtool_cluster_apply_lag_entries", float64(lag(st.Commit, st.AppliedIndex)))
	counter("kvtool_cluster_snapshot_sends_total", st.Snapshots.Sent, "ok")
	counter("kvtool_cluster_snapshot_sends_total", st.Snapshots.SendFailed+st.SnapshotsNeeded, "failed")
	counter("kvtool_cluster_refused_messages_total", st.Refused)
	gauge("kvtool_cluster_failed", b2f(st.Err != ""))
	leading := st.Role == "leader"
	for _, m := range st.Members {
		if m.Self {
			continue
		}
		peer := peerLabel(m)
		gauge("kvtool_cluster_peer_connected", b2f(m.Connected), peer)
		counter("kvtool_cluster_peer_dropped_messages_total", m.Dropped, peer)
		if leading {
			gauge("kvtool_cluster_peer_round_trip_seconds", m.RoundTrip.Seconds(), peer)
			gauge("kvtool_cluster_peer_lag_entries", float64(lag(st.LastIndex, m.Match)), peer)
		}
	}
}

func peerLabel(m cluster.MemberStatus) string {
	if m.Name != "" {
		return m.Name
	}
	return hexID(m.ID)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

package server

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
	"github.com/kvtool/kvtool/xferstore"
)

// Transfer, lease and replica metrics. Every series exists from the start
// (zero until something happens), so that rates and alerts work on a
// server that has not sent anything yet.

// transferMetrics counts the snapshot sends of a server and tracks the
// peers that follow its log.
type transferMetrics struct {
	sends *prometheus.CounterVec // by result
	bytes prometheus.Counter

	mu    sync.Mutex
	peers map[string]peerProgress // following peers, by address
}

// peerProgress is the last progress a following peer reported.
type peerProgress struct {
	applied uint64
	at      time.Time
}

// peerStale is how long a peer's last progress counts for the lag.
const peerStale = 2 * xferstore.DefaultLeaseTTL

func newTransferMetrics(reg *prometheus.Registry, st *store.Store) *transferMetrics {
	t := &transferMetrics{
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kvtool_transfers_total", Help: "Snapshot transfers sent (to receivers, joining nodes and one-way streams), by result.",
		}, []string{"result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kvtool_transfer_sent_bytes_total", Help: "Bytes of snapshot transfers sent on the wire.",
		}),
		peers: map[string]peerProgress{},
	}
	for _, r := range []string{resultOK, resultError} {
		t.sends.WithLabelValues(r)
	}
	reg.MustRegister(t.sends, t.bytes)
	for _, state := range []string{store.LeaseActive, store.LeaseExpired, store.LeaseEvicted} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kvtool_leases", Help: "Retention leases of receiving peers, by state.", ConstLabels: prometheus.Labels{"state": state},
		}, func() float64 { return float64(countLeases(st, state)) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kvtool_lease_retained_bytes", Help: "Bytes active leases keep from compaction (WAL and snapshot files).",
	}, func() float64 { return float64(retainedBytes(st)) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kvtool_replica_lag_entries",
		Help: "Log entries the furthest-behind following replica (serve --join) has not applied yet; 0 with none.",
	}, func() float64 { return float64(t.lag(st.Snapshot().Index())) }))
	return t
}

func countLeases(st *store.Store, state string) int {
	n := 0
	for _, l := range st.Leases() {
		if l.State == state {
			n++
		}
	}
	return n
}

func retainedBytes(st *store.Store) int64 {
	var n int64
	for _, l := range st.Leases() {
		if l.State == store.LeaseActive {
			n += l.RetainedBytes
		}
	}
	return n
}

// lag is how far behind applied the furthest-behind following peer is.
func (t *transferMetrics) lag(applied uint64) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lag uint64
	for peer, p := range t.peers {
		if time.Since(p.at) > peerStale {
			delete(t.peers, peer)
			continue
		}
		if p.applied < applied {
			lag = max(lag, applied-p.applied)
		}
	}
	return lag
}

// ObserveSendProgress records a send's progress: a peer that follows the
// log (serve --join) counts for kvtool_replica_lag_entries. Pass it as (or
// call it from) transfer.SendOptions.Progress.
func (s *Server) ObserveSendProgress(p transfer.Progress) {
	if p.Phase != transfer.PhaseFollowing {
		return
	}
	t := s.m.transfers
	t.mu.Lock()
	t.peers[p.Peer] = peerProgress{applied: p.AppliedIndex, at: time.Now()}
	t.mu.Unlock()
}

// ObserveSend counts a send (or one-way stream) that ended, with the
// bytes it put on the wire, and forgets its peer.
func (s *Server) ObserveSend(peer string, res transfer.SendResult, err error) {
	t := s.m.transfers
	result := resultOK
	if err != nil {
		result = resultError
	}
	t.sends.WithLabelValues(result).Inc()
	t.bytes.Add(float64(res.WireBytes))
	t.mu.Lock()
	delete(t.peers, peer)
	t.mu.Unlock()
}

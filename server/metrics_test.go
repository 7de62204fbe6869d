package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/server"
)

// TestMetricsFromTheStart checks that the transfer, lease, replica and
// maintenance series exist, at zero, before anything happened.
func TestMetricsFromTheStart(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	body := string(ts.do(http.MethodGet, "/metrics", nil).body)
	for _, want := range []string{
		`kvtool_transfers_total{result="ok"} 0`,
		`kvtool_transfers_total{result="error"} 0`,
		`kvtool_transfer_sent_bytes_total 0`,
		`kvtool_leases{state="active"} 0`,
		`kvtool_leases{state="evicted"} 0`,
		`kvtool_lease_retained_bytes 0`,
		`kvtool_replica_lag_entries 0`,
		`kvtool_maintenance_total{kind="compact",result="ok"} 0`,
		`kvtool_maintenance_total{kind="delta",result="error"} 0`,
		`kvtool_maintenance_duration_seconds_count{kind="merge"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

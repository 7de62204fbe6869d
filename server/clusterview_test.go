package server

import (
	"testing"

	"github.com/kvtool/kvtool/cluster"
)

// /v1/status's cluster object carries the member's refused peer messages
// and the last refusal (which names the sender) from its raft status.
func TestClusterViewCarriesRefusals(t *testing.T) {
	v := clusterView(cluster.Status{Refused: 2, RefusedError: "member 3 sent a snapshot ...; dropped"})
	if v.RefusedMessages != 2 || v.RefusedError != "member 3 sent a snapshot ...; dropped" {
		t.Fatalf("cluster view: %d refused, %q", v.RefusedMessages, v.RefusedError)
	}
}

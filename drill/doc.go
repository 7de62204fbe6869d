// Package drill runs recovery drills: each builds a real store (or a
// 3-node cluster) in its own scratch directory and on loopback ports, drives a
// bank workload that records every acknowledged transaction, injects one
// fault, recovers the way an operator would with kvtool's own code, and
// proves the outcome, timing each step. `kvtool drill` is its front end.
//
// # Pieces
//
// Three separate pieces, as in Jepsen and etcd's robustness tests:
//
//	workload (workload.go)  Bank: transfers with unique IDs against a Target
//	                        (a store in process, a server over HTTP); it
//	                        records what was acknowledged, aborted, in doubt
//	nemesis  (one per drill) SIGKILL, a crash image at every sync point, a
//	                        torn write, a flipped byte, a full disk, a
//	                        node killed or its peer links cut (proxy.go)
//	checker  (checker.go)   Check: a State read after recovery against the
//	                        workload's Record; SameState for copies
//
// A Drill is a value: name, one-line description, Run(ctx, env) Result.
// The cluster drills (follower-loss, leader-loss, partition; cluster.go,
// clusterrun.go) start three `kvtool serve --node` processes whose peer
// addresses are per-link TCP proxies the drill cuts and heals, drive the
// same Bank through ServerTargets on the members, time the new leader, the
// first commit after the fault and the node's catch-up (Result.Timings),
// and prove the same Check on each member plus SameState across members.
// The membership drills slot in the same way: hot-join (hotjoin.go: a
// fourth member joins by snapshot through a proxy it advertises with
// --advertise-peer, the proxy cut twice and the joiner SIGKILLed while the
// snapshot streams), replace-node (join.go) and corrupt-snapshot-cluster
// (corruptcluster.go: a member's checkpoint and delta damaged, refused,
// and rebuilt from its peers with kvtool cluster replace).
//
// # Verdicts
//
// Pass: every check held. Fail: a check failed (loss, divergence, a
// recovery that did not do its job); Result.Failures says which. Error: the
// drill could not run and proves nothing. Skip: it cannot run here (say, no
// permission to mount), for the reason it gives.
//
// # Scope
//
// A drill writes only under Env.Dir and listens only on 127.0.0.1; the
// disk-full drill mounts its tmpfs inside Env.Dir and unmounts it. Drills
// run one at a time; a Drill's Run is not safe to call concurrently with
// itself on the same Env.
package drill

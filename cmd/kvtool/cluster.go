package main

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
)

// clusterCommand is `kvtool cluster`: look at and steer a running cluster
// through the HTTP API of any member.
func clusterCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "show a cluster's members, change them and move its leadership",
		Description: `Talks to the HTTP API of any member of a cluster (kvtool serve --node ...),
given with --addr HOST:PORT or $KVTOOL_ADDR; the member asks the others.

Examples:
  kvtool cluster status --addr 127.0.0.1:7070
  kvtool cluster status --addr 127.0.0.1:7070 --json
  kvtool cluster transfer-leader --addr 127.0.0.1:7070 --to n2
  kvtool cluster promote --addr 127.0.0.1:7070 n4
  kvtool cluster remove --addr 127.0.0.1:7070 n2`,
		Subcommands: []*cli.Command{
			clusterStatusCommand(e),
			clusterTransferCommand(e),
			clusterAddCommand(e),
			clusterPromoteCommand(e),
			clusterRemoveCommand(e),
			clusterReplaceCommand(e),
		},
	}
}

func clusterStatusCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "list the members: role, addresses, match and applied index, lag",
		Description: `Prints one line per member: its name, ID, role (leader, follower, learner,
candidate), peer address, HTTP API address, the last log index the leader
knows it holds (MATCH), its applied index (APPLIED) and how far that trails
the leader's commit index (LAG). Asked of the leader, it also shows the
log the leader keeps for each member (its retention lease): the lease's
state (LEASE: active; expired when the member was silent too long; evicted
when it pinned too much), the index the kept log starts after (PINNED) and
what it costs on disk (PINNED-SIZE). The member at --addr asks every other
one for its applied index; one it cannot ask shows "-" and the reason below the
table, and the command still exits 0. With --json prints the whole view
(snake_case fields, IDs as 16 hex digits).

Examples:
  kvtool cluster status --addr 127.0.0.1:7070
  kvtool cluster status --addr 127.0.0.1:7070 --json | jq '.members[] | {name, lag}'`,
		Flags: []cli.Flag{addrFlag()},
		Action: func(cCtx *cli.Context) error {
			if err := wantArgs(cCtx, 0, 0); err != nil {
				return err
			}
			c, err := clusterClient(cCtx)
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := c.ClusterStatus(cCtx.Context)
			if err != nil {
				return clusterError(c, err)
			}
			return printClusterStatus(cCtx, st)
		},
	}
}

func clusterTransferCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "transfer-leader",
		Usage: "make another member the leader",
		Description: `Asks the cluster to hand leadership to the member --to names (by name, or
by its ID in hex), and returns once the member at --addr sees it lead.
The leader hands over once the new one holds its whole log; writes pause
for about an election timeout meanwhile. Exits 1 if that does not happen
in time (no quorum, or the member is down), 2 if --to names no member.

Examples:
  kvtool cluster transfer-leader --addr 127.0.0.1:7070 --to n2`,
		Flags: []cli.Flag{addrFlag(), &cli.StringFlag{Name: "to", Usage: "the member to make leader, `NAME` or ID", Required: true}},
		Action: func(cCtx *cli.Context) error {
			if err := wantArgs(cCtx, 0, 0); err != nil {
				return err
			}
			c, err := clusterClient(cCtx)
			if err != nil {
				return err
			}
			defer c.Close()
			res, err := c.TransferLeader(cCtx.Context, cCtx.String("to"))
			var ce *client.Error
			if errors.As(err, &ce) && ce.Status == http.StatusBadRequest {
				return usageErrorf(cCtx, "%s", ce.Message)
			}
			if err != nil {
				return clusterError(c, err)
			}
			p := newPrinter(cCtx)
			if p.json {
				return p.JSON(res)
			}
			_, err = fmt.Fprintf(p.w, "%s is the leader (term %d)\n", res.Leader, res.Term)
			return writeErr(err)
		},
	}
}

// clusterClient returns a client of the member --addr (or $KVTOOL_ADDR)
// names; cluster commands have no --data form.
func clusterClient(cCtx *cli.Context) (*client.Client, error) {
	addr := addrSetting(cCtx)
	if addr.value == "" {
		return nil, usageErrorf(cCtx, "%s needs --addr HOST:PORT, the HTTP address of any member (or $%s)", cCtx.Command.HelpName, envAddr)
	}
	if err := checkAddr(cCtx, addr); err != nil {
		return nil, err
	}
	return client.New(addr.value), nil
}

// clusterError gives a failed cluster request its exit code and hint.
func clusterError(c *client.Client, err error) error {
	if se := serverError(err); se != nil {
		return se
	}
	if errors.Is(err, client.ErrNotCluster) {
		return failed(fmt.Errorf("%s is a single kvtool server, not a cluster member", c.Addr()),
			"cluster commands need the API of a member started with kvtool serve --node NAME --cluster ...")
	}
	return failed(err, "")
}

// printClusterStatus prints the view as JSON or as a table.
func printClusterStatus(cCtx *cli.Context, st *api.ClusterStatus) error {
	p := newPrinter(cCtx)
	if p.json {
		return p.JSON(st)
	}
	leader := st.Leader
	if leader == "" {
		leader = "none known"
	}
	p.Notef("cluster %s: leader %s, term %d, commit index %d (as %s sees it)", st.ClusterID, leader, st.Term, st.CommitIndex, st.Name)
	t := p.Table("NAME", "ID", "ROLE", "PEER", "API", "MATCH", "APPLIED", "LAG", "LEASE", "PINNED", "PINNED-SIZE")
	members := slices.Clone(st.Members) // by name, as an operator looks for one (the API keeps raft's ID order)
	slices.SortStableFunc(members, func(a, b api.ClusterMember) int { return cmp.Compare(a.Name, b.Name) })
	for _, m := range members {
		leaseState, pinned, pinnedSize := leaseCells(m)
		t.Row(m.Name, m.ID, m.Role, orDash(m.PeerAddr), orDash(m.APIAddr), m.MatchIndex, optIndex(m.AppliedIndex), optIndex(m.Lag), leaseState, pinned, pinnedSize)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	for _, m := range members {
		if m.Error != "" {
			p.Notef("%s: %s", m.Name, m.Error)
		}
	}
	if st.Failed != "" {
		p.Notef("%s has stopped: %s", st.Name, st.Failed)
	}
	return nil
}

// leaseCells are the raft log a member's lease pins on the leader: the
// lease's state, the index the kept log starts after, and what keeping it
// costs on disk; dashes when the viewer holds no lease for it (the viewer
// does not lead, or the member is the viewer).
func leaseCells(m api.ClusterMember) (state, index, size string) {
	if m.LeaseState == "" {
		return "-", "-", "-"
	}
	return m.LeaseState, strconv.FormatUint(m.PinnedIndex, 10), byteText(m.PinnedBytes)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func optIndex(v *uint64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatUint(*v, 10)
}

// linearizableFlag is get's --linearizable.
func linearizableFlag() cli.Flag {
	return &cli.BoolFlag{Name: "linearizable", Usage: "on a cluster member, answer with every write acknowledged before the request " +
		"(asks the leader; the default answers from the member's own state at once, which may lag); no effect on a single node or --data"}
}

// setReadOptions applies get's --linearizable to a server target (a store
// this process holds is linearizable anyway).
func setReadOptions(cCtx *cli.Context, kv kvTarget) {
	if r, ok := kv.(*remoteKV); ok {
		r.read = client.ReadOptions{Linearizable: cCtx.Bool("linearizable")}
	}
}

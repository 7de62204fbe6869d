package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/cluster"
)

// Membership changes: `kvtool cluster add|promote|remove`, through any
// member's API (it passes them to the leader), signed with the members'
// shared secret.

const memberChangeHelp = `The request goes to the member at --addr (any member; it passes it to the
leader) and is signed with the members' shared secret (--secret-file or
KVTOOL_SECRET). Exit codes: 0 done (the change applied on the leader),
1 the cluster could not do it now (no quorum, a lagging learner, a name in
use: the message says), 2 a usage error or a member the cluster does not
know.`

func clusterAddCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "add",
		Usage:     "add a member as a learner (it receives the log and does not vote)",
		ArgsUsage: "NAME",
		Description: `Adds member NAME, reachable by the others at --peer, as a learner. Start it
with kvtool serve --node NAME --peer-listen ... --join-cluster ANY_MEMBER (which
asks for this itself; this command is for an operator who adds it first).
The leader promotes it to a voter once it has caught up, unless --learner.

` + memberChangeHelp + `

Examples:
  kvtool cluster add --addr 127.0.0.1:7070 n4 --peer 127.0.0.1:7083 --api 127.0.0.1:7073`,
		Flags: []cli.Flag{addrFlag(), secretFlag(),
			&cli.StringFlag{Name: "peer", Usage: "the new member's peer address `HOST:PORT` (its --peer-listen)", Required: true},
			&cli.StringFlag{Name: "api", Usage: "the new member's HTTP API `HOST:PORT`"},
			&cli.BoolFlag{Name: "learner", Usage: "keep it a learner: the leader does not promote it"},
		},
		Action: func(cCtx *cli.Context) error {
			name, err := memberArg(cCtx)
			if err != nil {
				return err
			}
			req := api.MemberAddRequest{Name: name, PeerAddr: cCtx.String("peer"), APIAddr: cCtx.String("api"), StayLearner: cCtx.Bool("learner")}
			if err := checkHostPort(cCtx, "peer", req.PeerAddr); err != nil {
				return err
			}
			return memberChange(cCtx, "added "+name+" as a learner", func(c *client.Client, sign client.MemberSigner) (*api.MemberChangeResult, error) {
				return c.AddMember(cCtx.Context, sign, req)
			})
		},
	}
}

func clusterPromoteCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "promote",
		Usage:     "make a learner a voter",
		ArgsUsage: "NAME",
		Description: `Makes learner NAME a voter. The leader refuses (exit 1) while the learner's
log trails its own by more than a few entries: wait and try again.

` + memberChangeHelp + `

Examples:
  kvtool cluster promote --addr 127.0.0.1:7070 n4`,
		Flags: []cli.Flag{addrFlag(), secretFlag()},
		Action: func(cCtx *cli.Context) error {
			name, err := memberArg(cCtx)
			if err != nil {
				return err
			}
			return memberChange(cCtx, "promoted "+name+" to a voter", func(c *client.Client, sign client.MemberSigner) (*api.MemberChangeResult, error) {
				return c.PromoteMember(cCtx.Context, sign, name)
			})
		},
	}
}

func clusterRemoveCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "remove",
		Usage:     "remove a member from the cluster",
		ArgsUsage: "NAME",
		Description: `Removes member NAME. A leader hands its leadership over first. The removed
member stops serving, and its data directory refuses to start again
(DATA/raft/REMOVED) until it is wiped.

` + memberChangeHelp + `

Examples:
  kvtool cluster remove --addr 127.0.0.1:7070 n2`,
		Flags: []cli.Flag{addrFlag(), secretFlag()},
		Action: func(cCtx *cli.Context) error {
			name, err := memberArg(cCtx)
			if err != nil {
				return err
			}
			return memberChange(cCtx, "removed "+name, func(c *client.Client, sign client.MemberSigner) (*api.MemberChangeResult, error) {
				return c.RemoveMember(cCtx.Context, sign, name)
			})
		},
	}
}

func clusterReplaceCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "replace",
		Usage:     "swap a voter for a caught-up learner in one joint change",
		ArgsUsage: "OLD NEW",
		Description: `Makes learner NEW a voter and removes voter OLD in one joint change, so the
cluster never has fewer voters than before, not even for one entry. Start NEW
first as a learner that stays one (kvtool serve --node NEW ... --join-cluster
ANY_MEMBER --learner) and wait until it has caught up; the leader refuses
(exit 1) while NEW's log trails its own. OLD stops serving, and its data
directory refuses to start again (DATA/raft/REMOVED) until it is wiped.

` + memberChangeHelp + `

Examples:
  kvtool cluster replace --addr 127.0.0.1:7070 n2 n4`,
		Flags: []cli.Flag{addrFlag(), secretFlag()},
		Action: func(cCtx *cli.Context) error {
			if err := wantArgs(cCtx, 2, 2); err != nil {
				return err
			}
			old, add := cCtx.Args().Get(0), cCtx.Args().Get(1)
			for _, n := range []string{old, add} {
				if err := cluster.CheckMemberName(n); err != nil {
					return usageErrorf(cCtx, "%v", err)
				}
			}
			if old == add {
				return usageErrorf(cCtx, "OLD and NEW are both %q: name two members", old)
			}
			return memberChange(cCtx, "replaced "+old+" by "+add, func(c *client.Client, sign client.MemberSigner) (*api.MemberChangeResult, error) {
				return c.ReplaceMember(cCtx.Context, sign, old, add)
			})
		},
	}
}

func memberArg(cCtx *cli.Context) (string, error) {
	if err := wantArgs(cCtx, 1, 1); err != nil {
		return "", err
	}
	name := cCtx.Args().First()
	if err := cluster.CheckMemberName(name); err != nil {
		return "", usageErrorf(cCtx, "%v", err)
	}
	return name, nil
}

// memberChange signs and sends one membership change and prints the
// membership after it.
func memberChange(cCtx *cli.Context, done string, do func(*client.Client, client.MemberSigner) (*api.MemberChangeResult, error)) error {
	secret, err := readSecret(cCtx)
	if err != nil {
		return err
	}
	if len(secret) < cluster.MinSecretSize {
		return usageErrorf(cCtx, "membership changes are signed with the members' shared secret: give --secret-file FILE or set KVTOOL_SECRET")
	}
	c, err := clusterClient(cCtx)
	if err != nil {
		return err
	}
	defer c.Close()
	sign := func(method, path string, unix int64, body []byte) string {
		return cluster.MemberChangeMAC(secret, method, path, unix, body)
	}
	res, err := do(c, sign)
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status == http.StatusBadRequest {
		return usageErrorf(cCtx, "%s", ce.Message)
	}
	if errors.As(err, &ce) && ce.Status == http.StatusForbidden {
		return failed(errors.New(ce.Message), "use the same shared secret as the members (--secret-file or KVTOOL_SECRET)")
	}
	if err != nil {
		return clusterError(c, err)
	}
	p := newPrinter(cCtx)
	if p.json {
		return p.JSON(res)
	}
	var names []string
	for _, m := range res.Members {
		names = append(names, m.Name)
	}
	_, err = fmt.Fprintf(p.w, "%s; members now: %s (%d voters, %d learners)\n", done, strings.Join(names, ", "), len(res.Voters), len(res.Learners))
	return writeErr(err)
}

package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

// defaultDataDir is the data directory when neither --data nor KVTOOL_DATA
// is given.
const defaultDataDir = "./kvdata"

const appDescription = `kvtool runs a durable key-value store and inspects, verifies and repairs its
data directory from the command line. Every file in the directory is
checksummed; the tools below say which file and which byte offset is damaged
and what to do about it.

Options may be given before the command or after it, and after its
arguments: kvtool --data /srv/kv wal verify, kvtool wal verify --data /srv/kv,
and kvtool get --addr H:P k, kvtool get k --addr H:P, kvtool --addr H:P get k
are the same. After "--" everything is an argument (kvtool put -- k --x).

DATA DIRECTORY (--data, $KVTOOL_DATA, default ./kvdata)
  DATA/wal/*.wal           write-ahead log segments, named by their first log
                           index in 16 hex digits, so they sort in log order
  DATA/wal/*.quarantine    bytes cut by a repair, kept for inspection
  DATA/snap/               checkpoints (*.ckpt) and deltas (*.delta)
  DATA/MANIFEST            names the current checkpoint, its deltas and the
                           first WAL index still needed; recovery starts here
  DATA/LOCK                held by the one process that owns the directory;
                           it contains the holder's pid
  Read-only commands (verify, inspect, replay, wal list|dump|verify,
  checkpoint list|inspect|verify, delta list|verify) never create, lock or
  change any file of the directory.

OUTPUT
  Results go to standard output as aligned text, or with --json as one JSON
  document (JSON lines for streams such as wal dump) with snake_case fields.
  Errors go to standard error as "kvtool: <message>", naming the file and
  byte offset of any damage, followed by a hint saying what to do next.
  Progress bars are drawn on standard error only when it is a terminal.

EXIT CODES
  0  success
  1  operational failure (I/O error, no data directory, directory locked)
  2  usage error (unknown command or flag, bad argument, wrong argument count)
  3  verification found corruption, a gap or a mismatch
  4  transaction aborted by a failed check (nothing was changed)
  5  get: the key does not exist
  130 interrupted by SIGINT or SIGTERM (Ctrl-C); a second one stops at once

ENVIRONMENT
  KVTOOL_DATA   the data directory, when --data is not given
  KVTOOL_ADDR   the server key commands talk to, when --addr is not given
  A flag always beats a variable: with KVTOOL_ADDR set, --data DIR acts on
  DIR. Giving both --addr and --data is an error. Every command that changes
  a store says on standard error which one it acted on.

EXAMPLES
  kvtool serve                           run the store on ./kvdata, HTTP on 127.0.0.1:7070
  kvtool put --addr 127.0.0.1:7070 greeting hello
  kvtool wal verify                      check every WAL segment; exit 3 on damage
  kvtool --data /srv/kv wal list --json  describe the segments as JSON
  kvtool wal dump --from 100 --to 120    print log entries 100 to 120
  source <(kvtool completion bash)       enable shell completion`

// newApp builds the kvtool application for one invocation. It is built anew
// each time (flags keep per-run state), writes only to e's streams, and
// never exits the process: execute turns its error into an exit code.
func newApp(e env) *cli.App {
	app := &cli.App{
		Name:                 "kvtool",
		Usage:                "run a durable key-value store and inspect, verify and repair its data",
		Description:          appDescription,
		Version:              versionString(),
		Flags:                globalFlags(true),
		EnableBashCompletion: true,
		Reader:               e.stdin,
		Writer:               e.stdout,
		ErrWriter:            e.stderr,
		Action:               groupAction,
		OnUsageError:         onUsageError,
		// Errors are printed and mapped to exit codes by execute, in one place;
		// urfave/cli must neither print them nor call os.Exit.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			serveCommand(e),
			putCommand(e),
			getCommand(e),
			delCommand(e),
			scanCommand(e),
			txnCommand(e),
			walCommand(e),
			transferCommand(e),
			checkpointCommand(e),
			deltaCommand(e),
			replayCommand(e),
			verifyCommand(e),
			inspectCommand(e),
			drillCommand(e),
			queryCommand(e), diffCommand(e),
			clusterCommand(e),
			versionCommand(e),
			completionCommand(e),
		},
	}
	prepareCommands(app.Commands)
	return app
}

// prepareCommands gives every command the behaviour the CLI contract asks of
// all of them: usage errors exit 2, the global flags are accepted after the
// command name too, a group without a subcommand (or with an unknown one) is
// a usage error, and leaves do not list a "help" subcommand.
func prepareCommands(cmds []*cli.Command) {
	for _, c := range cmds {
		if c.OnUsageError == nil {
			c.OnUsageError = onUsageError
		}
		c.Flags = append(c.Flags, globalFlags(false)...)
		checkRequired(c)
		if len(c.Subcommands) > 0 {
			if c.Action == nil {
				c.Action = groupAction
			}
			if c.CustomHelpTemplate == "" {
				c.CustomHelpTemplate = groupHelpTemplate
			}
			prepareCommands(c.Subcommands)
		} else {
			c.HideHelpCommand = true
		}
	}
}

// checkRequired makes c's required flags optional for urfave/cli, which
// answers a missing one by printing the whole help on standard output, and
// checks them in c's action instead: a missing flag is a usage error of one
// line, naming it, on standard error.
func checkRequired(c *cli.Command) {
	var required []cli.Flag
	for _, f := range c.Flags {
		if sf, ok := f.(*cli.StringFlag); ok && sf.Required {
			sf.Required = false
			required = append(required, sf)
		}
	}
	if len(required) == 0 || c.Action == nil {
		return
	}
	action := c.Action
	c.Action = func(cCtx *cli.Context) error {
		for _, f := range required {
			name := f.Names()[0]
			if !cCtx.IsSet(name) {
				return usageErrorf(cCtx, "%s needs --%s %s", cCtx.Command.HelpName, name, placeholder(f.(*cli.StringFlag).Usage))
			}
		}
		return action(cCtx)
	}
}

// placeholder is the `NAME` a flag's usage quotes for its value ("VALUE"
// if none).
func placeholder(usage string) string {
	if _, rest, ok := strings.Cut(usage, "`"); ok {
		if name, _, ok := strings.Cut(rest, "`"); ok {
			return name
		}
	}
	return "VALUE"
}

// groupAction runs when a command group (or the app) is given no known
// subcommand. It fails with a usage error, so that a script with an empty or
// misspelled command never succeeds silently; with no command at all it
// also lists the commands on stderr.
func groupAction(cCtx *cli.Context) error {
	if cCtx.NArg() > 0 {
		name := cCtx.Args().First()
		msg := fmt.Sprintf("unknown command %q for '%s'", name, cCtx.Command.HelpName)
		if s := suggestCommand(cCtx, name); s != "" {
			msg += "; " + s
		}
		return usageErrorf(cCtx, "%s", msg)
	}
	w := cCtx.App.ErrWriter
	fmt.Fprintf(w, "Usage: %s [options] command [command options]\n\nCommands:\n", cCtx.Command.HelpName)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range cCtx.Command.VisibleCommands() {
		fmt.Fprintf(tw, "   %s\t%s\n", c.Name, c.Usage)
	}
	tw.Flush()
	fmt.Fprintln(w)
	return usageErrorf(cCtx, "missing command after '%s'", cCtx.Command.HelpName)
}

// groupHelpTemplate is urfave/cli's SubcommandHelpTemplate listing the
// subcommands without categories: `kvtool help wal` renders a group before
// its categories are set up, and the stock template stops there.
var groupHelpTemplate = strings.Replace(cli.SubcommandHelpTemplate,
	`{{template "visibleCommandCategoryTemplate" .}}`, `{{template "visibleCommandTemplate" .}}`, 1)

// suggestCommand returns `did you mean "x"?` for a subcommand name close to
// name (a typo), or "".
func suggestCommand(cCtx *cli.Context, name string) string {
	for _, c := range cCtx.Command.VisibleCommands() {
		for _, n := range c.Names() {
			if d := editDistance(name, n); d > 0 && d <= 2 && d <= len(n)/2 {
				return fmt.Sprintf("did you mean %q?", n)
			}
		}
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// globals are the global options of one invocation.
type globals struct {
	Data  string // data directory
	JSON  bool   // machine-readable output
	Quiet bool   // no progress, hints or summaries
}

const (
	flagData  = "data"
	flagJSON  = "json"
	flagQuiet = "quiet"
	flagAddr  = "addr"

	envData = "KVTOOL_DATA"
	envAddr = "KVTOOL_ADDR"
)

// globalFlags returns new instances of the global flags. The app has a copy
// and every command gets its own, so that `kvtool wal verify --json` works
// as well as `kvtool --json wal verify`; globalsOf resolves them. No flag
// reads the environment itself: dataSetting and addrSetting do, so that a
// flag on the command line can be told from a variable (an explicit flag
// always wins).
func globalFlags(root bool) []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: flagData, Usage: "`DIR` holding the store's files (default: $" + envData + ", else " + defaultDataDir + ")"},
		&cli.BoolFlag{Name: flagJSON, Usage: "print machine-readable JSON on standard output", DisableDefaultText: true},
		&cli.BoolFlag{Name: flagQuiet, Aliases: []string{"q"}, Usage: "print only results and errors: no progress bars, hints or summaries", DisableDefaultText: true},
	}
	if !root {
		for _, f := range flags {
			setCategory(f, "Global options")
		}
	}
	return flags
}

func setCategory(f cli.Flag, category string) {
	switch f := f.(type) {
	case *cli.StringFlag:
		f.Category = category
	case *cli.BoolFlag:
		f.Category = category
	}
}

// addrFlag is --addr, for the commands that can run against a server.
func addrFlag() cli.Flag {
	return &cli.StringFlag{
		Name:  flagAddr,
		Usage: "send the command to the kvtool server at `HOST:PORT` instead of opening --data (default: $" + envAddr + ")",
	}
}

// globalsOf resolves the global options for the command running in cCtx: a
// flag given on the command line nearest to the command wins (so
// `kvtool --data a wal list --data b` uses b), then the environment, then
// the default.
func globalsOf(cCtx *cli.Context) globals {
	g := globals{Data: dataSetting(cCtx).value}
	if c := setIn(cCtx, flagJSON); c != nil {
		g.JSON = c.Bool(flagJSON)
	}
	if c := setIn(cCtx, flagQuiet); c != nil {
		g.Quiet = c.Bool(flagQuiet)
	}
	return g
}

// setIn returns the nearest context, from cCtx up to the app, in which the
// flag was given on the command line, or nil.
func setIn(cCtx *cli.Context, name string) *cli.Context {
	for _, c := range cCtx.Lineage() {
		if c.Command != nil && c.IsSet(name) {
			return c
		}
	}
	return nil
}

// setting is the value of --data or --addr and where it came from, so that
// messages can say why a command acted where it did.
type setting struct {
	value    string
	from     string // "--data", "$KVTOOL_DATA", "the default", ...
	explicit bool   // given on the command line
}

func (s setting) String() string { return fmt.Sprintf("%s (from %s)", s.value, s.from) }

// dataSetting resolves the data directory: --data on the command line, else
// $KVTOOL_DATA, else ./kvdata.
func dataSetting(cCtx *cli.Context) setting {
	if c := setIn(cCtx, flagData); c != nil {
		return setting{value: c.String(flagData), from: "--" + flagData, explicit: true}
	}
	if v, ok := os.LookupEnv(envData); ok {
		return setting{value: v, from: "$" + envData}
	}
	return setting{value: defaultDataDir, from: "the default"}
}

// addrSetting resolves the server address of a command that has --addr:
// --addr on the command line, else $KVTOOL_ADDR; value is "" for none.
func addrSetting(cCtx *cli.Context) setting {
	if c := setIn(cCtx, flagAddr); c != nil {
		return setting{value: c.String(flagAddr), from: "--" + flagAddr, explicit: true}
	}
	if v := os.Getenv(envAddr); v != "" {
		return setting{value: v, from: "$" + envAddr}
	}
	return setting{}
}

// target is what a command that runs against a server or a data directory
// acts on: exactly one of addr and data is set.
type target struct {
	addr string
	data string
	from setting // the setting chosen
}

// remote reports whether the target is a server.
func (t target) remote() bool { return t.addr != "" }

// String names the target for a person: "the kvtool server at H:P (from
// --addr)" or "the data directory D (from $KVTOOL_DATA)".
func (t target) String() string {
	if t.remote() {
		return "the kvtool server at " + t.from.String()
	}
	return "the data directory " + t.from.String()
}

// resolveTarget decides between a server and a data directory for a command
// with --addr. A flag on the command line beats an environment variable:
// `--data D` acts on D even with $KVTOOL_ADDR set, and `--addr` on the server
// even with $KVTOOL_DATA set. Both flags on the command line are a usage
// error: which one was meant cannot be guessed. With neither flag,
// $KVTOOL_ADDR beats $KVTOOL_DATA.
func resolveTarget(cCtx *cli.Context) (target, error) {
	addr, data := addrSetting(cCtx), dataSetting(cCtx)
	switch {
	case addr.explicit && data.explicit:
		return target{}, usageErrorf(cCtx, "both --addr %s and --data %s are given: drop --data to run against the server, or drop --addr to open the directory",
			addr.value, data.value)
	case addr.explicit && addr.value == "":
		return target{}, usageErrorf(cCtx, "--addr is empty (is a shell variable unset?); give HOST:PORT, or drop --addr to open --data")
	case addr.value != "" && !data.explicit:
		if err := checkAddr(cCtx, addr); err != nil {
			return target{}, err
		}
		return target{addr: addr.value, from: addr}, nil
	}
	d, err := dataDir(cCtx)
	if err != nil {
		return target{}, err
	}
	return target{data: d, from: data}, nil
}

// dataTarget is the data directory data, resolved from cCtx's --data, as
// the target of a command that only works on a directory.
func dataTarget(cCtx *cli.Context, data string) target {
	return target{data: data, from: dataSetting(cCtx)}
}

// dataDir returns the data directory for the command running in cCtx. An
// empty one is a usage error rather than a silent fallback to ./kvdata: it
// is usually a shell variable that was not set (--data "$DIR").
func dataDir(cCtx *cli.Context) (string, error) {
	if d := dataSetting(cCtx).value; d != "" {
		return d, nil
	}
	return "", usageErrorf(cCtx, "the data directory is empty (--data \"\" or KVTOOL_DATA=\"\"; is a shell variable unset?)")
}

// storeJSON names, in the --json output of a command that changed a store,
// the store it changed: a data directory or a server.
type storeJSON struct {
	DataDir string `json:"data_dir,omitempty"`
	Addr    string `json:"addr,omitempty"`
}

func (t target) json() storeJSON { return storeJSON{DataDir: t.data, Addr: t.addr} }

// actedOnKey is where actedOn records the target in the app's Metadata.
const actedOnKey = "acted-on"

// actedOn records that the command changed the store t names, for its
// --json output (printer.store), and tells a person (noteTarget).
func actedOn(cCtx *cli.Context, t target) {
	if cCtx.App.Metadata == nil {
		cCtx.App.Metadata = map[string]any{}
	}
	cCtx.App.Metadata[actedOnKey] = t
	noteTarget(cCtx, t)
}

// noteTarget tells a person, on standard error, which store a command that
// changes one acted on (with --json the output carries it instead; --quiet
// leaves it out).
func noteTarget(cCtx *cli.Context, t target) {
	if g := globalsOf(cCtx); g.JSON || g.Quiet {
		return
	}
	fmt.Fprintf(cCtx.App.ErrWriter, "kvtool: acted on %s\n", t)
}

package main

import (
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
)

// globalFlags returns new instances of the global flags. The app's copy
// (root) reads the environment and shows the default; every command gets its
// own copy too, so that `kvtool wal verify --json` works as well as
// `kvtool --json wal verify`. globalsOf resolves them.
func globalFlags(root bool) []cli.Flag {
	data := &cli.StringFlag{
		Name:  flagData,
		Usage: "`DIR` holding the store's files (default: $KVTOOL_DATA, else " + defaultDataDir + ")",
	}
	if root {
		data.Usage = "`DIR` holding the store's files"
		data.Value = defaultDataDir
		data.EnvVars = []string{"KVTOOL_DATA"}
	}
	flags := []cli.Flag{
		data,
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

// globalsOf resolves the global options for the command running in cCtx: a
// flag given on the command line nearest to the command wins (so
// `kvtool --data a wal list --data b` uses b), then the app's flag (command
// line, then environment), then the default.
func globalsOf(cCtx *cli.Context) globals {
	g := globals{Data: defaultDataDir}
	if c := setIn(cCtx, flagData); c != nil {
		g.Data = c.String(flagData)
	}
	if c := setIn(cCtx, flagJSON); c != nil {
		g.JSON = c.Bool(flagJSON)
	}
	if c := setIn(cCtx, flagQuiet); c != nil {
		g.Quiet = c.Bool(flagQuiet)
	}
	return g
}

// setIn returns the nearest context, from cCtx up to the app, in which the
// flag was set, or nil.
func setIn(cCtx *cli.Context, name string) *cli.Context {
	for _, c := range cCtx.Lineage() {
		if c.Command != nil && c.IsSet(name) {
			return c
		}
	}
	return nil
}

// dataDir returns the data directory for the command running in cCtx. An
// empty one is a usage error rather than a silent fallback to ./kvdata: it
// is usually a shell variable that was not set (--data "$DIR").
func dataDir(cCtx *cli.Context) (string, error) {
	if d := globalsOf(cCtx).Data; d != "" {
		return d, nil
	}
	return "", usageErrorf(cCtx, "the data directory is empty (--data \"\" or KVTOOL_DATA=\"\"; is a shell variable unset?)")
}

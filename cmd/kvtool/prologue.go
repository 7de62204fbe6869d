package main

import (
	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/cluster"
	"github.com/kvtool/kvtool/vfs"
)

// Every command's action starts the same way: it checks its positional
// arguments, then its own flags, then resolves what it acts on (the data
// directory of --data or $KVTOOL_DATA, or for the commands that can run
// against one a server, --addr or $KVTOOL_ADDR) and how it reaches it;
// then it does its work, and a command that only reads and was cancelled
// meanwhile was interrupted (exit 130). action is that prologue, the one
// place it is written.

// scope is what a command acts on, as action resolves it.
type scope int

const (
	// noStore: no data directory nor server; files named by its arguments.
	noStore scope = iota
	// readDir: an existing data directory, read through readOnlyFS: never
	// written, read without the lock where it cannot be taken, and Ctrl-C
	// stops the reads (exit 130).
	readDir
	// writeDir: an existing data directory the command changes (it takes
	// DATA/LOCK itself).
	writeDir
	// anyDir: a data directory that need not exist (the command creates
	// it, or reports what is there).
	anyDir
	// serverOrDir: a server with --addr (or $KVTOOL_ADDR), else an existing
	// data directory, which the command opens.
	serverOrDir
	// serverOrAnyDir: a server, else a data directory that need not exist.
	serverOrAnyDir
)

// spec is what action checks before a command's work.
type spec struct {
	min, max int // positional arguments (max -1: any number)
	scope    scope
	// dryRun: with --dry-run, a writeDir command only reads (readDir).
	dryRun bool
	// ownInterrupt: a readDir command says itself what an interruption
	// left behind (replay --out).
	ownInterrupt bool
	// pendingOK: a readDir command that reads a member's directory with
	// a snapshot install pending (verify: cluster.VerifyMember).
	pendingOK bool
}

// call is one run of a command, with what action resolved.
type call struct {
	*cli.Context
	e        env
	t        target // what it acts on; zero for noStore
	fs       vfs.FS // the file system to reach the data directory through
	readOnly bool   // fs is readOnlyFS
}

// data is the data directory the command acts on ("" for a server).
func (c *call) data() string { return c.t.data }

// action builds a command's action: the prologue (positional arguments;
// parse, the command's own flags, if not nil; the target of s.scope and
// its file system), then do with what parse returned.
func action[O any](e env, s spec, parse func(*cli.Context) (O, error), do func(c *call, o O) error) cli.ActionFunc {
	return func(cCtx *cli.Context) error {
		if err := wantArgs(cCtx, s.min, s.max); err != nil {
			return err
		}
		var o O
		if parse != nil {
			var err error
			if o, err = parse(cCtx); err != nil {
				return err
			}
		}
		c, err := resolve(cCtx, e, s)
		if err != nil {
			return err
		}
		err = do(c, o)
		if c.readOnly && !s.ownInterrupt {
			if s := stopped(cCtx, "it changed nothing"); s != nil {
				return s
			}
		}
		return err
	}
}

// act is action for a command without flags of its own to check first.
func act(e env, s spec, do func(c *call) error) cli.ActionFunc {
	return action(e, s, nil, func(c *call, _ struct{}) error { return do(c) })
}

// resolve finds what the command of s acts on, and the file system to
// reach it through.
func resolve(cCtx *cli.Context, e env, s spec) (*call, error) {
	c := &call{Context: cCtx, e: e, fs: e.fs}
	sc := s.scope
	if s.dryRun && sc == writeDir && cCtx.Bool("dry-run") {
		sc = readDir
	}
	var err error
	switch sc {
	case readDir, writeDir:
		var data string
		data, err = existingDataDir(cCtx, e.fs)
		c.t = dataTarget(cCtx, data)
	case anyDir:
		var data string
		data, err = dataDir(cCtx)
		c.t = dataTarget(cCtx, data)
	case serverOrDir, serverOrAnyDir:
		c.t, err = resolveTarget(cCtx)
		if err == nil && !c.t.remote() && sc == serverOrDir {
			_, err = existingDataDir(cCtx, e.fs)
		}
	}
	if sc == readDir {
		c.fs, c.readOnly = readOnlyFS(cCtx, e), true
	}
	if err == nil && !s.pendingOK && (sc == readDir || sc == serverOrDir && !c.t.remote()) {
		err = installPending(c.fs, c.t.data)
	}
	return c, err
}

// installPending refuses to read a cluster member's data directory while
// a snapshot install a crash interrupted is pending there: the store
// alone does not show what the member holds until a start finishes it.
func installPending(fsys vfs.FS, data string) error {
	if err := cluster.CheckInstall(fsys, data); err != nil {
		return failed(err, "")
	}
	return nil
}

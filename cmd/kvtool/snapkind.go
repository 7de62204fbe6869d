package main

import (
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// snapKind is one kind of snapshot file (checkpoints and deltas are two
// kinds of table file, see table.Kind) as list and verify show it: only
// what differs between the kinds. snapListAction and snapVerifyAction are
// the one implementation of checkpoint list|verify and delta list|verify.
type snapKind struct {
	noun   string // the table.Kind's Noun
	magic  string // the table.Kind's Magic: a FILE argument must carry it
	marked string // what the manifest marks a file of the kind as, for notes
	// maxFiles is how many FILE arguments verify takes (0 or 1); without
	// one it verifies what the manifest names.
	maxFiles int
	// count is the number of files of the kind in s.
	count func(s *datadir.Snapshots) int
	// listJSON is list's --json document.
	listJSON func(snapDir string, s *datadir.Snapshots) any
	// table prints list's table of the files in s.
	table func(p *printer, s *datadir.Snapshots) error
	// verify verifies the file at path, or (path "") what the manifest of
	// data names.
	verify func(fsys vfs.FS, data, path string, opts datadir.VerifyOptions) (*datadir.Report, error)
	// state is the applied index and state hash a verify report names
	// (nil and "" when unknown).
	state func(fsys vfs.FS, data, path string, rep *datadir.Report) (*uint64, string)
}

// snapListAction is the action of list: it reads the headers and footers
// of the kind's files in DATA/snap and prints them.
func snapListAction(e env, k *snapKind) cli.ActionFunc {
	return act(e, spec{scope: readDir}, func(c *call) error {
		s, err := datadir.ListSnapshots(c.fs, c.data())
		if err != nil {
			return dirError(err, c.data())
		}
		return k.printList(newPrinter(c.Context), c.data(), s)
	})
}

func (k *snapKind) printList(p *printer, data string, s *datadir.Snapshots) error {
	snapDir := filepath.Join(data, format.SnapDir)
	if p.json {
		return p.JSON(k.listJSON(snapDir, s))
	}
	if s.ManifestErr != nil {
		p.Notef("note: the manifest cannot be read, so no %s is marked as %s: %v", k.noun, k.marked, s.ManifestErr)
	}
	if k.count(s) == 0 {
		p.Notef("no %ss in %s", k.noun, snapDir)
		return nil
	}
	return k.table(p, s)
}

// snapVerifyAction is the action of verify: it reads the FILE given, or
// the files the manifest names, whole, and prints every problem, then a
// count; it exits 3 if there is any.
func snapVerifyAction(e env, k *snapKind) cli.ActionFunc {
	return act(e, spec{max: k.maxFiles}, func(c *call) error {
		cCtx := c.Context
		data, path, err := k.target(cCtx, e.fs)
		if err != nil {
			return err
		}
		pr := startProgress(cCtx, "verify", 0)
		rep, err := k.verify(readOnlyFS(cCtx, e), data, path, datadir.VerifyOptions{Progress: pr.Update})
		pr.Done()
		if path != "" && vfs.IsNotExist(err) {
			return fileError(err, path, data)
		}
		if s := stopped(cCtx, "it changed nothing"); s != nil {
			return s
		}
		if err != nil {
			return dirError(err, data)
		}
		applied, hash := k.state(e.fs, data, path, rep)
		return finishWith(cCtx, e.fs, k.noun+" verify", data, rep, func(p *printer) error {
			return printSnapReport(p, data, path, rep, applied, hash)
		})
	})
}

// target resolves what verify reads: the FILE argument (a path, or a name
// in DATA/snap), which must be of the kind, or else the data directory.
func (k *snapKind) target(cCtx *cli.Context, fsys vfs.FS) (data, path string, err error) {
	data = globalsOf(cCtx).Data
	if cCtx.NArg() == 0 {
		data, err = existingDataDir(cCtx, fsys)
		return data, "", err
	}
	path = snapFile(fsys, data, cCtx.Args().First())
	return data, path, checkKind(cCtx, fsys, path, k.magic)
}

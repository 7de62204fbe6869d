package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/vfs"
)

// readOnlyFS is the file system a command that only reads a data directory
// works through:
//
//   - once the command's context is cancelled (SIGINT, SIGTERM), every
//     read and write fails with the context's error, so a library loop
//     over files (verify, replay, dump, ...) stops at its next read, and a
//     file being written (replay --out) fails and is removed rather than
//     published half-written; removing, renaming and closing still work, so
//     the cleanup does;
//   - a lock that cannot be taken because the directory is read-only (a
//     mounted backup, another user's files) is not needed to read: the
//     directory is read without it, and the command says so on standard
//     error.
func readOnlyFS(cCtx *cli.Context, e env) vfs.FS {
	return &ctxFS{FS: e.fs, ctx: cCtx.Context, note: func(path string, err error) {
		if !globalsOf(cCtx).Quiet {
			fmt.Fprintf(cCtx.App.ErrWriter, "kvtool: note: cannot take %s (%v): the directory is read-only here, so it is read without the lock; a process writing it meanwhile may show as a torn tail\n",
				path, inner(err))
		}
	}}
}

// ctxFS is a vfs.FS whose file I/O fails once ctx is done; see readOnlyFS.
type ctxFS struct {
	vfs.FS
	ctx  context.Context
	note func(path string, err error) // a read-only lock was skipped
}

func (c *ctxFS) file(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &ctxFile{File: f, ctx: c.ctx}, nil
}

func (c *ctxFS) Open(name string) (vfs.File, error) {
	if err := c.ctx.Err(); err != nil {
		return nil, err
	}
	return c.file(c.FS.Open(name))
}

func (c *ctxFS) Create(name string) (vfs.File, error) {
	if err := c.ctx.Err(); err != nil {
		return nil, err
	}
	return c.file(c.FS.Create(name))
}

func (c *ctxFS) OpenReadWrite(name string) (vfs.File, error) {
	if err := c.ctx.Err(); err != nil {
		return nil, err
	}
	return c.file(c.FS.OpenReadWrite(name))
}

// Lock takes the lock, or, when the directory cannot be written at all,
// goes without it and says so.
func (c *ctxFS) Lock(name string) (io.Closer, error) {
	l, err := c.FS.Lock(name)
	if err != nil && readOnlyErr(err) && c.note != nil {
		c.note(name, err)
		return noLock{}, nil
	}
	return l, err
}

// noLock is the lock not taken on a read-only directory.
type noLock struct{}

func (noLock) Close() error { return nil }

// readOnlyErr reports whether err says the file system or the directory
// cannot be written.
func readOnlyErr(err error) bool {
	return errors.Is(err, syscall.EROFS) || errors.Is(err, os.ErrPermission)
}

// ctxFile is a file whose reads and writes fail once ctx is done.
type ctxFile struct {
	vfs.File
	ctx context.Context
}

func (f *ctxFile) Read(p []byte) (int, error) {
	if err := f.ctx.Err(); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *ctxFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.ctx.Err(); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *ctxFile) Write(p []byte) (int, error) {
	if err := f.ctx.Err(); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *ctxFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.ctx.Err(); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

// stopped returns the interruption error (exit 130) of a read-only command
// whose context was cancelled while it ran, or nil: what it computed from
// reads that failed on the way is not a result. done says what the command
// left behind.
func stopped(cCtx *cli.Context, done string) error {
	if cCtx.Context.Err() == nil {
		return nil
	}
	return interrupted("`"+cCtx.Command.HelpName+"`", done)
}

// promptStdin tells a person at a terminal that the command waits for
// standard input, on standard error.
func promptStdin(cCtx *cli.Context, what string) {
	if isTerminal(cCtx.App.Reader) && !globalsOf(cCtx).Quiet {
		fmt.Fprintf(cCtx.App.ErrWriter, "kvtool: %s\n", what)
	}
}

// readOnly runs fn, the work of a command that only reads, on readOnlyFS.
// If the command's context was cancelled meanwhile, what fn computed rests
// on reads that failed: the command was interrupted (exit 130), whatever
// fn returned.
func readOnly(cCtx *cli.Context, e env, fn func(fsys vfs.FS) error) error {
	err := fn(readOnlyFS(cCtx, e))
	if s := stopped(cCtx, "it changed nothing"); s != nil {
		return s
	}
	return err
}

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// Commands that take a FILE look at its first 8 bytes (the magic of a
// kvtool file header) before reading it, so that a file of another kind
// gets the command that reads it, and a file that is not kvtool's gets a
// message that never shows its bytes: it may be a key or a password file.

// kinds names each kind of kvtool file and the command that checks it.
var kinds = map[string]struct{ name, command string }{
	format.MagicSegment:    {"a WAL segment", "kvtool wal verify"},
	format.MagicCheckpoint: {"a checkpoint", "kvtool checkpoint verify FILE"},
	format.MagicDelta:      {"a delta", "kvtool delta verify"},
	format.MagicManifest:   {"a data directory's MANIFEST", "kvtool verify"},
	format.MagicTransfer:   {"a transfer stream", "kvtool transfer verify FILE"},
	format.MagicQuarantine: {"a quarantine file (bytes cut by a repair)", "kvtool inspect"},
}

// errNotKvtool says a file does not start with a kvtool header.
var errNotKvtool = errors.New("it does not start with a kvtool file header (damaged, or not a kvtool file; its bytes are not shown)")

// peekMagic returns the magic at the start of br without consuming it: one
// of the format.Magic constants, or errNotKvtool.
func peekMagic(br *bufio.Reader) (string, error) {
	b, err := br.Peek(8)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return "", err
	}
	if _, ok := kinds[string(b)]; !ok {
		return "", errNotKvtool
	}
	return string(b), nil
}

// fileMagic returns the magic of the file at path (see peekMagic).
func fileMagic(fsys vfs.FS, path string) (string, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return peekMagic(bufio.NewReaderSize(io.NewSectionReader(f, 0, 8), 16))
}

// wrongKind is the usage error for a file of another kvtool kind than the
// command reads (want, one of the Magic constants).
func wrongKind(cCtx *cli.Context, path, magic, want string) error {
	k := kinds[magic]
	return usageErrorf(cCtx, "%s is %s, not %s; check it with %s", path, k.name, kinds[want].name,
		strings.Replace(k.command, "FILE", shellQuote(path), 1))
}

// checkKind checks that the file at path is of the kind want: a usage
// error for another kvtool kind, damage (exit 3) for a file that is not a
// kvtool file, nil otherwise (and for a file that cannot be opened, which
// the command reports itself).
func checkKind(cCtx *cli.Context, fsys vfs.FS, path, want string) error {
	magic, err := fileMagic(fsys, path)
	switch {
	case errors.Is(err, errNotKvtool):
		return damaged(fmt.Errorf("%s is not %s: %w", path, kinds[want].name, err), "")
	case err != nil:
		return nil
	case magic == want, want == format.MagicCheckpoint && magic == format.MagicDelta:
		return nil
	}
	return wrongKind(cCtx, path, magic, want)
}

package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// urfave/cli reads a command's flags only up to its first positional
// argument, and the app's flags only before the command name. People write
// flags anywhere, as git, etcdctl and kubectl allow: `kvtool get k --addr
// H:P`, `kvtool txn - --addr H:P`, `kvtool --addr H:P get k`.
// normalizeArgs rewrites such a command line into the order urfave/cli
// reads, before it parses anything.

// normalizeArgs returns args (args[0] is the program name) with every flag
// of the command being run placed right after the command's name, before
// its positional arguments:
//
//   - a flag after a positional argument moves before the first one, with
//     its value if it takes one;
//   - a flag given before the command name that the app or group there does
//     not define, but the command does, moves after the command name;
//   - "--" ends the flags: everything after it stays a positional argument;
//   - a token that looks like a flag but is not one of the command's stays a
//     positional argument where it is (`kvtool put k -5`).
//
// Flags the app or a group defines stay where they are.
func normalizeArgs(app *cli.App, args []string) []string {
	if len(args) < 2 || slices.Contains(args, "--generate-bash-completion") {
		return args
	}
	var (
		head    []string // program, app and group flags, command names
		pending []flagToken
		flags   = append(slices.Clone(app.Flags), cli.VersionFlag)
		cmds    = app.Commands
		rest    = args[1:]
	)
	head = append(head, args[0])
	for len(rest) > 0 {
		tok := rest[0]
		if tok == "--" || !isFlagToken(tok) {
			c := findCommand(cmds, tok)
			if c == nil {
				break // the command (or the app, or a group) is reached
			}
			head = append(head, tok)
			flags, cmds, rest = c.Flags, c.Subcommands, rest[1:]
			continue
		}
		ft, n := readFlag(rest, flags, cmds)
		if ft.known {
			head = append(head, rest[:n]...)
		} else {
			ft.at = len(head)
			pending = append(pending, ft)
		}
		rest = rest[n:]
	}
	var moved []string
	for i := len(pending) - 1; i >= 0; i-- {
		ft := pending[i]
		f := lookupFlag(flags, ft.name)
		switch {
		case f == nil: // left where it was, for urfave/cli to say it is not defined
			head = slices.Insert(head, ft.at, ft.tokens...)
		case ft.value != "" && !takesValue(f):
			// The token taken as its value is a positional argument.
			moved = append([]string{ft.tokens[0]}, moved...)
			rest = append([]string{ft.value}, rest...)
		default:
			moved = append(slices.Clone(ft.tokens), moved...)
		}
	}
	cmdFlags, positional, dashdash := splitCommandArgs(rest, flags)
	out := append(append(head, moved...), cmdFlags...)
	if dashdash || len(positional) > 0 && isFlagToken(positional[0]) {
		out = append(out, "--")
	}
	return append(out, positional...)
}

// flagToken is a flag read from the command line: its name and tokens (the
// flag, and its value when given as a separate token).
type flagToken struct {
	name   string
	tokens []string
	value  string // the separate value token, if one was taken
	known  bool   // defined where it was found
	at     int    // where it was, in the head of the command line
}

// readFlag reads the flag at rest[0] among flags, and returns it and how
// many tokens it spans. A flag not defined there takes the next token as
// its value unless that token is a flag or one of cmds: which flags an
// unknown flag takes is settled once the command is known.
func readFlag(rest []string, flags []cli.Flag, cmds []*cli.Command) (flagToken, int) {
	tok := rest[0]
	name, inline := flagName(tok)
	ft := flagToken{name: name, tokens: []string{tok}}
	f := lookupFlag(flags, name)
	ft.known = f != nil
	wantsValue := !inline && len(rest) > 1
	switch {
	case !wantsValue:
	case f != nil && takesValue(f):
		ft.tokens, ft.value = rest[:2], rest[1]
	case f == nil && !isFlagToken(rest[1]) && findCommand(cmds, rest[1]) == nil:
		ft.tokens, ft.value = rest[:2], rest[1]
	}
	return ft, len(ft.tokens)
}

// splitCommandArgs separates the arguments after the command name into its
// flags (in order, with their values) and its positional arguments.
func splitCommandArgs(rest []string, flags []cli.Flag) (cmdFlags, positional []string, dashdash bool) {
	for i := 0; i < len(rest); i++ {
		tok := rest[i]
		if tok == "--" {
			return cmdFlags, append(positional, rest[i+1:]...), true
		}
		if !isFlagToken(tok) {
			positional = append(positional, tok)
			continue
		}
		name, inline := flagName(tok)
		f := lookupFlag(flags, name)
		if f == nil && len(positional) > 0 {
			positional = append(positional, tok) // a value such as -5
			continue
		}
		cmdFlags = append(cmdFlags, tok)
		if f != nil && takesValue(f) && !inline && i+1 < len(rest) {
			i++
			cmdFlags = append(cmdFlags, rest[i])
		}
	}
	return cmdFlags, positional, false
}

// isFlagToken reports whether tok is written as a flag: "-x" or "--x", but
// not "-" (standard input) or "--".
func isFlagToken(tok string) bool {
	return len(tok) > 1 && tok[0] == '-' && tok != "--"
}

// flagName returns the name of a flag token and whether it carries its
// value inline (--name=value).
func flagName(tok string) (string, bool) {
	name := strings.TrimLeft(tok, "-")
	name, _, inline := strings.Cut(name, "=")
	return name, inline
}

// lookupFlag finds the flag called name (or an alias) among flags; --help,
// which urfave/cli adds itself, is known everywhere.
func lookupFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range append(flags, cli.HelpFlag) {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

// takesValue reports whether f needs a value (every flag but a bool).
func takesValue(f cli.Flag) bool {
	if v, ok := f.(cli.DocGenerationFlag); ok {
		return v.TakesValue()
	}
	return false
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if slices.Contains(c.Names(), name) {
			return c
		}
	}
	return nil
}

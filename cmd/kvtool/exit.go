package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// Exit codes. They are part of the CLI contract: scripts depend on them.
const (
	exitOK      = 0 // success
	exitFailure = 1 // operational failure: I/O error, missing directory, lock held, ...
	exitUsage   = 2 // usage error: unknown command or flag, bad argument, wrong argument count
	exitDamage  = 3 // verification found corruption, a gap or a mismatch
	exitAborted = 4 // a transaction was aborted by a failed check; nothing changed
	// exitNotFound is get's answer for an absent key, so that a script can
	// tell "no such key" from "could not ask" (exit 1).
	exitNotFound    = 5
	exitInterrupted = 130 // stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report it)
)

// exitError is an error with the exit code it ends the process with and,
// optionally, a hint telling the user what to do next. Every command returns
// its failures as one (or as a plain error, which reportError classifies);
// reportError is the one place that turns errors into exit codes.
type exitError struct {
	code int
	err  error
	hint string // what to do next; printed on its own line
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode makes *exitError a cli.ExitCoder.
func (e *exitError) ExitCode() int { return e.code }

// failed is an operational failure (exit 1).
func failed(err error, hint string) error { return &exitError{code: exitFailure, err: err, hint: hint} }

// damaged says verification found damage (exit 3).
func damaged(err error, hint string) error { return &exitError{code: exitDamage, err: err, hint: hint} }

// aborted says a transaction was aborted by a failed check (exit 4).
func aborted(err error) error { return &exitError{code: exitAborted, err: err} }

// notFound says a key is absent (exit 5).
func notFound(err error) error { return &exitError{code: exitNotFound, err: err} }

// interrupted says a command stopped early because of SIGINT or SIGTERM
// (exit 130); done says what that left behind.
func interrupted(what, done string) error {
	return &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted: %s stopped before it finished", what), hint: done}
}

// asInterrupted turns the error of a command whose context was cancelled
// into an interruption (exit 130), unless it already is one or is a usage
// error (found before any work).
func asInterrupted(err error) error {
	switch exitCode(err) {
	case exitInterrupted, exitUsage:
		return err
	}
	return &exitError{code: exitInterrupted, err: errors.New("interrupted: the command stopped before it finished"), hint: hintFor(err)}
}

// usageErrorf is a usage error (exit 2) of the command running in cCtx; the
// hint points at that command's help.
func usageErrorf(cCtx *cli.Context, format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...), hint: helpHint(cCtx)}
}

// helpHint names the --help of the command running in cCtx.
func helpHint(cCtx *cli.Context) string {
	name := "kvtool"
	if cCtx != nil && cCtx.Command != nil && cCtx.Command.HelpName != "" {
		name = cCtx.Command.HelpName
	}
	return fmt.Sprintf("run '%s --help' for usage", name)
}

// onUsageError is installed on every command: it makes urfave/cli's flag
// parsing errors (unknown flag, bad value, missing value) exit 2.
func onUsageError(cCtx *cli.Context, err error, _ bool) error {
	return &exitError{code: exitUsage, err: err, hint: helpHint(cCtx)}
}

// wantArgs checks the number of positional arguments of a command.
func wantArgs(cCtx *cli.Context, min, max int) error {
	n := cCtx.NArg()
	switch {
	case n < min:
		return usageErrorf(cCtx, "%s: expected %s, got %d", cCtx.Command.HelpName, argCount(min, max), n)
	case max >= 0 && n > max:
		return usageErrorf(cCtx, "%s: unexpected argument %q (expected %s)",
			cCtx.Command.HelpName, cCtx.Args().Get(max), argCount(min, max))
	}
	return nil
}

func argCount(min, max int) string {
	plural := func(n int) string {
		if n == 0 {
			return "no arguments"
		}
		if n == 1 {
			return "1 argument"
		}
		return fmt.Sprintf("%d arguments", n)
	}
	switch {
	case min == max:
		return plural(min)
	case max < 0:
		return "at least " + plural(min)
	}
	return fmt.Sprintf("%d to %d arguments", min, max)
}

// exitCode classifies err. Errors that do not carry a code are classified by
// what they wrap: corruption is damage (3), anything else an operational
// failure (1). An exit code urfave/cli chose itself (it only makes them for
// bad help topics and the like) is a usage error.
func exitCode(err error) int {
	var ee *exitError
	var ec cli.ExitCoder
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ec):
		if ec.ExitCode() == 0 {
			return exitOK
		}
		return exitUsage
	case errors.Is(err, format.ErrCorruption):
		return exitDamage
	case requiredFlagRE.MatchString(err.Error()):
		return exitUsage
	}
	return exitFailure
}

// requiredFlagRE matches the one usage error urfave/cli returns without
// going through OnUsageError: a flag marked Required that was not given.
var requiredFlagRE = regexp.MustCompile(`^Required flags? ".*" not set$`)

// reportError prints err to w as "kvtool: <message>" followed by a hint line
// when there is one, and returns the exit code for it.
func reportError(w io.Writer, err error) int {
	code := exitCode(err)
	if err == nil || code == exitOK {
		return code
	}
	msg := userMessage(err)
	if msg != "" {
		fmt.Fprintf(w, "kvtool: %s\n", msg)
	}
	if hint := hintFor(err); hint != "" {
		fmt.Fprintf(w, "kvtool: hint: %s\n", hint)
	}
	return code
}

// goPrefixRE matches the package prefixes of library errors
// ("kvtool/vfs: "), and urlRE the request net/http puts in front of its
// errors (`Get "http://127.0.0.1:7070/v1/kv/k": `): Go's words, not the
// user's.
var (
	goPrefixRE = regexp.MustCompile(`\bkvtool/[a-z]+: `)
	urlRE      = regexp.MustCompile(`\b(Get|Head|Post|Put|Patch|Delete|Options) "[a-z]+://[^"]*": `)
)

// userMessage is err's message in the user's terms: without package
// prefixes and request URLs.
func userMessage(err error) string {
	msg := goPrefixRE.ReplaceAllString(err.Error(), "")
	msg = urlRE.ReplaceAllString(msg, "")
	return strings.TrimSpace(msg)
}

// hintFor returns the hint carried by err, or a generic one for errors every
// command can meet.
func hintFor(err error) string {
	if errors.Is(err, errNoHint) { // --quiet
		return ""
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.hint != "" {
		return ee.hint
	}
	switch {
	case errors.Is(err, vfs.ErrLocked):
		return "another process holds the data directory (is `kvtool serve` running on it?); stop it, or run this against a server, then try again"
	case errors.Is(err, context.Canceled):
		return "interrupted; nothing after the interruption was done"
	case errors.Is(err, format.ErrUnknownVersion):
		return "this file was written by a newer kvtool; use that version"
	}
	return ""
}

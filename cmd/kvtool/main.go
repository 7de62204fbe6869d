package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/kvtool/kvtool/vfs"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go watchSignals(sigs, cancel, os.Stderr, func() { os.Exit(exitInterrupted) })
	code := execute(ctx, os.Args, env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, fs: vfs.Default})
	os.Exit(code)
}

// watchSignals cancels the command's context at the first SIGINT or
// SIGTERM, so that it stops at a safe point, and calls force at the second:
// a person pressing Ctrl-C again wants out now.
func watchSignals(sigs <-chan os.Signal, cancel context.CancelFunc, stderr io.Writer, force func()) {
	sig := <-sigs
	cancel()
	fmt.Fprintf(stderr, "kvtool: %s: stopping at a safe point (send it again to stop at once)\n", sigName(sig))
	sig = <-sigs
	fmt.Fprintf(stderr, "kvtool: %s again: exiting now\n", sigName(sig))
	force()
}

func sigName(sig os.Signal) string {
	if sig == os.Interrupt {
		return "interrupted"
	}
	return sig.String()
}

// env is what one invocation runs against: its standard streams and the file
// system. Tests build one with buffers.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	fs             vfs.FS
}

// execute runs kvtool with args (args[0] is the program name) and returns
// the process exit code. It never calls os.Exit, so tests run it in-process.
// A command that fails after ctx was cancelled (SIGINT, SIGTERM) was
// interrupted: it exits 130.
func execute(ctx context.Context, args []string, e env) int {
	app := newApp(e)
	args = normalizeArgs(app, args)
	quiet := captureQuiet(app)
	err := app.RunContext(ctx, args)
	if err != nil && ctx.Err() != nil {
		err = asInterrupted(err)
	}
	if *quiet {
		err = withoutHint(err)
	}
	return reportError(e.stderr, err)
}

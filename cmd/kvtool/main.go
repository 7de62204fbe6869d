// Command kvtool runs a durable key-value store and inspects, verifies and
// repairs its data directory. See `kvtool --help` and README.md.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/kvtool/kvtool/vfs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args, env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, fs: vfs.Default})
	stop()
	os.Exit(code)
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
func execute(ctx context.Context, args []string, e env) int {
	app := newApp(e)
	quiet := captureQuiet(app)
	err := app.RunContext(ctx, args)
	if *quiet {
		err = withoutHint(err)
	}
	return reportError(e.stderr, err)
}

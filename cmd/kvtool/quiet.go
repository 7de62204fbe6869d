package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// --quiet prints results and errors only: no progress, notes, summaries
// or hints. The error line itself always goes out.

// captureQuiet makes every command of app record, when its action runs,
// whether --quiet is in force; execute reads it to leave the hint off the
// error report.
func captureQuiet(app *cli.App) *bool {
	quiet := new(bool)
	wrapActions(app.Commands, quiet)
	return quiet
}

func wrapActions(cmds []*cli.Command, quiet *bool) {
	for _, c := range cmds {
		if act := c.Action; act != nil {
			c.Action = func(cCtx *cli.Context) error {
				*quiet = globalsOf(cCtx).Quiet
				return act(cCtx)
			}
		}
		wrapActions(c.Subcommands, quiet)
	}
}

// errNoHint marks an error whose report has no hint line (see hintFor).
var errNoHint = errors.New("no hint")

// withoutHint returns err marked so that its report has no hint line.
func withoutHint(err error) error {
	if err == nil {
		return nil
	}
	return hintless{err}
}

type hintless struct{ error }

func (h hintless) Unwrap() error        { return h.error }
func (h hintless) Is(target error) bool { return target == errNoHint }

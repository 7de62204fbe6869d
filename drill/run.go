package drill

import (
	"fmt"
	"time"
)

// run accumulates one drill's result as it goes: timed steps, notes, and
// failed checks, each also written to the evidence log.
type run struct {
	env    *Env
	res    Result
	broken bool // the drill could not run to the end
	failed int  // checks that failed
}

func newRun(env *Env) *run { return &run{env: env} }

// step runs f as the named, timed step.
func (r *run) step(name string, f func() error) error {
	if r.env.Progress != nil {
		r.env.Progress(name)
	}
	r.logf("step %s", name)
	t0 := time.Now()
	err := f()
	d := time.Since(t0)
	r.res.Steps = append(r.res.Steps, Step{Name: name, Duration: d})
	if err != nil {
		r.logf("step %s failed after %v: %v", name, d.Round(time.Millisecond), err)
	} else {
		r.logf("step %s done in %v", name, d.Round(time.Millisecond))
	}
	return err
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.env.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

// note records something the operator should read even when the drill
// passes.
func (r *run) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.res.Notes = append(r.res.Notes, s)
	r.logf("note: %s", s)
}

// fail records a failed check: the drill found loss, divergence, or a
// recovery that did not do its job.
func (r *run) fail(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.failed++
	r.res.Failures = append(r.res.Failures, s)
	r.logf("FAILED: %s", s)
}

// check records a failed check if err is not nil, and reports whether it
// held.
func (r *run) check(what string, err error) bool {
	if err != nil {
		r.fail("%s: %v", what, err)
		return false
	}
	return true
}

// abort records that the drill could not go on (its setup failed) and
// returns the result so far.
func (r *run) abort(format string, args ...any) Result {
	s := fmt.Sprintf(format, args...)
	r.broken = true
	r.res.Failures = append(r.res.Failures, "could not run: "+s)
	r.logf("could not run: %s", s)
	return r.result()
}

// skip returns a Skip result saying why the drill cannot run here.
func (r *run) skip(format string, args ...any) Result {
	s := fmt.Sprintf(format, args...)
	r.logf("skipped: %s", s)
	r.res.Verdict = Skip
	r.res.Failures = append(r.res.Failures, s)
	return r.res
}

// result is the verdict: a failed check wins over a drill that could not
// finish (what it found is real); otherwise Error or Pass.
func (r *run) result() Result {
	switch {
	case r.failed > 0:
		r.res.Verdict = Fail
	case r.broken:
		r.res.Verdict = Error
	default:
		r.res.Verdict = Pass
	}
	return r.res
}

package main

import (
	"bytes"
	"flag"
	"testing"

	"github.com/urfave/cli/v2"
)

// testContext returns a context for an app writing to out and errw, with the
// given global flags set on the command line.
func testContext(t *testing.T, out, errw *bytes.Buffer, args ...string) *cli.Context {
	t.Helper()
	app := &cli.App{Writer: out, ErrWriter: errw, Flags: globalFlags(true)}
	set := flag.NewFlagSet("kvtool", flag.ContinueOnError)
	for _, f := range app.Flags {
		if err := f.Apply(set); err != nil {
			t.Fatal(err)
		}
	}
	if err := set.Parse(args); err != nil {
		t.Fatal(err)
	}
	cCtx := cli.NewContext(app, set, nil)
	cCtx.Command = &cli.Command{Name: "kvtool", Flags: app.Flags}
	return cCtx
}

func TestTable(t *testing.T) {
	var out, errw bytes.Buffer
	p := newPrinter(testContext(t, &out, &errw))
	tb := p.Table("NAME", "RECORDS")
	tb.Row("a.wal", 1)
	tb.Row("longer\tname.wal", 12345)
	if err := tb.Flush(); err != nil {
		t.Fatal(err)
	}
	p.Notef("%d segments", 2)
	want := "NAME             RECORDS\n" +
		"a.wal            1\n" +
		"longer name.wal  12345\n" +
		"2 segments\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestNotesQuietAndJSON(t *testing.T) {
	for _, flags := range [][]string{{"--quiet"}, {"--json"}} {
		var out, errw bytes.Buffer
		newPrinter(testContext(t, &out, &errw, flags...)).Notef("note")
		if out.Len() != 0 {
			t.Errorf("%v: Notef printed %q", flags, out.String())
		}
	}
}

func TestJSONLines(t *testing.T) {
	var out, errw bytes.Buffer
	p := newPrinter(testContext(t, &out, &errw, "--json"))
	p.JSONLine(map[string]int{"index": 1})
	p.JSONLine(map[string]int{"index": 2})
	if want := "{\"index\":1}\n{\"index\":2}\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// TestProgressOffWhenNotTerminal checks that the progress helper draws
// nothing when stderr is not a terminal (here, a buffer).
func TestProgressOffWhenNotTerminal(t *testing.T) {
	var out, errw bytes.Buffer
	pr := startProgress(testContext(t, &out, &errw), "verify", 100)
	pr.Update(50, 100)
	pr.Update(100, 200)
	pr.Done()
	if out.Len()+errw.Len() != 0 {
		t.Errorf("progress wrote %q / %q", out.String(), errw.String())
	}
}

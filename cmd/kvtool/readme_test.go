package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// The README's examples are transcripts: "$ command" lines, each followed
// by what it prints. TestREADME runs every one of them in-process, in the
// order of the README, and compares what each prints, so that the README
// cannot drift from the tool. go test -run TestREADME -update-readme
// rewrites the shown output from what the commands print now.
//
// Every transcript block is preceded by a marker saying what it runs on:
//
//	<!-- doctest: FIXTURE -->       a new directory prepared by FIXTURE
//	                                 (see readmeFixtures), or "continue"
//	                                 for the previous block's directory,
//	                                 environment and server
//	<!-- doctest: skip REASON -->    not run (say why)
//
// In a transcript: a command shown without output must exit 0 and its
// output is not compared; output shown is compared exactly (standard
// output, then standard error); a command that exits non-zero must be
// followed by "echo $?" (or end in "; echo $?"), which prints its code.
// "cat FILE" shows a file the next commands use: the test writes it.
// "export VAR=VALUE" sets a variable. "kvtool serve" starts the server in
// the background (on a free port, shown as 127.0.0.1:7070) and compares
// the lines it printed first; it stops when the session ends.

var updateREADME = flag.Bool("update-readme", false, "rewrite the output shown in README.md from what the commands print")

// readmeAddr is the server address the README shows.
const readmeAddr = "127.0.0.1:7070"

// readmeFixtures prepare the directory (the working directory) a
// transcript block runs in.
var readmeFixtures = map[string]func(t *testing.T, dir string){
	// fresh: an empty directory.
	"fresh": func(t *testing.T, dir string) {},
	// wal300: ./kvdata with 300 entries (entry i puts acct:i = 10*i) in
	// 4KiB segments.
	"wal300": func(t *testing.T, dir string) { readmeLog(t, filepath.Join(dir, "kvdata")) },
	// torn: wal300 after a crash in the middle of writing entry 300.
	"torn": func(t *testing.T, dir string) {
		data := filepath.Join(dir, "kvdata")
		readmeLog(t, data)
		segs := segments(t, data)
		newest := segs[len(segs)-1]
		tearTail(t, newest) // zeroes the clean-close record and the last record's end, as a crash mid-write leaves it
	},
}

func readmeLog(t *testing.T, data string) {
	t.Helper()
	st, err := store.Open(store.Options{Dir: data, Create: true, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 300; i++ {
		if _, err := st.Put(context.Background(), fmt.Sprintf("acct:%d", i), []byte(fmt.Sprint(10*i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// docBlock is one transcript of the README.
type docBlock struct {
	line   int    // of its opening fence, 1-based
	marker string // the doctest marker
	cmds   []*docCmd
}

// docCmd is one "$ " line and the output shown after it.
type docCmd struct {
	line     int // 1-based
	text     string
	want     []string
	wantFrom int // index in the README's lines of the first output line
	wantTo   int // and one past the last (trailing blank lines excluded)
	got      []string
	checked  bool // the output is compared (it is shown)
}

var markerRE = regexp.MustCompile(`^<!-- doctest: (.*?) -->$`)

// parseREADME returns the transcript blocks of the README's lines.
func parseREADME(t *testing.T, lines []string) []*docBlock {
	var blocks []*docBlock
	marker := ""
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if m := markerRE.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			marker = m[1]
			continue
		}
		if !strings.HasPrefix(l, "```") {
			if strings.TrimSpace(l) != "" {
				marker = ""
			}
			continue
		}
		b := &docBlock{line: i + 1, marker: marker}
		marker = ""
		var cur *docCmd
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			if cmd, ok := strings.CutPrefix(lines[i], "$ "); ok {
				cur = &docCmd{line: i + 1, text: cmd, wantFrom: i + 1, wantTo: i + 1}
				b.cmds = append(b.cmds, cur)
				continue
			}
			if cur == nil {
				continue // a block that is not a transcript, or text before its first command
			}
			cur.want = append(cur.want, lines[i])
			if strings.TrimSpace(lines[i]) != "" {
				cur.wantTo = i + 1
			}
		}
		if len(b.cmds) == 0 {
			continue
		}
		for _, c := range b.cmds {
			c.want = c.want[:c.wantTo-c.wantFrom]
			c.checked = len(c.want) > 0
		}
		if b.marker == "" {
			t.Errorf("README.md:%d: a transcript without a <!-- doctest: ... --> marker before it", b.line)
		}
		blocks = append(blocks, b)
	}
	return blocks
}

// docSession is the state transcripts run in: a directory, variables, and
// servers started in the background.
type docSession struct {
	t       *testing.T
	dir     string
	subst   map[string]string // in commands: shown -> actual
	unsubst map[string]string // in output: actual -> shown
	servers []*background
	last    int // exit code of the last command
}

func (s *docSession) stop() {
	for _, b := range s.servers {
		b.cancel()
		b.wait(s.t)
	}
	s.servers = nil
}

func TestREADME(t *testing.T) {
	path, err := filepath.Abs(filepath.Join("..", "..", "README.md")) // the test changes directory
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	blocks := parseREADME(t, lines)
	if len(blocks) < 5 {
		t.Fatalf("README.md has %d transcripts; the parser is broken", len(blocks))
	}
	t.Setenv("KVTOOL_SECRET", cliSecret)
	for _, v := range []string{"KVTOOL_DATA", "KVTOOL_ADDR"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	var s *docSession
	defer func() {
		if s != nil {
			s.stop()
		}
	}()
	for _, b := range blocks {
		name, _, _ := strings.Cut(b.marker, " ")
		switch {
		case name == "skip":
			continue
		case name == "continue":
			if s == nil {
				t.Fatalf("README.md:%d: \"continue\" with no transcript before it", b.line)
			}
		default:
			fixture, ok := readmeFixtures[name]
			if !ok {
				t.Fatalf("README.md:%d: unknown doctest fixture %q", b.line, name)
			}
			if s != nil {
				s.stop()
			}
			os.Unsetenv("KVTOOL_ADDR")
			s = &docSession{t: t, dir: t.TempDir(), subst: map[string]string{}, unsubst: map[string]string{}}
			t.Chdir(s.dir)
			fixture(t, s.dir)
		}
		s.runBlock(b)
	}
	if *updateREADME {
		writeREADME(t, path, lines, blocks)
	}
}

// runBlock runs the commands of b and compares what they print.
func (s *docSession) runBlock(b *docBlock) {
	t := s.t
	for i, c := range b.cmds {
		got, code := s.run(c)
		c.got, s.last = got, code
		next := ""
		if i+1 < len(b.cmds) {
			next = b.cmds[i+1].text
		}
		if code != 0 && !strings.HasSuffix(c.text, "echo $?") && strings.TrimSpace(next) != "echo $?" {
			t.Errorf("README.md:%d: %q exited %d (show it with echo $?):\n%s", c.line, c.text, code, strings.Join(got, "\n"))
		}
		if c.checked && !*updateREADME && strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("README.md:%d: %s\nprints:\n%s\nthe README shows:\n%s", c.line, c.text, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}
}

// run runs one command line and returns what it printed (as lines) and
// its exit code.
func (s *docSession) run(c *docCmd) ([]string, int) {
	t := s.t
	text := stripComment(c.text)
	echo := false
	if rest, ok := strings.CutSuffix(text, "; echo $?"); ok {
		text, echo = strings.TrimSpace(rest), true
	}
	if text == "echo $?" {
		return []string{fmt.Sprint(s.last)}, 0
	}
	for shown, actual := range s.subst {
		text = strings.ReplaceAll(text, shown, actual)
	}
	args, err := shellWords(text)
	if err != nil || len(args) == 0 {
		t.Fatalf("README.md:%d: cannot split %q: %v", c.line, c.text, err)
	}
	var out string
	code := 0
	switch {
	case args[0] == "cat" && len(args) == 2:
		c.checked = false
		if err := os.WriteFile(args[1], []byte(strings.Join(c.want, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return c.want, 0
	case args[0] == "export" && len(args) == 2:
		k, v, ok := strings.Cut(args[1], "=")
		if !ok {
			t.Fatalf("README.md:%d: export without =", c.line)
		}
		os.Setenv(k, v)
		return nil, 0
	case args[0] == "kvtool" && len(args) >= 2 && args[1] == "serve":
		out = s.serve(c, args)
	case args[0] == "kvtool":
		var stdout, stderr bytes.Buffer
		e := env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, fs: vfs.Default}
		code = execute(context.Background(), args, e)
		out = stdout.String() + stderr.String()
	default:
		t.Fatalf("README.md:%d: the doc test cannot run %q (only kvtool, cat FILE, export and echo $?)", c.line, c.text)
	}
	for actual, shown := range s.unsubst {
		out = strings.ReplaceAll(out, actual, shown)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if out == "" {
		lines = nil
	}
	if echo {
		lines = append(lines, fmt.Sprint(code))
		code = 0
	}
	return lines, code
}

// serve starts kvtool serve in the background on a free port and returns
// the first lines it printed (as many as the README shows).
func (s *docSession) serve(c *docCmd, args []string) string {
	t := s.t
	if !strings.Contains(strings.Join(args, " "), "--listen") {
		args = append(args, "--listen", "127.0.0.1:0")
	}
	b := startKvtool(t, nil, args[1:]...)
	s.servers = append(s.servers, b)
	deadline := time.Now().Add(60 * time.Second)
	for {
		out := b.stdout.String()
		if n := strings.Count(out, "\n"); n >= max(len(c.want), 1) {
			if m := regexp.MustCompile(`http://([0-9.]+:[0-9]+)`).FindStringSubmatch(out); m != nil {
				s.subst[readmeAddr], s.unsubst[m[1]] = m[1], readmeAddr
			}
			return out
		}
		select {
		case code := <-b.code:
			b.code <- code
			t.Fatalf("README.md:%d: kvtool serve exited %d:\n%s%s", c.line, code, out, b.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("README.md:%d: kvtool serve printed %q", c.line, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stripComment removes a trailing "# comment" (outside quotes).
func stripComment(s string) string {
	quote := rune(0)
	for i, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote == 0 && (r == '\'' || r == '"'):
			quote = r
		case quote == 0 && r == '#' && (i == 0 || s[i-1] == ' '):
			return strings.TrimSpace(s[:i])
		}
	}
	return strings.TrimSpace(s)
}

// shellWords splits a command line as a POSIX shell does for the simple
// commands the README shows: words, '...' and "..." quoting.
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	in, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words, in = append(words, w.String()), false
				w.Reset()
			}
		case strings.ContainsRune("|<>&;$`", r):
			return nil, fmt.Errorf("%q needs a shell", r)
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote")
	}
	if in {
		words = append(words, w.String())
	}
	return words, nil
}

// writeREADME replaces the output shown after every command that shows
// some with what it printed.
func writeREADME(t *testing.T, path string, lines []string, blocks []*docBlock) {
	var cmds []*docCmd
	for _, b := range blocks {
		for _, c := range b.cmds {
			if c.checked && c.got != nil {
				cmds = append(cmds, c)
			}
		}
	}
	for i := len(cmds) - 1; i >= 0; i-- {
		c := cmds[i]
		lines = append(lines[:c.wantFrom], append(append([]string{}, c.got...), lines[c.wantTo:]...)...)
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}

package query

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/format"
)

func TestWalRows(t *testing.T) {
	st := openStore(t)
	put(t, st, "a", "100")            // 1: +100 (absent counts as 0)
	put(t, st, "a", "90", "b", "-3")  // 2: -10, -3
	del(t, st, "a")                   // 3: del
	put(t, st, "a", "5", "c", "text") // 4: +5, NULL (not an integer)
	put(t, st, "b", "\xff")           // 5: BLOB, NULL
	s := openSession(t, st, Options{})
	got := all(t, s, `SELECT "index", term, op, key, value, delta FROM wal`)
	want := []string{
		`1|1|"put"|"a"|"100"|100`,
		`2|1|"put"|"a"|"90"|-10`,
		`2|1|"put"|"b"|"-3"|-3`,
		`3|1|"del"|"a"|NULL|NULL`,
		`4|1|"put"|"a"|"5"|5`,
		`4|1|"put"|"c"|"text"|NULL`,
		`5|1|"put"|"b"|x'ff'|NULL`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("wal:\n got %q\nwant %q", got, want)
	}
	// A delta from the middle of the log knows the value before it.
	if got := all(t, s, `SELECT delta FROM wal WHERE "index" = 4 AND key = 'a'`); !slices.Equal(got, []string{"5"}) {
		t.Errorf("delta of a at 4 read alone: %q", got)
	}
	if got := all(t, s, `SELECT delta FROM wal WHERE "index" >= 2 AND key = 'a'`); !slices.Equal(got, []string{"-10", "NULL", "5"}) {
		t.Errorf("deltas of a from 2: %q", got)
	}
	// segment and offset say where each entry's frame is.
	for _, row := range all(t, s, `SELECT DISTINCT "index", segment, offset FROM wal`) {
		var idx, off int64
		var seg string
		if _, err := fmt.Sscanf(strings.ReplaceAll(row, "|", " "), "%d %q %d", &idx, &seg, &off); err != nil {
			t.Fatalf("row %q: %v", row, err)
		}
		b, err := os.ReadFile(filepath.Join(st.Dir(), format.WALDir, seg))
		if err != nil {
			t.Fatal(err)
		}
		fr := format.NewFrameReader(strings.NewReader(string(b[off:])), seg, off, int64(len(b)), false)
		fm, err := fr.Next()
		p := fm.Payload
		if err != nil || len(p) < 8 || int64(p[0]) != idx {
			t.Errorf("index %d: no frame of it at %s offset %d (%v)", idx, seg, off, err)
		}
	}
	// The table ends at the session's snapshot, like kv.
	put(t, st, "z", "1")
	if got := all(t, s, `SELECT max("index") FROM wal`); !slices.Equal(got, []string{"5"}) {
		t.Errorf("max index after a later write: %q, want the snapshot's 5", got)
	}
	if got := all(t, openDir(t, st.Dir(), Options{}), `SELECT max("index") FROM wal`); !slices.Equal(got, []string{"6"}) {
		t.Errorf("max index from the directory: %q, want 6", got)
	}
}

// Index pushdown gives the rows SQLite alone would.
func TestWalPushdown(t *testing.T) {
	st := openStore(t)
	for i := range 60 {
		put(t, st, fmt.Sprintf("k%d", i%7), fmt.Sprint(i), "x", fmt.Sprint(i))
	}
	on := openSession(t, st, Options{})
	off := openSession(t, st, Options{NoPushdown: true})
	for _, where := range []string{
		`"index" = 7`, `"index" IN (3, 9, 60, 61)`, `"index" > 55`, `"index" >= 55`, `"index" < 3`, `"index" <= 3`,
		`"index" BETWEEN 10 AND 12`, `"index" > 10 AND "index" < 5`, `"index" > -1 AND "index" <= 0`,
		`"index" > '50'`, `"index" = 5.0`, `"index" > 9223372036854775807`, `"index" >= 58 AND key = 'x'`,
	} {
		for _, order := range []string{"", ` ORDER BY "index"`, ` ORDER BY "index" DESC`} {
			q := `SELECT "index", key, value, delta FROM wal WHERE ` + where + order
			a, b := all(t, on, q), all(t, off, q)
			if order == "" {
				slices.Sort(a)
				slices.Sort(b)
			}
			if !slices.Equal(a, b) {
				t.Errorf("%s: pushed down %q, SQLite alone %q", q, a, b)
			}
		}
	}
}

package query

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// The tables of the directory's files say what kvtool's list commands say.
func TestFileTables(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	h := newHistory(t, st)
	h.write(10)
	ck, err := st.Checkpoint(ctx) // base at 10
	if err != nil {
		t.Fatal(err)
	}
	h.write(5)
	d, err := st.Delta(ctx) // (10, 15]
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Rotate(); err != nil {
		t.Fatal(err)
	}
	h.write(3)
	lease := st.AcquireLease("peer-1", 12, []string{"snap/" + ck.Name}, time.Hour)
	defer lease.Release()
	s := openSession(t, st, Options{})
	check := func(q string, want ...string) {
		t.Helper()
		if got := all(t, s, q); !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", q, got, want)
		}
	}
	check(`SELECT name, "index", keys, base, error FROM checkpoints`,
		`"`+ck.Name+`"|10|`+itoa(ck.Keys)+`|1|NULL`)
	check("SELECT name, from_index, to_index, parent, in_chain, error FROM deltas",
		`"`+d.Name+`"|10|15|"`+ck.Name+`"|1|NULL`)
	check("SELECT base, base_index, deltas, snapshot_index, wal_first_index, shards FROM manifest",
		`"`+ck.Name+`"|10|1|15|11|4`)
	check("SELECT first_index, last_index, records, needed, problems FROM segments",
		"1|15|15|1|NULL", "16|18|3|1|NULL")
	check("SELECT peer, pinned_index, files, state FROM leases", `"peer-1"|12|"snap/`+ck.Name+`"|"active"`)
	// From the directory alone there are no leases.
	if got := all(t, openDir(t, st.Dir(), Options{}), "SELECT count(*) FROM leases"); !slices.Equal(got, []string{"0"}) {
		t.Errorf("leases from the directory: %q", got)
	}
	if got := all(t, s, "SELECT checksum FROM checkpoints"); len(got) != 1 || len(strings.Trim(got[0], `"`)) != 16 {
		t.Errorf("checkpoint checksum: %q", got)
	}
}

func itoa[T ~uint64 | ~int](n T) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		if n /= 10; n == 0 {
			return string(b)
		}
	}
}

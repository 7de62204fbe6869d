package query

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// After the first row, Rows read rows themselves (stepRow): every type of
// value comes back as the driver gives it, each row's values stay valid
// after the next, and an error on a later row reads as one on the first.
func TestRowsReadLikeTheDriver(t *testing.T) {
	s := openSession(t, openStore(t), Options{})
	if s.tls == nil || s.db == 0 {
		t.Fatal("the session has no connection handles")
	}
	ref, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	const q = `SELECT column1, column1 * 2.5, 'k' || column1, x'00ff', NULL, '', x'',
		'a' || char(0) || 'b', CAST(x'ff80' AS TEXT), CASE WHEN column1 % 2 = 0 THEN 'even' ELSE column1 END,
		zeroblob(column1), substr(x'0102030405', 1, column1 % 5), 9223372036854775807, -0.0, printf('%.*c', column1, 'x')
		FROM (VALUES (1), (2), (3), (4), (5), (300))`
	rows, err := s.Query(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	var kept [][]any
	for rows.Next() {
		kept = append(kept, slices.Clone(rows.Values()))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if rows.pstmt == 0 {
		t.Fatal("the rows were read by the driver")
	}
	want, err := refRows(ref, q)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, vals := range kept { // read after the rows moved on and closed
		got = append(got, formatRow(vals))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("rows %q, the driver's %q", got, want)
	}
	// The Go type of every value.
	q2 := `SELECT column1, column1 * 2.5, 'k' || column1, x'00ff', NULL, '', x'', 'a' || char(0) || 'b',
		CAST(x'ff80' AS TEXT), zeroblob(column1 % 2) FROM (VALUES (1), (2), (3))`
	rows, err = s.Query(t.Context(), q2)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for rows.Next() {
		types = append(types, fmt.Sprintf("%T", rows.Values()))
		for _, v := range rows.Values() {
			types = append(types, fmt.Sprintf("%T", v))
		}
	}
	rows.Close()
	dr, err := ref.Query(q2)
	if err != nil {
		t.Fatal(err)
	}
	var wantTypes []string
	for dr.Next() {
		vals := make([]any, 10)
		ptrs := make([]any, 10)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := dr.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		wantTypes = append(wantTypes, fmt.Sprintf("%T", []any{}))
		for _, v := range vals {
			wantTypes = append(wantTypes, fmt.Sprintf("%T", v))
		}
	}
	dr.Close()
	if !slices.Equal(types, wantTypes) {
		t.Errorf("types %q, the driver's %q", types, wantTypes)
	}
	got, err = queryAll(s, q2)
	want, werr := refRows(ref, q2)
	if err != nil || werr != nil || !slices.Equal(got, want) {
		t.Errorf("rows %q (%v), the driver's %q (%v)", got, err, want, werr)
	}

	// An error on the third row, and on the first (read by the driver).
	_, late := queryAll(s, "SELECT CASE WHEN column1 > 2 THEN abs(-9223372036854775807 - 1) ELSE column1 END FROM (VALUES (1), (2), (3))")
	_, early := queryAll(s, "SELECT abs(-9223372036854775807 - 1)")
	var le, ee *SQLError
	if !errors.As(late, &le) || !errors.As(early, &ee) || le.Msg != ee.Msg {
		t.Errorf("an error on row 3: %v; on row 1: %v", late, early)
	}
}

package query

import (
	"fmt"
	"strings"
)

// DiffColumns are the columns of DiffQuery's rows: what happened to the
// key ('added', 'changed' or 'removed'), the key, its value at the first
// index (NULL if added) and at the second (NULL if removed).
var DiffColumns = []string{"change", "key", "old", "new"}

// DiffQuery returns the statement `kvtool diff` runs: the keys added,
// changed and removed from the state at from to the state at to (both
// rebuilt as kv_at does), with prefix only the keys that start with it, in
// key order. It is plain SQL over kv_at, so a server runs it like any
// query; each side is scanned once and looked up in the other by key.
func DiffQuery(from, to uint64, prefix string) string {
	where := func(col string) string {
		if prefix == "" {
			return ""
		}
		r := prefixRange(prefix)
		w := fmt.Sprintf(" AND %s >= %s", col, textLiteral(r.lo))
		if r.hiSet {
			w += fmt.Sprintf(" AND %s < %s", col, textLiteral(r.hi))
		}
		return w
	}
	return fmt.Sprintf(`SELECT change, key, old, new FROM (
  SELECT CASE WHEN a.key IS NULL THEN 'added' ELSE 'changed' END AS change, b.key AS key, a.value AS old, b.value AS new
    FROM kv_at(%[2]d) AS b LEFT JOIN kv_at(%[1]d) AS a ON a.key = b.key
   WHERE (a.key IS NULL OR a.value IS NOT b.value)%[3]s
  UNION ALL
  SELECT 'removed', a.key, a.value, NULL
    FROM kv_at(%[1]d) AS a LEFT JOIN kv_at(%[2]d) AS b ON b.key = a.key
   WHERE b.key IS NULL%[4]s
) ORDER BY key`, from, to, where("b.key"), where("a.key"))
}

// textLiteral is s as an SQL TEXT value whatever its bytes (NUL and
// invalid UTF-8 included).
func textLiteral(s string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CAST(x'%x' AS TEXT)", s)
	return b.String()
}

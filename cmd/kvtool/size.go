package main

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/urfave/cli/v2"
)

// sizeUnits are the units a size may carry, lower-cased. KB, MB, GB, TB are
// powers of 1000 and KiB, MiB, GiB, TiB powers of 1024, as everywhere else;
// the bare letters K, M, G, T are refused as ambiguous.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// parseSize parses a byte count with an optional unit: "4096", "64KiB",
// "4MB", "1.5GiB", "512 B". The result must be a whole number of bytes that
// fits in an int64.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit, like 4096, 64KiB, 4MB or 1GiB", s)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: %s", s, unitHelp(unit))
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("invalid size %q: %q is not a number", s, num)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return r.Num().Int64(), nil
}

func unitHelp(unit string) string {
	switch unit {
	case "k", "m", "g", "t":
		u := strings.ToUpper(unit)
		return fmt.Sprintf("ambiguous unit %q: write %sB (powers of 1000) or %siB (powers of 1024)", u, u, u)
	}
	return fmt.Sprintf("unknown unit %q: use B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)", unit)
}

// formatSize formats n with the largest binary unit that divides it
// exactly ("64MiB"), or as plain bytes ("1000"). parseSize reads it back.
func formatSize(n int64) string {
	units := []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if n != 0 && n%u.mult == 0 {
			return fmt.Sprintf("%d%s", n/u.mult, u.name)
		}
	}
	return fmt.Sprint(n)
}

// sizeValue is a flag.Value holding a size in bytes.
type sizeValue struct{ n int64 }

func (v *sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	v.n = n
	return nil
}

func (v *sizeValue) String() string {
	if v == nil {
		return ""
	}
	return formatSize(v.n)
}

// newSizeFlag returns a flag taking a size with a unit (see parseSize),
// e.g. newSizeFlag("segment-size", "rotate segments at `SIZE`", 64<<20).
// Read it with sizeFlag. A bad value is a usage error (exit 2).
func newSizeFlag(name, usage string, def int64) *cli.GenericFlag {
	return &cli.GenericFlag{
		Name:  name,
		Usage: usage + " (units: B, KB, MB, GB, KiB, MiB, GiB, ...)",
		Value: &sizeValue{n: def},
	}
}

// sizeFlag returns the value of a flag made by newSizeFlag.
func sizeFlag(cCtx *cli.Context, name string) int64 {
	if v, ok := cCtx.Generic(name).(*sizeValue); ok {
		return v.n
	}
	return 0
}

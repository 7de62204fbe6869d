package delta

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/vfs"
)

// ErrChain is matched (errors.Is) by every *ChainError.
var ErrChain = errors.New("kvtool/delta: broken delta chain")

// ChainProblem is one fault of a chain, in the file it was found in.
type ChainProblem struct {
	File   string // file name
	Reason string
}

// ChainError lists every fault of a chain: gaps, overlaps, wrong parents,
// foreign store IDs, names that disagree with contents.
type ChainError struct {
	Problems []ChainProblem
}

func (e *ChainError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.File + ": " + p.Reason
	}
	return ErrChain.Error() + ": " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrChain) true.
func (e *ChainError) Is(target error) bool { return target == ErrChain }

func (e *ChainError) addf(file, reason string, args ...any) {
	e.Problems = append(e.Problems, ChainProblem{file, fmt.Sprintf(reason, args...)})
}

func (e *ChainError) err() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// Link is one file of a chain as its header describes it. For a base
// checkpoint From is 0, To its index and Parent empty.
type Link struct {
	Name     string
	StoreID  manifest.StoreID
	From, To uint64
	Parent   string
}

// LinkOf returns the link of a delta.
func LinkOf(name string, m Meta) Link {
	return Link{Name: name, StoreID: m.StoreID, From: m.From, To: m.To, Parent: m.Parent}
}

// BaseLink returns the link of a base checkpoint.
func BaseLink(name string, m checkpoint.Meta) Link {
	return Link{Name: name, StoreID: m.StoreID, To: m.Index}
}

// CheckLinks checks a chain: each delta starts where the one before ends
// (the base for the first; nil base: the empty state at 0), names the one
// before as its parent, carries the base's store ID and a name that
// matches its range. It returns a *ChainError listing every fault.
func CheckLinks(base *Link, deltas []Link) error {
	var ce ChainError
	prev := Link{}
	if base != nil {
		prev = *base
	} else if len(deltas) > 0 {
		prev.StoreID = deltas[0].StoreID
	}
	for _, d := range deltas {
		checkLink(&ce, prev, d)
		if d.StoreID != prev.StoreID {
			ce.addf(d.Name, "store %s, but the chain belongs to store %s", d.StoreID, prev.StoreID)
		}
		if d.Parent != prev.Name {
			ce.addf(d.Name, "parent is %q, want %q", d.Parent, prev.Name)
		}
		id := prev.StoreID
		prev = d
		prev.StoreID = id
	}
	return ce.err()
}

// checkLink checks d's range against the link before it and its name.
func checkLink(ce *ChainError, prev, d Link) {
	after := prev.Name
	if after == "" {
		after = "the empty state"
	}
	switch {
	case d.To <= d.From:
		ce.addf(d.Name, "empty index range (%d, %d]", d.From, d.To)
	case d.From > prev.To:
		ce.addf(d.Name, "gap: covers (%d, %d] but %s ends at %d", d.From, d.To, after, prev.To)
	case d.From < prev.To:
		ce.addf(d.Name, "overlap: covers (%d, %d] but %s already reaches %d", d.From, d.To, after, prev.To)
	}
	if from, to, ok := format.ParseDeltaName(d.Name); ok && (from != d.From || to != d.To) {
		ce.addf(d.Name, "name says (%d, %d], contents (%d, %d]", from, to, d.From, d.To)
	}
}

// CheckChain checks the chain a manifest names: every delta's FromIndex
// is the index the chain reached before it (base's Index; 0 without a
// base), its range is not empty, and names match ranges. Store IDs and
// parent names are in the files; CheckFiles checks those.
func CheckChain(base *manifest.FileRef, deltas []manifest.FileRef) error {
	var ce ChainError
	prev := Link{}
	if base != nil {
		prev = Link{Name: base.Name, To: base.Index}
		if idx, ok := format.ParseCheckpointName(base.Name); ok && idx != base.Index {
			ce.addf(base.Name, "name says index %d, the manifest %d", idx, base.Index)
		}
	}
	for _, d := range deltas {
		l := Link{Name: d.Name, From: d.FromIndex, To: d.Index}
		checkLink(&ce, prev, l)
		prev = l
	}
	return ce.err()
}

// CheckFiles reads the headers of a base checkpoint and its deltas (names
// in dir; base "" for the empty state) and checks the chain with
// CheckLinks. A file that cannot be read is returned as its error.
func CheckFiles(fs vfs.FS, dir, base string, deltas []string) error {
	var bl *Link
	if base != "" {
		ci, err := checkpoint.ReadInfo(fs, filepath.Join(dir, base))
		if err != nil {
			return err
		}
		l := BaseLink(base, ci.Meta)
		bl = &l
	}
	links := make([]Link, 0, len(deltas))
	for _, name := range deltas {
		di, err := ReadInfo(fs, filepath.Join(dir, name))
		if err != nil {
			return err
		}
		links = append(links, LinkOf(name, di.Meta))
	}
	return CheckLinks(bl, links)
}

package datadir

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/delta"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// headerExtOffset is where the kind-specific header fields of every kvtool
// file start (store ID, then index range, term, parent): faults in them are
// reported at this offset.
const headerExtOffset = 16

// chainLinks collects the base and deltas as their headers describe them,
// for delta.CheckLinks.
type chainLinks struct {
	base       *delta.Link
	deltas     []delta.Link
	incomplete bool // a file of the chain could not be read: links are not checked
}

// checkSnapshot verifies the base and the deltas the manifest names, and
// the chain they form.
func (v *verifier) checkSnapshot() error {
	if v.man == nil {
		return nil
	}
	v.total += v.snapBytes(v.refs())
	if err := v.checkBase(); err != nil {
		return err
	}
	if err := v.checkDeltas(); err != nil {
		return err
	}
	v.checkLinks()
	return nil
}

// checkBaseOnly is the step of VerifyBase.
func (v *verifier) checkBaseOnly() error {
	if v.man == nil {
		return nil
	}
	if v.man.Base == nil {
		v.rep.notef("the manifest names no base checkpoint: the state starts empty at index 0")
		return nil
	}
	v.total = v.snapBytes([]manifest.FileRef{*v.man.Base})
	return v.checkBase()
}

// checkChainOnly is the step of VerifyChain.
func (v *verifier) checkChainOnly() error {
	if v.man == nil {
		return nil
	}
	if len(v.man.Deltas) == 0 {
		v.rep.notef("the manifest names no deltas")
	}
	v.total = v.snapBytes(v.man.Deltas)
	if err := v.readBaseLink(); err != nil {
		return err
	}
	if err := v.checkDeltas(); err != nil {
		return err
	}
	v.checkLinks()
	return nil
}

// snapBytes is the size of the named files that exist.
func (v *verifier) snapBytes(refs []manifest.FileRef) int64 {
	var n int64
	for _, r := range refs {
		if validName(r.Name) {
			n += v.l.sizes[filepath.Join(v.l.snapDir, r.Name)]
		}
	}
	return n
}

// present checks that the file the manifest names at path exists; a
// missing one is a fault.
func (v *verifier) present(path string, kind FileKind, role string) (size int64, ok bool, err error) {
	size, err = fileSize(v.fsys, path)
	switch {
	case vfs.IsNotExist(err):
		v.rep.addf(path, kind, NoOffset, Missing, "the manifest names it as its %s, but it does not exist", role)
		return 0, false, nil
	case err != nil:
		return 0, false, err
	}
	v.rep.file(path, kind).Size = size
	return size, true, nil
}

// checkBase verifies the base checkpoint and records its link.
func (v *verifier) checkBase() error {
	ref := v.man.Base
	if ref == nil || !validName(ref.Name) {
		v.links.incomplete = ref != nil
		return nil
	}
	path := filepath.Join(v.l.snapDir, ref.Name)
	size, ok, err := v.present(path, KindCheckpoint, "base checkpoint")
	if !ok || err != nil {
		v.links.incomplete = true
		return err
	}
	rep, err := v.verifyCheckpoint(path, size)
	if err != nil {
		return err
	}
	v.compareRef(path, KindCheckpoint, rep, *ref)
	return v.baseLink(path, *ref, false)
}

// readBaseLink reads the base's header and footer only (VerifyChain).
func (v *verifier) readBaseLink() error {
	ref := v.man.Base
	if ref == nil || !validName(ref.Name) {
		v.links.incomplete = ref != nil
		return nil
	}
	path := filepath.Join(v.l.snapDir, ref.Name)
	if _, ok, err := v.present(path, KindCheckpoint, "base checkpoint"); !ok || err != nil {
		v.links.incomplete = true
		return err
	}
	return v.baseLink(path, *ref, true)
}

// baseLink reads the base's header for the chain check and checks its
// store ID. Damage it meets is a fault only if report is set (else Verify
// reported it already).
func (v *verifier) baseLink(path string, ref manifest.FileRef, report bool) error {
	info, err := checkpoint.ReadInfo(v.fsys, path)
	if err != nil {
		v.links.incomplete = true
		return v.unreadable(path, KindCheckpoint, err, report)
	}
	v.checkStore(path, KindCheckpoint, info.Meta.StoreID)
	l := delta.BaseLink(ref.Name, info.Meta)
	v.links.base = &l
	return nil
}

// unreadable records damage met reading a header (when report is set) and
// returns any other error.
func (v *verifier) unreadable(path string, kind FileKind, err error, report bool) error {
	ce := format.AsCorruption(err)
	if ce == nil {
		return err
	}
	if report {
		v.rep.addf(path, kind, ce.Offset, Corruption, "%s", ce.Reason)
	}
	return nil
}

// verifyCheckpoint runs checkpoint.Verify on path and records its problems.
func (v *verifier) verifyCheckpoint(path string, size int64) (*table.Report, error) {
	v.rep.file(path, KindCheckpoint).Size = size
	rep, err := checkpoint.Verify(v.fsys, path, table.VerifyOptions{Progress: v.progress()})
	if err != nil {
		return nil, err
	}
	v.addTable(path, KindCheckpoint, rep)
	v.advance(size)
	return rep, nil
}

// checkDeltas verifies every delta of the chain and records its link.
func (v *verifier) checkDeltas() error {
	for _, ref := range v.man.Deltas {
		if err := v.checkDelta(ref); err != nil {
			return err
		}
	}
	return nil
}

func (v *verifier) checkDelta(ref manifest.FileRef) error {
	if !validName(ref.Name) {
		v.links.incomplete = true
		return nil
	}
	path := filepath.Join(v.l.snapDir, ref.Name)
	size, ok, err := v.present(path, KindDelta, "delta")
	if !ok || err != nil {
		v.links.incomplete = true
		return err
	}
	rep, err := delta.Verify(v.fsys, path, table.VerifyOptions{Progress: v.progress()})
	if err != nil {
		return err
	}
	v.addTable(path, KindDelta, rep)
	v.advance(size)
	v.compareRef(path, KindDelta, rep, ref)
	info, err := delta.ReadInfo(v.fsys, path)
	if err != nil {
		v.links.incomplete = true
		return v.unreadable(path, KindDelta, err, false)
	}
	v.checkStore(path, KindDelta, info.Meta.StoreID)
	v.links.deltas = append(v.links.deltas, delta.LinkOf(ref.Name, info.Meta))
	return nil
}

// addTable records the problems of a table report.
func (v *verifier) addTable(path string, kind FileKind, rep *table.Report) {
	for _, p := range rep.Problems {
		v.rep.addf(path, kind, p.Offset, Corruption, "%s", p.Reason)
	}
	if rep.Omitted > 0 {
		v.rep.Faults += rep.Omitted
		v.rep.notef("%s: %d more problems were found but are not listed", path, rep.Omitted)
	}
}

// compareRef checks that the file is the one the manifest recorded: same
// size, index range and whole-file checksum. A file replaced under the same
// name, or rewritten, is caught here even if it is sound in itself.
func (v *verifier) compareRef(path string, kind FileKind, rep *table.Report, ref manifest.FileRef) {
	if rep.Size != ref.Size {
		v.rep.addf(path, kind, NoOffset, Mismatch, "file is %d bytes, the manifest recorded %d", rep.Size, ref.Size)
	}
	if !rep.FooterOK {
		return // the damaged footer is reported already
	}
	off := rep.Footer.FooterOffset()
	if rep.Footer.Index != ref.Index || rep.Footer.FromIndex != ref.FromIndex {
		v.rep.addf(path, kind, off, Mismatch, "footer says %s, the manifest recorded %s",
			rangeText(kind, rep.Footer.FromIndex, rep.Footer.Index), rangeText(kind, ref.FromIndex, ref.Index))
	}
	if rep.Footer.Checksum != ref.Checksum {
		v.rep.addf(path, kind, off, Mismatch, "footer checksum %016x, the manifest recorded %016x (the file was replaced or rewritten)",
			rep.Footer.Checksum, ref.Checksum)
	}
}

func rangeText(kind FileKind, from, to uint64) string {
	if kind == KindCheckpoint {
		return fmt.Sprintf("index %d", to)
	}
	return fmt.Sprintf("(%d, %d]", from, to)
}

// checkStore checks that a file carries the manifest's store ID.
func (v *verifier) checkStore(path string, kind FileKind, id manifest.StoreID) {
	if id != v.man.StoreID {
		v.rep.addf(path, kind, headerExtOffset, Foreign, "belongs to store %s, the manifest's store is %s", id, v.man.StoreID)
	}
}

// checkLinks checks the chain's ranges and parents with delta.CheckLinks.
// Store IDs were checked against the manifest file by file, so the links
// carry the manifest's, and a foreign file is not reported twice.
func (v *verifier) checkLinks() {
	if v.links.incomplete {
		v.rep.notef("the delta chain's links were not checked: a file of the chain is missing or unreadable (see its fault)")
		return
	}
	base := v.links.base
	if base != nil {
		b := *base
		b.StoreID = v.man.StoreID
		base = &b
	}
	links := make([]delta.Link, len(v.links.deltas))
	for i, l := range v.links.deltas {
		l.StoreID = v.man.StoreID
		links[i] = l
	}
	var ce *delta.ChainError
	if err := delta.CheckLinks(base, links); errors.As(err, &ce) {
		for _, p := range ce.Problems {
			v.rep.addf(filepath.Join(v.l.snapDir, p.File), kindOfName(p.File), headerExtOffset, Chain, "%s", p.Reason)
		}
	}
}

// kindOfName says whether a snapshot file name is a checkpoint's or a
// delta's.
func kindOfName(name string) FileKind {
	if _, ok := format.ParseCheckpointName(name); ok {
		return KindCheckpoint
	}
	return KindDelta
}

package datadir

import (
	"errors"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// VerifyOptions tune the verifications.
type VerifyOptions struct {
	// Progress, if set, is called as files are read with the bytes read so
	// far and the bytes to read in all.
	Progress func(done, total int64)
	// Raft, if set, verifies a cluster member's raft directory (DATA/raft)
	// too, after the store's files; without it the directory is noted as
	// not verified.
	Raft RaftChecker
}

// verifier holds the state of one verification.
type verifier struct {
	fsys  vfs.FS
	l     *layout
	man   *manifest.Manifest
	rep   *Report
	opts  VerifyOptions
	done  int64 // bytes of the files finished
	total int64
	links chainLinks
}

// Verify checks every file of the data directory dir and reports every
// fault with its file and offset:
//
//   - the manifest decodes, and every file it names is a plain name;
//   - the base checkpoint and every delta exist, pass checkpoint.Verify or
//     delta.Verify (every block checksum, the whole-file checksum, the
//     recomputed hash against the footer), carry the manifest's store ID,
//     and match the manifest's record of them (size, index range, checksum);
//   - the chain links up: each delta starts where the one before ends and
//     names it as its parent (delta.CheckLinks);
//   - the WAL passes segment.Verify (checksums, contiguity, header chain,
//     torn tail), every segment carries the manifest's store ID, and the
//     retained segments cover the manifest's WAL first index through the
//     end of the log;
//   - with VerifyOptions.Raft, a cluster member's raft directory (its
//     state, log and markers; see cluster.VerifyRaft), after the rest.
//
// Files the manifest does not name are listed in Report.Notes. The error
// is for what stops verification itself (an I/O error, a file of an unknown
// format version, or ErrNoDataDir), never for damage. Verify never writes.
func Verify(fsys vfs.FS, dir string, opts VerifyOptions) (*Report, error) {
	v, err := newVerifier(fsys, dir, opts)
	if err != nil {
		return nil, err
	}
	v.total = v.l.walBytes() // checkSnapshot adds the files the manifest names
	steps := []func() error{v.checkManifest, v.checkSnapshot, v.checkWAL, v.checkIntents}
	if err := v.run(steps); err != nil {
		return nil, err
	}
	v.noteUnnamed()
	v.finish()
	if err := v.checkRaft(); err != nil {
		return nil, err
	}
	return v.rep, nil
}

// VerifyBase verifies the manifest's base checkpoint only, as Verify does
// (including the manifest's record of it). A manifest without a base gives
// a report with no files and a note saying so.
func VerifyBase(fsys vfs.FS, dir string, opts VerifyOptions) (*Report, error) {
	v, err := newVerifier(fsys, dir, opts)
	if err != nil {
		return nil, err
	}
	steps := []func() error{v.checkManifest, v.checkBaseOnly}
	return v.rep, v.run(steps)
}

// VerifyChain verifies every delta of the manifest's chain, as Verify does,
// and the continuity of the chain from the base (whose header and footer it
// reads, but whose blocks it does not verify).
func VerifyChain(fsys vfs.FS, dir string, opts VerifyOptions) (*Report, error) {
	v, err := newVerifier(fsys, dir, opts)
	if err != nil {
		return nil, err
	}
	steps := []func() error{v.checkManifest, v.checkChainOnly}
	return v.rep, v.run(steps)
}

// VerifyCheckpoint verifies the checkpoint file at path on its own (any
// path: a point-in-time `replay --out` file, a copy): every block, the
// whole-file checksum and the recomputed state hash.
func VerifyCheckpoint(fsys vfs.FS, path string, opts VerifyOptions) (*Report, error) {
	v := &verifier{fsys: fsys, rep: &Report{Dir: filepath.Dir(path)}, opts: opts}
	size, err := fileSize(fsys, path)
	if err != nil {
		return nil, err
	}
	v.total = size
	_, err = v.verifyCheckpoint(path, size)
	return v.rep, err
}

func newVerifier(fsys vfs.FS, dir string, opts VerifyOptions) (*verifier, error) {
	l, err := scan(fsys, dir)
	if err != nil {
		return nil, err
	}
	return &verifier{fsys: fsys, l: l, rep: &Report{Dir: dir}, opts: opts}, nil
}

func (v *verifier) run(steps []func() error) error {
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// checkManifest loads the manifest; a missing or damaged one is a fault.
func (v *verifier) checkManifest() error {
	path := manifest.Path(v.l.dir)
	m, err := manifest.Load(v.fsys, v.l.dir)
	v.rep.file(path, KindManifest).Size = v.l.sizes[path]
	switch ce := format.AsCorruption(err); {
	case err == nil:
		v.man, v.rep.Manifest = m, m
		v.rep.SnapshotIndex = m.SnapshotIndex()
		v.checkNames()
	case errors.Is(err, manifest.ErrNotFound):
		v.rep.addf(path, KindManifest, NoOffset, Missing, "no manifest: recovery cannot start (the WAL alone does not say which store it belongs to)")
	case ce != nil:
		v.rep.addf(path, KindManifest, ce.Offset, Corruption, "%s", ce.Reason)
	default:
		return err
	}
	return nil
}

// checkNames refuses manifest entries that are not plain file names: they
// would point outside DATA/snap.
func (v *verifier) checkNames() {
	path := manifest.Path(v.l.dir)
	for _, ref := range v.refs() {
		if !validName(ref.Name) {
			v.rep.addf(path, KindManifest, NoOffset, Corruption, "names %q, which is not a file name in %s", ref.Name, v.l.snapDir)
		}
	}
}

// refs returns the manifest's base (if any) and deltas, in chain order.
func (v *verifier) refs() []manifest.FileRef {
	if v.man == nil {
		return nil
	}
	var out []manifest.FileRef
	if v.man.Base != nil {
		out = append(out, *v.man.Base)
	}
	return append(out, v.man.Deltas...)
}

// progress returns the Progress callback for a file being read, whose
// bytes count from v.done.
func (v *verifier) progress() func(done, total int64) {
	if v.opts.Progress == nil {
		return nil
	}
	base := v.done
	return func(done, _ int64) { v.opts.Progress(base+done, v.total) }
}

// advance marks n more bytes done.
func (v *verifier) advance(n int64) {
	v.done += n
	if v.opts.Progress != nil {
		v.opts.Progress(v.done, v.total)
	}
}

// checkIntents reports each truncate intent: pending (a note), or damaged
// (a fault: the log will not open).
func (v *verifier) checkIntents() error {
	for _, p := range v.l.intents {
		text, ce, err := intentText(v.fsys, p)
		switch {
		case err != nil:
			return err
		case ce != nil:
			v.rep.addf(p, KindIntent, ce.Offset, Corruption, "%s: the log in %s will not open until it is dealt with", ce.Reason, filepath.Dir(p))
		default:
			v.rep.notef("%s", text)
		}
	}
	return nil
}

// noteUnnamed lists the files verification does not trust or check.
func (v *verifier) noteUnnamed() {
	why := "not named by the manifest; never trusted by recovery, removed by compaction"
	if v.man == nil {
		why = "not checked: without a readable manifest nothing says which snapshot files are current"
	}
	for _, n := range v.l.checkpoints {
		if !named(v.man, n) {
			v.rep.notef("%s: checkpoint %s", filepath.Join(v.l.snapDir, n), why)
		}
	}
	for _, n := range v.l.deltas {
		if !named(v.man, n) {
			v.rep.notef("%s: delta %s", filepath.Join(v.l.snapDir, n), why)
		}
	}
	for _, p := range v.l.other {
		if v.opts.Raft != nil && p == filepath.Join(v.l.dir, format.RaftDir) {
			continue // checkRaft verifies it
		}
		v.rep.notef("%s", describeOther(p))
	}
}

// finish works out the index recovery would reach: only when the store
// would open. A torn tail of the newest segment is the one fault it gets
// past (it cuts it, losing nothing acknowledged); any other fault makes it
// refuse, so no index is claimed then.
func (v *verifier) finish() {
	if v.man == nil {
		return
	}
	for _, p := range v.rep.Problems() {
		if p.Kind != ProblemKind(segment.TornTail.String()) {
			v.rep.notef("no recovery index: the store refuses to open until the faults above are repaired")
			return
		}
	}
	v.rep.AppliedIndex = max(v.rep.SnapshotIndex, v.rep.WALLastIndex)
}

func fileSize(fsys vfs.FS, path string) (int64, error) {
	fi, err := fsys.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

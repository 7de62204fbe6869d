package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
)

// ErrInjected is the error ErrorFS injectors return when given none.
var ErrInjected = errors.New("kvtool/vfs: injected error")

// Op names an operation ErrorFS consults its Injector about.
type Op uint8

// The operations. Zero is not an Op, so a forgotten field never matches.
const (
	OpCreate      Op = iota + 1 // FS.Create
	OpOpen                      // FS.Open and FS.OpenReadWrite
	OpRead                      // File.Read and File.ReadAt
	OpWrite                     // File.Write and File.WriteAt
	OpSync                      // File.Sync
	OpTruncate                  // File.Truncate
	OpPreallocate               // File.Preallocate
	OpStat                      // FS.Stat and File.Size
	OpList                      // FS.List
	OpMkdir                     // FS.MkdirAll
	OpRemove                    // FS.Remove
	OpRename                    // FS.Rename; the path is "old -> new"
	OpSyncDir                   // FS.SyncDir
	OpLock                      // FS.Lock
)

var opNames = [...]string{
	OpCreate: "create", OpOpen: "open", OpRead: "read", OpWrite: "write",
	OpSync: "sync", OpTruncate: "truncate", OpPreallocate: "preallocate",
	OpStat: "stat", OpList: "list", OpMkdir: "mkdir", OpRemove: "remove",
	OpRename: "rename", OpSyncDir: "syncdir", OpLock: "lock",
}

// String returns the op's lower-case name, as used in injected errors.
func (op Op) String() string {
	if int(op) < len(opNames) && opNames[op] != "" {
		return opNames[op]
	}
	return fmt.Sprintf("Op(%d)", uint8(op))
}

// Injector decides whether an operation fails. MaybeError is called before
// the operation with its Op and path (for file operations, the name the
// file was opened with); a non-nil result fails the operation without
// performing it. It must be safe for concurrent use.
type Injector interface {
	MaybeError(op Op, path string) error
}

// InjectorFunc adapts a function to an Injector.
type InjectorFunc func(op Op, path string) error

// MaybeError calls f.
func (f InjectorFunc) MaybeError(op Op, path string) error { return f(op, path) }

// FailOnce returns an Injector that fails the first call of op whose path
// contains pathSubstring, with err (ErrInjected if nil); later calls succeed.
func FailOnce(op Op, pathSubstring string, err error) Injector {
	return &countingInjector{op: op, sub: pathSubstring, err: orInjected(err), first: 1, last: 1}
}

// FailAfter returns an Injector that lets the first n calls of op whose path
// contains pathSubstring succeed and fails the (n+1)th and every later one
// with err (ErrInjected if nil). FailAfter(op, s, 0, err) fails every call.
func FailAfter(op Op, pathSubstring string, n int, err error) Injector {
	return &countingInjector{op: op, sub: pathSubstring, err: orInjected(err), first: int64(n) + 1}
}

func orInjected(err error) error {
	if err == nil {
		return ErrInjected
	}
	return err
}

// countingInjector fails the matching calls numbered first..last (from 1;
// last 0 means no end). The count is atomic, so under concurrent calls
// exactly the calls given those numbers fail.
type countingInjector struct {
	op          Op
	sub         string
	err         error
	first, last int64
	calls       atomic.Int64
}

func (c *countingInjector) MaybeError(op Op, path string) error {
	if op != c.op || !strings.Contains(path, c.sub) {
		return nil
	}
	n := c.calls.Add(1)
	if n < c.first || (c.last != 0 && n > c.last) {
		return nil
	}
	return c.err
}

// ErrorFS wraps an FS and fails the operations its Injector chooses. Files
// it opens are wrapped too, so their writes, syncs, truncations,
// preallocations and reads are checked against the file's path. An
// injected error is returned as "op path: err", wrapping the injector's
// error, and the operation is not performed (a failed write writes
// nothing). ErrorFS is safe for concurrent use if its Injector is.
type ErrorFS struct {
	inner FS
	inj   Injector
}

var _ FS = (*ErrorFS)(nil)

// NewErrorFS returns inner wrapped with inj; a nil inj injects nothing.
func NewErrorFS(inner FS, inj Injector) *ErrorFS {
	if inj == nil {
		inj = InjectorFunc(func(Op, string) error { return nil })
	}
	return &ErrorFS{inner: inner, inj: inj}
}

// check asks the injector about one operation and names it in the error.
func (e *ErrorFS) check(op Op, path string) error {
	if err := e.inj.MaybeError(op, path); err != nil {
		return fmt.Errorf("%s %s: %w", op, path, err)
	}
	return nil
}

// Create checks OpCreate, then creates the file in the inner FS.
func (e *ErrorFS) Create(name string) (File, error) {
	return e.open(OpCreate, name, e.inner.Create)
}

// Open checks OpOpen, then opens the file in the inner FS.
func (e *ErrorFS) Open(name string) (File, error) {
	return e.open(OpOpen, name, e.inner.Open)
}

// OpenReadWrite checks OpOpen, then opens the file in the inner FS.
func (e *ErrorFS) OpenReadWrite(name string) (File, error) {
	return e.open(OpOpen, name, e.inner.OpenReadWrite)
}

func (e *ErrorFS) open(op Op, name string, open func(string) (File, error)) (File, error) {
	if err := e.check(op, name); err != nil {
		return nil, err
	}
	f, err := open(name)
	if err != nil {
		return nil, err
	}
	return &errorFile{File: f, fs: e, path: name}, nil
}

// Remove checks OpRemove, then removes in the inner FS.
func (e *ErrorFS) Remove(name string) error {
	if err := e.check(OpRemove, name); err != nil {
		return err
	}
	return e.inner.Remove(name)
}

// Rename checks OpRename with the path "oldname -> newname" (so a path
// substring can match either name), then renames in the inner FS.
func (e *ErrorFS) Rename(oldname, newname string) error {
	if err := e.check(OpRename, oldname+" -> "+newname); err != nil {
		return err
	}
	return e.inner.Rename(oldname, newname)
}

// MkdirAll checks OpMkdir, then creates the directories in the inner FS.
func (e *ErrorFS) MkdirAll(dir string, perm os.FileMode) error {
	if err := e.check(OpMkdir, dir); err != nil {
		return err
	}
	return e.inner.MkdirAll(dir, perm)
}

// List checks OpList, then lists dir in the inner FS.
func (e *ErrorFS) List(dir string) ([]string, error) {
	if err := e.check(OpList, dir); err != nil {
		return nil, err
	}
	return e.inner.List(dir)
}

// Stat checks OpStat, then stats name in the inner FS.
func (e *ErrorFS) Stat(name string) (os.FileInfo, error) {
	if err := e.check(OpStat, name); err != nil {
		return nil, err
	}
	return e.inner.Stat(name)
}

// SyncDir checks OpSyncDir, then syncs dir in the inner FS.
func (e *ErrorFS) SyncDir(dir string) error {
	if err := e.check(OpSyncDir, dir); err != nil {
		return err
	}
	return e.inner.SyncDir(dir)
}

// Lock checks OpLock, then locks name in the inner FS.
func (e *ErrorFS) Lock(name string) (io.Closer, error) {
	if err := e.check(OpLock, name); err != nil {
		return nil, err
	}
	return e.inner.Lock(name)
}

// errorFile is a File opened through an ErrorFS. Close and Name pass
// straight through: closing must always release the inner file.
type errorFile struct {
	File
	fs   *ErrorFS
	path string
}

func (f *errorFile) Read(p []byte) (int, error) {
	if err := f.fs.check(OpRead, f.path); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *errorFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(OpRead, f.path); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *errorFile) Write(p []byte) (int, error) {
	if err := f.fs.check(OpWrite, f.path); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *errorFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(OpWrite, f.path); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *errorFile) Sync() error {
	if err := f.fs.check(OpSync, f.path); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *errorFile) Truncate(size int64) error {
	if err := f.fs.check(OpTruncate, f.path); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func (f *errorFile) Preallocate(size int64) error {
	if err := f.fs.check(OpPreallocate, f.path); err != nil {
		return err
	}
	return f.File.Preallocate(size)
}

func (f *errorFile) Size() (int64, error) {
	if err := f.fs.check(OpStat, f.path); err != nil {
		return 0, err
	}
	return f.File.Size()
}

package drill

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kvtool/kvtool/vfs"
)

// copyOut copies the tree dir of fsys to dst on the operating system's file
// system: a crash image kept as evidence.
func copyOut(fsys vfs.FS, dir, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	names, err := fsys.List(dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		src, to := filepath.Join(dir, name), filepath.Join(dst, name)
		fi, err := fsys.Stat(src)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			err = copyOut(fsys, src, to)
		} else {
			err = copyFile(fsys, src, to)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func copyFile(fsys vfs.FS, src, dst string) error {
	f, err := fsys.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, f); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// dirDigest describes every file under dir by its path, size and SHA-256,
// so that "nothing was changed" can be checked.
func dirDigest(dir string) (string, error) {
	var lines []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		lines = append(lines, fmt.Sprintf("%s %d %x", rel, len(b), sha256.Sum256(b)))
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n"), err
}

// sleep waits d or until ctx is done. Drills pace their load and faults
// with it; it is never how a drill waits for a state.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// waitFor polls cond every few milliseconds until it holds, ctx is done, or
// timeout passes, and reports whether it held.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return false
		}
		sleep(ctx, 5*time.Millisecond)
	}
	return true
}

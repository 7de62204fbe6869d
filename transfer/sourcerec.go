package transfer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// A receiver keeps the source's API address (from its hello) in
// DATA/.transfer/SOURCE (format.XferSourceName), so that a read replica
// restarted knows where writes go before it reaches its source again.

// sourceAPI is the API address a sender's hello named, with an unspecified
// host (0.0.0.0, ::, none: the source listens on every interface) replaced
// by the host of peer, the address the receiver reached it at.
func sourceAPI(api, peer string) string {
	host, port, err := net.SplitHostPort(api)
	if err != nil || api == "" {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if ph, _, err := net.SplitHostPort(peer); err == nil && ph != "" {
			return net.JoinHostPort(ph, port)
		}
	}
	return api
}

func sourcePath(dir string) string { return filepath.Join(transferDir(dir), format.XferSourceName) }

// recordSource writes the source's API address into the data directory,
// durably, when the hello named one that differs from what is recorded.
// The directory is locked, or its store open, by then.
func (rv *receiver) recordSource() error {
	api := rv.res.SourceAPI
	if api == "" {
		return nil
	}
	if old, err := ReadSourceAPI(rv.opts.FS, rv.opts.Dir); err == nil && old == api {
		return nil
	}
	if err := mkdirDurable(rv.opts.FS, transferDir(rv.opts.Dir)); err != nil {
		return err
	}
	b := format.AppendXferStreamHeader(nil, format.XferStreamExt{Role: format.XferSourceRecord, Mode: format.XferDuplex})
	b = format.AppendFrame(b, format.FrameXferSource, format.AppendXferSource(nil, api))
	if err := format.WriteFileAtomic(rv.opts.FS, sourcePath(rv.opts.Dir), b); err != nil {
		return fmt.Errorf("kvtool/transfer: record the source: %w", err)
	}
	return nil
}

// ReadSourceAPI returns the API address of the source the data directory
// dir received from, as its sender's hello said: "" if none was recorded.
// Damage in the record is a *format.CorruptionError naming the file.
func ReadSourceAPI(fs vfs.FS, dir string) (string, error) {
	path := sourcePath(dir)
	b, err := readSmallFile(fs, path)
	if vfs.IsNotExist(err) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	r := newFrameReader(bytes.NewReader(b), path, false)
	if err := r.header(format.XferSourceRecord, format.XferDuplex); err != nil {
		return "", err
	}
	f, err := r.next()
	switch {
	case errors.Is(err, io.EOF):
		return "", format.Corruptf(path, r.off, "source record without a frame")
	case err != nil:
		return "", err
	case f.Type != format.FrameXferSource:
		return "", format.Corruptf(path, f.Offset, "frame type %d, want a source record", f.Type)
	}
	return format.DecodeXferSource(f.Payload, path, f.Offset)
}

// readSmallFile reads a file of at most a few KiB whole.
func readSmallFile(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<10))
}

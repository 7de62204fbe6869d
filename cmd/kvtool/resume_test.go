package main

import (
	"path/filepath"
	"regexp"
	"testing"
)

// TestTransferResumedEndsAgree cuts a transfer a server sends (kvtool
// transfer send --addr), resumes it, and checks that the two ends of the
// resumed session agree (issue 9): the same bytes done for the whole
// transfer and for this session in their --json results, and the same
// bytes in their progress (which counts this session only, so the rate
// a bar derives from it is this session's at both ends).
func TestTransferResumedEndsAgree(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	src, _, hash := sourceDir(t, 2000)
	s := startServe(t, "--data", src)
	dst := filepath.Join(t.TempDir(), "dst")

	// The first session: the receiver is stopped once it holds some of
	// the snapshot (a proxy holds the rest back), which ends the server's
	// send; the server keeps its snapshot for a resume.
	r, addr := startRecv(t, dst, "--window", "16KiB")
	first := startKvtool(t, nil, "transfer", "send", "--addr", s.addr, "--to", stallingProxy(t, addr, 48<<10), "--chunk-size", "4KiB")
	waitReceiving(t, dst, first)
	r.cancel()
	r.wait(t)
	mustCode(t, first.wait(t), exitFailure, first.stdout.String(), first.stderr.String())

	r, addr = startRecv(t, dst, "--progress")
	out, errOut, code := run(t, "transfer", "send", "--addr", s.addr, "--to", addr, "--chunk-size", "4KiB", "--json", "--progress")
	mustCode(t, code, exitOK, out, errOut)
	mustCode(t, r.wait(t), exitOK, r.stdout.String(), r.stderr.String())
	var sent sentJSON
	mustJSON(t, out, &sent)
	var got receivedJSON
	r.line(t, 1, &got)
	if !got.Resumed || got.ResumeFrom == 0 || got.StateHash != hash {
		t.Fatalf("the second session %+v did not resume to %s", got, hash)
	}
	if sent.BytesDone != sent.Size || got.BytesDone != sent.Size ||
		sent.SessionBytes != got.SessionBytes || got.SessionBytes <= 0 || got.SessionBytes >= sent.Size {
		t.Fatalf("bytes done (this session): sender %d (%d), receiver %d (%d); the snapshot is %d",
			sent.BytesDone, sent.SessionBytes, got.BytesDone, got.SessionBytes, sent.Size)
	}
	sendDone, recvDone := progressMoved(t, "send", errOut), progressMoved(t, "recv", r.stderr.String())
	if sendDone != recvDone {
		t.Errorf("progress of the resumed session: the sender says %s, the receiver %s", sendDone, recvDone)
	}
}

// progressMoved returns what a command's last progress line says it
// moved ("done: 212.0KiB in ...").
func progressMoved(t *testing.T, label, stderr string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^kvtool: ` + label + `: done: (\S+) in `).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no %s progress line in:\n%s", label, stderr)
	}
	return m[1]
}

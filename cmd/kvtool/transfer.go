package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/node"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	xfer "github.com/kvtool/kvtool/transfer"
	"github.com/kvtool/kvtool/vfs"
	"github.com/kvtool/kvtool/xferstore"
)

// The transfer commands ship a snapshot of a store and its WAL tail to
// another data directory, resumably; see package transfer.

const transferHelp = `Peers prove a shared secret to each other (HMAC over nonces both sides
choose; the secret never crosses the wire): --secret-file FILE, or the
environment variable KVTOOL_SECRET, at least 16 bytes, the same on both
ends. --tls-cert/--tls-key/--tls-ca add TLS (the listening end presents
--tls-cert; with --tls-ca it also requires client certificates signed by
that CA; the connecting end checks the listener against --tls-ca).`

func transferCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "transfer",
		Usage: "stream a snapshot and its log tail to another data directory, resumably",
		Description: `A transfer sends a checkpoint of the source store in checksummed chunks,
and the WAL entries after it, to a receiver that writes them into its data
directory, records durably which chunks verified, and installs nothing
until all of it verified; then it cuts over by publishing the manifest.
A broken transfer resumes from the first chunk the receiver does not hold,
never from byte zero, whichever end was restarted.

` + transferHelp + `

Examples:
  kvtool transfer recv --listen 0.0.0.0:7071 --data /srv/copy
  kvtool transfer send --data /srv/kv --to replica:7071
  kvtool transfer send --data /srv/kv --to - | ssh replica kvtool transfer recv --from - --data /srv/copy
  kvtool transfer status --addr 127.0.0.1:7070`,
		Subcommands: []*cli.Command{
			transferSendCommand(e),
			transferRecvCommand(e),
			transferVerifyCommand(e),
			transferStatusCommand(e),
		},
	}
}

// ---- flags and shared helpers ----

func secretFlag() cli.Flag {
	return &cli.StringFlag{Name: "secret-file", Usage: "read the shared secret from `FILE` (default: $KVTOOL_SECRET)"}
}

func tlsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "tls-cert", Usage: "TLS certificate `FILE` (PEM) this end presents"},
		&cli.StringFlag{Name: "tls-key", Usage: "TLS private key `FILE` (PEM) of --tls-cert"},
		&cli.StringFlag{Name: "tls-ca", Usage: "CA certificates `FILE` (PEM) the other end's certificate must chain to"},
	}
}

// loadSecret reads the shared secret from --secret-file or KVTOOL_SECRET.
// Without one it is a usage error if required, else the zero Secret.
func loadSecret(cCtx *cli.Context, required bool) (xfer.Secret, error) {
	b, err := readSecret(cCtx)
	if err != nil {
		return xfer.Secret{}, err
	}
	if len(b) == 0 && !required {
		return xfer.Secret{}, nil
	}
	s, err := xfer.NewSecret(b)
	if err != nil {
		return s, usageErrorf(cCtx, "no usable shared secret: give --secret-file FILE or set KVTOOL_SECRET, at least %d bytes, the same on both ends (e.g. head -c 32 /dev/urandom | base64 > secret)", xfer.MinSecretLen)
	}
	return s, nil
}

// readSecret returns the bytes of --secret-file or KVTOOL_SECRET, without
// a trailing newline; none if neither is set.
func readSecret(cCtx *cli.Context) ([]byte, error) {
	if f := cCtx.String("secret-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, failed(fmt.Errorf("read the secret file: %w", err), "")
		}
		return bytes.TrimRight(b, "\r\n"), nil
	}
	return bytes.TrimRight([]byte(os.Getenv("KVTOOL_SECRET")), "\r\n"), nil
}

// tlsConfig builds the TLS configuration of a listening (server) or
// connecting end from --tls-cert, --tls-key and --tls-ca, or nil without
// them.
func tlsConfig(cCtx *cli.Context, server bool) (*tls.Config, error) {
	return tlsConfigOf(cCtx, "tls", server)
}

// tlsConfigOf is tlsConfig from the flags --PREFIX-cert, --PREFIX-key and
// --PREFIX-ca.
func tlsConfigOf(cCtx *cli.Context, prefix string, server bool) (*tls.Config, error) {
	cert, key, ca := cCtx.String(prefix+"-cert"), cCtx.String(prefix+"-key"), cCtx.String(prefix+"-ca")
	switch {
	case cert == "" && key == "" && ca == "":
		return nil, nil
	case (cert == "") != (key == ""):
		return nil, usageErrorf(cCtx, "--%s-cert and --%s-key go together", prefix, prefix)
	case server && cert == "":
		return nil, usageErrorf(cCtx, "a TLS listener needs --%s-cert and --%s-key", prefix, prefix)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, failed(fmt.Errorf("load the TLS certificate: %w", err), "")
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, failed(fmt.Errorf("read the TLS CA: %w", err), "")
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usageErrorf(cCtx, "--%s-ca %s holds no PEM certificate", prefix, ca)
		}
		cfg.RootCAs, cfg.ClientCAs = pool, pool
		if server {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg, nil
}

// startTransferProgress is startProgress with the rate and the time left.
// The bar counts this session's work, so a resumed transfer's rate and ETA
// are its own.
func startTransferProgress(cCtx *cli.Context, label string) *transferProgress {
	if progressMode(cCtx) != barProgress {
		return &transferProgress{progress: startProgress(cCtx, label, 0)}
	}
	p := mpb.NewWithContext(cCtx.Context, mpb.WithOutput(cCtx.App.ErrWriter), mpb.WithWidth(40))
	bar := p.AddBar(0,
		mpb.BarRemoveOnComplete(),
		mpb.PrependDecorators(decor.Name(label, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(
			decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace),
			decor.AverageSpeed(decor.SizeB1024(0), "% .1f", decor.WCSyncSpace),
			decor.AverageETA(decor.ET_STYLE_GO, decor.WCSyncSpace),
		),
	)
	return &transferProgress{progress: &progress{p: p, bar: bar}}
}

type transferProgress struct{ *progress }

// update shows a transfer's progress: this session's bytes out of what the
// receiver did not hold when it began, as both ends count them (so a
// resumed transfer's two ends show the same).
func (t *transferProgress) update(p xfer.Progress) {
	t.Update(p.SessionBytes, p.Bytes-(p.BytesDone-p.SessionBytes))
}

// bytesDoneRow says how much of the snapshot the receiver holds and what
// this session moved: the same row, with the same numbers, at both ends.
func bytesDoneRow(t *table, done, session, rate int64) {
	t.Row("bytes done", fmt.Sprintf("%d (this session %d, at %s/s)", done, session, byteText(rate)))
}

// transferError gives a transfer's failure its exit code and a hint.
func transferError(err error, resumeHint string) error {
	var ee *exitError
	switch {
	case err == nil || errors.As(err, &ee):
		return err
	case errors.Is(err, format.ErrCorruption):
		return damaged(err, "the stream failed verification; nothing was installed. "+resumeHint)
	case errors.Is(err, xfer.ErrPeerGone), errors.Is(err, context.Canceled), peerFailed(err):
		return failed(err, resumeHint)
	case errors.Is(err, xfer.ErrAuth):
		return failed(err, "both ends must use the same secret (--secret-file FILE or KVTOOL_SECRET)")
	case errors.Is(err, xfer.ErrStoreMismatch), errors.Is(err, xfer.ErrStaleEpoch):
		return failed(err, "the receiving directory holds (part of) another store or an older one; receive into an empty directory")
	case errors.Is(err, xfer.ErrNotEmpty):
		return failed(err, "the directory already holds a store; receive into an empty directory, or keep it following its source with `kvtool serve --join`")
	case errors.Is(err, xfer.ErrTooFarBehind):
		return failed(err, "the source no longer has the log this copy needs; move the directory away and receive a fresh snapshot")
	case errors.Is(err, vfs.ErrLocked):
		return failed(err, "another process holds the data directory; stop it first")
	}
	return failed(err, "")
}

// peerFailed reports whether the peer gave up for a reason of its own (an
// I/O error there): what this side holds is intact and resumable.
func peerFailed(err error) bool {
	var pe *xfer.PeerError
	return errors.As(err, &pe) && pe.Code == format.XferErrInternal
}

// ---- transfer send ----

func transferSendCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "send",
		Usage: "send a snapshot and its log tail to a receiver; exit 0 once it confirmed",
		Description: `Sends a snapshot of a store to a receiver (kvtool transfer recv --listen)
at --to HOST:PORT, and waits until it confirms it cut over. The snapshot
comes from a data directory no server runs on (--data: a checkpoint of its
state is written to DATA/.transfer/send and kept until a transfer
completes, so a sender that is restarted offers the same snapshot and the
receiver resumes it; it is removed once the receiver confirmed, or the
one-way stream is written), or from a running server (--addr: the server sends,
from a checkpoint it pins with a lease, plus the log written meanwhile; it
needs the secret itself).

--to - writes a one-way stream to standard output instead, for a pipe (over
ssh, into kvtool transfer recv --from -) or a file (kvtool transfer
verify). It is signed with the secret; it cannot resume, and nobody
confirms it.

Exits 0 once the receiver confirmed, 1 if the connection broke (run the
same command again: the transfer resumes), 3 if the receiver found the
stream corrupt.

` + transferHelp + `

Examples:
  kvtool transfer send --data /srv/kv --to replica:7071 --max-rate 50MB
  kvtool transfer send --addr 127.0.0.1:7070 --to replica:7071
  kvtool transfer send --data /srv/kv --to - > kv.xfer`,
		Flags: append([]cli.Flag{
			progressFlag(),
			&cli.StringFlag{Name: "to", Required: true, Usage: "the receiver's `HOST:PORT`, or - for a one-way stream on standard output"},
			addrFlag(),
			newSizeFlag("max-rate", "send at most `RATE` bytes per second (0: no limit; with --addr, the server's --transfer-max-rate)", 0),
			newSizeFlag("chunk-size", "cut the snapshot into chunks of `SIZE`", xfer.DefaultChunkSize),
			&cli.BoolFlag{Name: "compress", Usage: "zstd-compress chunks (pays only for uncompressed checkpoints)"},
			secretFlag(),
		}, tlsFlags()...),
		Action: action(e, spec{scope: serverOrAnyDir}, sendOptionsOf, func(c *call, o sendOpts) error {
			switch {
			case c.t.remote() && o.to == "-":
				o.addr = c.t.addr
				return sendStreamFromServer(c.Context, c.e, o)
			case c.t.remote():
				o.addr = c.t.addr
				return sendViaServer(c.Context, o)
			}
			// The secret is checked before the directory: a usage error first.
			if err := o.peerOf(c.Context); err != nil {
				return err
			}
			var err error
			if o.data, err = existingDataDir(c.Context, c.fs); err != nil {
				return err
			}
			return sendFromDir(c.Context, c.e, o)
		}),
	}
}

// sendOpts are the flags of transfer send.
type sendOpts struct {
	to, addr, data string
	secret         xfer.Secret
	tls            *tls.Config
	opts           xfer.SendOptions
}

func sendOptionsOf(cCtx *cli.Context) (sendOpts, error) {
	o := sendOpts{to: cCtx.String("to")}
	chunk, rate := sizeFlag(cCtx, "chunk-size"), sizeFlag(cCtx, "max-rate")
	switch {
	case chunk < format.MinXferChunk || chunk > format.MaxXferChunk:
		return o, usageErrorf(cCtx, "--chunk-size must be between %s and %s", formatSize(format.MinXferChunk), formatSize(format.MaxXferChunk))
	case rate < 0:
		return o, usageErrorf(cCtx, "--max-rate must not be negative")
	}
	o.opts = xfer.SendOptions{Peer: o.to, ChunkSize: int(chunk), MaxRate: rate, Compress: cCtx.Bool("compress")}
	return o, checkHostPort(cCtx, "to", o.to)
}

// peerOf reads what a send from a data directory needs to reach the
// receiver itself: the secret and TLS (with --addr the server has its own).
func (o *sendOpts) peerOf(cCtx *cli.Context) error {
	var err error
	if o.secret, err = loadSecret(cCtx, true); err != nil {
		return err
	}
	o.opts.Secret = o.secret
	o.tls, err = tlsConfig(cCtx, false)
	return err
}

func sendResumeHint(o sendOpts) string {
	return "the transfer can be resumed: run the same `kvtool transfer send` again (with the receiver listening); it continues from the first chunk the receiver does not hold"
}

// sendFromDir sends a data directory no server runs on.
func sendFromDir(cCtx *cli.Context, e env, o sendOpts) error {
	src, err := xferstore.OpenDirSource(e.fs, o.data)
	if err != nil {
		return openError(err, o.data)
	}
	defer src.Close()
	pr := startTransferProgress(cCtx, "send")
	o.opts.Progress = pr.update
	if o.to == "-" {
		return sendStream(cCtx, e, o, src, pr)
	}
	raw, err := xfer.Dial(cCtx.Context, o.to, o.tls)
	if err != nil {
		pr.Done()
		return dialError(o.to, err)
	}
	conn := xfer.WatchHello(raw, helloTimeout)
	res, err := xfer.Send(cCtx.Context, conn, src, o.opts)
	conn.Close()
	pr.Done()
	if err != nil && conn.WrongPeer() && cCtx.Context.Err() == nil {
		return failed(errors.New(node.DescribePeer(cCtx.Context, o.to)+"; --to needs the address of `kvtool transfer recv --listen`"),
			"start `kvtool transfer recv --listen HOST:PORT` on the receiving machine and give that address to --to")
	}
	if err != nil {
		return transferError(err, sendResumeHint(o))
	}
	if err := cleanupSend(e.fs, o.data, src); err != nil {
		return failed(err, "")
	}
	return printSent(cCtx, o.to, res)
}

// sendStream writes a one-way stream of a data directory to standard
// output.
func sendStream(cCtx *cli.Context, e env, o sendOpts, src *xferstore.DirSource, pr *transferProgress) error {
	res, err := xfer.WriteStream(cCtx.Context, e.stdout, src, o.opts)
	pr.Done()
	if err != nil {
		return transferError(err, "")
	}
	// Nobody resumes a one-way stream: the checkpoint written for it goes,
	// as after a confirmed send.
	if err := cleanupSend(e.fs, o.data, src); err != nil {
		return failed(err, "")
	}
	return printStreamWritten(cCtx, res, o)
}

// cleanupSend removes the checkpoint written for a send, and DATA/.transfer
// when that leaves it empty (it also holds a transfer being received).
func cleanupSend(fsys vfs.FS, data string, src *xferstore.DirSource) error {
	if err := src.Cleanup(); err != nil {
		return err
	}
	dir := filepath.Join(data, format.TransferDir)
	if names, err := fsys.List(dir); err != nil || len(names) > 0 {
		return nil
	}
	if err := fsys.Remove(dir); err != nil && !vfs.IsNotExist(err) {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return fsys.SyncDir(data)
}

// sentJSON is what transfer send prints with --json.
type sentJSON struct {
	To string `json:"to"`
	xfer.SendResult
}

func printSent(cCtx *cli.Context, to string, res xfer.SendResult) error {
	p := newPrinter(cCtx)
	if p.json {
		return p.JSON(sentJSON{To: to, SendResult: res})
	}
	t := p.Table("sent to", to)
	describeSend(t, res)
	return t.Flush()
}

func describeSend(t *table, res xfer.SendResult) {
	if res.TailOnly {
		t.Row("snapshot", "none: the receiver's store was caught up")
	} else {
		t.Row("snapshot", res.Snapshot)
		t.Row("snapshot bytes", res.Size)
		t.Row("chunks", fmt.Sprintf("%d (from chunk %d%s)", res.Chunks, res.ResumeFrom, restartedNote(res.Restarted)))
		t.Row("chunk bytes sent", fmt.Sprintf("%d (%d again after a checksum failure)", res.ChunkBytes, res.ResentBytes))
		bytesDoneRow(t, res.BytesDone, res.SessionBytes, res.Rate)
	}
	t.Row("tail entries", fmt.Sprintf("%d (through index %d)", res.Entries, res.TailEnd))
	t.Row("wire bytes", res.WireBytes)
	if res.Applied > 0 || !res.TailOnly {
		t.Row("applied index", res.Applied)
	}
}

func restartedNote(restarted bool) string {
	if restarted {
		return "; the receiver's partial snapshot was gone here, so it started over"
	}
	return ""
}

// printStreamWritten reports a one-way stream on standard error: standard
// output is the stream.
func printStreamWritten(cCtx *cli.Context, res xfer.SendResult, o sendOpts) error {
	if globalsOf(cCtx).Quiet {
		return nil
	}
	fmt.Fprintf(cCtx.App.ErrWriter, "kvtool: wrote a one-way stream of snapshot %s (%d bytes, %d tail entries through index %d), %d bytes\n",
		res.Snapshot, res.Size, res.Entries, res.TailEnd, res.WireBytes)
	return nil
}

// sendViaServer asks a running server to send, and follows the send until
// it ends.
func sendViaServer(cCtx *cli.Context, o sendOpts) error {
	c := client.New(o.addr)
	defer c.Close()
	id, err := c.StartSend(cCtx.Context, client.SendRequest{To: o.to, MaxRate: o.opts.MaxRate, ChunkSize: o.opts.ChunkSize})
	if err != nil {
		return remoteError(err)
	}
	pr := startTransferProgress(cCtx, "send")
	job, err := waitJob(cCtx.Context, c, id, pr.update)
	pr.Done()
	if err != nil {
		return err
	}
	if job.State == server.JobFailed {
		return jobError(job, o)
	}
	return printSent(cCtx, o.to, *job.Result)
}

// waitJob polls GET /v1/transfers until send id ends.
func waitJob(ctx context.Context, c *client.Client, id int, progress func(xfer.Progress)) (*server.SendJob, error) {
	for {
		var st server.TransfersStatus
		if err := c.Transfers(ctx, &st); err != nil {
			return nil, remoteError(err)
		}
		job := findJob(st.Sends, id)
		if job == nil {
			return nil, failed(fmt.Errorf("the server at %s no longer lists send %d", c.Addr(), id), "")
		}
		progress(job.Progress)
		if job.State != server.JobRunning {
			return job, nil
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return nil, failed(fmt.Errorf("stopped waiting: %w (the server keeps sending)", ctx.Err()), "follow it with `kvtool transfer status --addr "+c.Addr()+"`")
		}
	}
}

func findJob(jobs []*server.SendJob, id int) *server.SendJob {
	for _, j := range jobs {
		if j.ID == id {
			return j
		}
	}
	return nil
}

// jobError turns a failed server-side send into the exit code it earns.
func jobError(job *server.SendJob, o sendOpts) error {
	err := errors.New(job.Error)
	switch job.Kind {
	case "corruption":
		return damaged(err, "the receiver found the stream corrupt; nothing was installed. Run the same command again.")
	case "unreachable":
		return failed(err, "is `kvtool transfer recv --listen` running there? --to needs its address")
	case "peer_gone":
		return failed(err, sendResumeHint(o))
	case "auth":
		return failed(err, "the server and the receiver must use the same secret")
	}
	return failed(err, "")
}

// sendStreamFromServer copies a running server's one-way stream to
// standard output.
func sendStreamFromServer(cCtx *cli.Context, e env, o sendOpts) error {
	c := client.New(o.addr)
	defer c.Close()
	body, err := c.TransferStream(cCtx.Context, o.opts.MaxRate)
	if err != nil {
		return remoteError(err)
	}
	defer body.Close()
	n, err := io.Copy(e.stdout, body)
	if err != nil {
		return failed(fmt.Errorf("copy the stream from %s after %d bytes: %w", o.addr, n, err), "run the same command again")
	}
	return nil
}

// remoteError gives a failed request to a server its exit code: a server
// that is not there or not kvtool gets serverError's hint.
func remoteError(err error) error {
	if serr := serverError(err); serr != nil {
		return serr
	}
	return failed(err, "")
}

// ---- transfer recv ----

func transferRecvCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "recv",
		Usage: "receive a snapshot and its log tail into --data; exit 0 once it is installed and cut over",
		Description: `Receives a transfer into the data directory --data: listening on --listen
HOST:PORT for one sender (kvtool transfer send --to), or reading a one-way
stream from standard input (--from -). The directory must be empty, hold a
partial transfer (which is resumed: only the chunks it does not hold are
sent), or hold an older copy of the same store (which is caught up with
the log it lacks). Nothing is installed before every chunk, the snapshot
as a whole and the tail verified; then the manifest is published, the one
commit point, and the directory opens as a complete store.

Prints the snapshot, what was received, the applied index and the state
hash. Exits 0 once cut over, 1 if the sender went away (run it again: it
resumes), 3 if the stream failed verification.

` + transferHelp + `

Examples:
  kvtool transfer recv --listen 0.0.0.0:7071 --data /srv/copy
  ssh source kvtool transfer send --data /srv/kv --to - | kvtool transfer recv --from - --data /srv/copy`,
		Flags: append([]cli.Flag{
			progressFlag(),
			&cli.StringFlag{Name: "listen", Usage: "wait for a sender on `HOST:PORT` (port 0: any free port)"},
			&cli.StringFlag{Name: "from", Usage: "read a one-way stream from standard input: `-` (the only value)"},
			newSizeFlag("window", "let the sender have `SIZE` of chunks in flight: the most a resume sends twice", xfer.DefaultWindow),
			secretFlag(),
		}, tlsFlags()...),
		Action: action(e, spec{scope: anyDir}, recvOptionsOf, func(c *call, o recvOpts) error {
			o.opts.FS, o.opts.Dir = c.fs, c.data()
			return recv(c.Context, c.e, o)
		}),
	}
}

type recvOpts struct {
	listen string
	tls    *tls.Config
	opts   xfer.ReceiveOptions
}

func recvOptionsOf(cCtx *cli.Context) (recvOpts, error) {
	o := recvOpts{listen: cCtx.String("listen")}
	from := cCtx.String("from")
	switch {
	case (o.listen == "") == (from == ""):
		return o, usageErrorf(cCtx, "give --listen HOST:PORT or --from -")
	case from != "" && from != "-":
		return o, usageErrorf(cCtx, "--from takes only - (a one-way stream on standard input); to receive over the network use --listen")
	case sizeFlag(cCtx, "window") < format.MinXferChunk:
		return o, usageErrorf(cCtx, "--window must be at least %s", formatSize(format.MinXferChunk))
	}
	if o.listen != "" {
		if err := checkHostPort(cCtx, "listen", o.listen); err != nil {
			return o, err
		}
	}
	secret, err := loadSecret(cCtx, true)
	if err != nil {
		return o, err
	}
	if o.listen != "" {
		if o.tls, err = tlsConfig(cCtx, true); err != nil {
			return o, err
		}
	}
	o.opts = xfer.ReceiveOptions{Secret: secret, Window: sizeFlag(cCtx, "window"), Peer: "stdin"}
	return o, nil
}

func recv(cCtx *cli.Context, e env, o recvOpts) error {
	rep := &replicaOnce{fs: e.fs, dir: o.opts.Dir}
	defer rep.close()
	o.opts.Open = rep.open
	pr := startTransferProgress(cCtx, "recv")
	o.opts.Progress = pr.update
	var res xfer.ReceiveResult
	var err error
	if o.listen == "" {
		res, err = xfer.ReadStream(cCtx.Context, e.stdin, o.opts)
	} else {
		res, err = recvListen(cCtx, &o)
	}
	pr.Done()
	if cerr := rep.close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return transferError(err, recvResumeHint(o))
	}
	return printReceived(cCtx, e, o, res)
}

func recvResumeHint(o recvOpts) string {
	return fmt.Sprintf("the transfer can be resumed: the chunks verified so far are kept in %s/%s; run `kvtool transfer recv` again on the same --data and the sender again", o.opts.Dir, format.TransferDir)
}

// recvListen accepts one sender and receives from it.
func recvListen(cCtx *cli.Context, o *recvOpts) (xfer.ReceiveResult, error) {
	ln, err := xfer.Listen(o.listen, o.tls)
	if err != nil {
		return xfer.ReceiveResult{}, listenError("--listen", o.listen, err)
	}
	defer ln.Close()
	if err := announceRecv(cCtx, ln.Addr().String(), o.opts.Dir); err != nil {
		return xfer.ReceiveResult{}, err
	}
	stop := context.AfterFunc(cCtx.Context, func() { ln.Close() })
	defer stop()
	conn, err := ln.Accept()
	if err != nil {
		if cCtx.Context.Err() != nil {
			err = cCtx.Context.Err()
		}
		return xfer.ReceiveResult{}, failed(fmt.Errorf("wait for a sender on %s: %w", o.listen, err), "")
	}
	defer conn.Close()
	o.opts.Peer = conn.RemoteAddr().String()
	return xfer.Receive(cCtx.Context, conn, o.opts)
}

// recvListeningJSON is the first line transfer recv --listen prints with
// --json, so a script can read the port back.
type recvListeningJSON struct {
	Event      string `json:"event"`
	ListenAddr string `json:"listen_addr"`
	DataDir    string `json:"data_dir"`
}

func announceRecv(cCtx *cli.Context, addr, data string) error {
	p := newPrinter(cCtx)
	if p.json {
		return p.JSONLine(recvListeningJSON{Event: "listening", ListenAddr: addr, DataDir: data})
	}
	_, err := fmt.Fprintf(p.w, "waiting for a sender on %s to fill %s\n", addr, data)
	return writeErr(err)
}

// replicaOnce opens the receiving directory as a read replica when the
// transfer needs it (to catch an older copy up), once.
type replicaOnce struct {
	fs  vfs.FS
	dir string
	mu  sync.Mutex
	st  *store.Store
}

func (r *replicaOnce) open() (xfer.Replica, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st == nil {
		st, err := store.Open(store.Options{FS: r.fs, Dir: r.dir, Replica: true})
		if err != nil {
			return nil, err
		}
		r.st = st
	}
	return r.st, nil
}

func (r *replicaOnce) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st == nil {
		return nil
	}
	err := r.st.Close()
	r.st = nil
	return err
}

// receivedJSON is what transfer recv prints with --json.
type receivedJSON struct {
	Event   string `json:"event,omitempty"`
	From    string `json:"from"`
	DataDir string `json:"data_dir"`
	StoreID string `json:"store_id"`
	xfer.ReceiveResult
	StateHash string `json:"state_hash"`
}

// printReceived opens the installed directory read-only for its state
// hash, and prints what was received.
func printReceived(cCtx *cli.Context, e env, o recvOpts, res xfer.ReceiveResult) error {
	st, err := store.Open(store.Options{FS: e.fs, Dir: o.opts.Dir, ReadOnly: true})
	if err != nil {
		return failed(fmt.Errorf("open the received directory: %w", err), "run `kvtool verify --data "+o.opts.Dir+"`")
	}
	snap := st.Snapshot()
	out := receivedJSON{From: o.opts.Peer, DataDir: o.opts.Dir, StoreID: st.StoreID().String(), ReceiveResult: res,
		StateHash: format.FormatStateHash(snap.Hash())}
	out.Applied = snap.Index()
	st.Close()
	p := newPrinter(cCtx)
	if p.json {
		if o.listen != "" {
			out.Event = "received"
			return p.JSONLine(out)
		}
		return p.JSON(out)
	}
	t := p.Table("received from", out.From)
	t.Row("data directory", out.DataDir)
	t.Row("store", out.StoreID)
	if res.TailOnly {
		t.Row("snapshot", "none: the directory's store was caught up")
	} else {
		t.Row("snapshot", res.Snapshot)
		t.Row("chunks", fmt.Sprintf("%d (from chunk %d%s)", res.Chunks, res.ResumeFrom, restartedNote(res.Restarted)))
		t.Row("chunk bytes received", fmt.Sprintf("%d (%d chunks asked for again)", res.ChunkBytes, res.Nacks))
		bytesDoneRow(t, res.BytesDone, res.SessionBytes, res.Rate)
	}
	t.Row("tail entries", res.Entries)
	t.Row("applied index", out.Applied)
	t.Row("state hash", out.StateHash)
	return t.Flush()
}

// ---- transfer verify ----

func transferVerifyCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check a saved one-way stream (transfer send --to - > FILE); exit 3 on problems",
		ArgsUsage: "FILE|-",
		Description: `Reads a one-way transfer stream from FILE (or standard input with -) and
checks everything in it: the header and session, every frame's checksum,
every chunk's place and xxh64, the final frame's checksum of the chunks,
the tail's continuity, and, with the secret (--secret-file or
KVTOOL_SECRET), the session's signature and the stream's MAC. It also
assembles the snapshot in a temporary file and verifies it as a checkpoint
(--no-checkpoint skips that).

Prints every problem with its stream offset, then a count; exits 3 if there
is any. Changes nothing.

Examples:
  kvtool transfer verify kv.xfer
  kvtool transfer verify --json --secret-file secret - < kv.xfer`,
		Flags: []cli.Flag{
			progressFlag(),
			secretFlag(),
			&cli.BoolFlag{Name: "no-checkpoint", Usage: "do not assemble and verify the snapshot as a checkpoint"},
		},
		Action: act(e, spec{min: 1, max: 1}, func(c *call) error { return verifyStream(c.Context, c.e, c.Args().First()) }),
	}
}

func verifyStream(cCtx *cli.Context, e env, path string) error {
	secret, err := loadSecret(cCtx, false)
	if err != nil {
		return err
	}
	r := e.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return failed(err, "")
		}
		defer f.Close()
		r = f
	}
	br := bufio.NewReader(r)
	switch magic, err := peekMagic(br); {
	case errors.Is(err, errNotKvtool):
		// Never echo the bytes: the wrong file may be a secret.
		rep := &xfer.StreamReport{Path: path, Problems: []*format.CorruptionError{
			format.Corruptf(path, 0, "not a kvtool transfer stream: %v", err)}}
		return printStreamReport(cCtx, rep)
	case err == nil && magic != format.MagicTransfer:
		return wrongKind(cCtx, path, magic, format.MagicTransfer)
	}
	return verifyStreamFrom(cCtx, br, path, xfer.VerifyOptions{Secret: secret, FS: vfs.Default})
}

// verifyStreamFrom checks the stream r (of path) and prints the report.
func verifyStreamFrom(cCtx *cli.Context, r io.Reader, path string, opts xfer.VerifyOptions) error {
	if !cCtx.Bool("no-checkpoint") {
		tmp, err := os.MkdirTemp("", "kvtool-verify-")
		if err != nil {
			return failed(err, "")
		}
		defer os.RemoveAll(tmp)
		opts.TempDir = tmp
	}
	pr := startProgress(cCtx, "verify", 0)
	opts.Progress = func(n int64) { pr.Update(n, 0) }
	rep, err := xfer.VerifyStream(r, path, opts)
	pr.Done()
	if err != nil {
		return failed(err, "")
	}
	return printStreamReport(cCtx, rep)
}

// streamReportJSON is what transfer verify prints with --json.
type streamReportJSON struct {
	*xfer.StreamReport
	Problems []streamProblem `json:"problems"`
	OK       bool            `json:"ok"`
}

type streamProblem struct {
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
	Reason string `json:"reason"`
}

func printStreamReport(cCtx *cli.Context, rep *xfer.StreamReport) error {
	p := newPrinter(cCtx)
	out := streamReportJSON{StreamReport: rep, Problems: []streamProblem{}, OK: rep.OK()}
	for _, pb := range rep.Problems {
		out.Problems = append(out.Problems, streamProblem{Path: pb.Path, Offset: pb.Offset, Reason: pb.Reason})
	}
	if p.json {
		if err := p.JSON(out); err != nil {
			return err
		}
	} else if err := printStreamText(p, rep); err != nil {
		return err
	}
	if !rep.OK() {
		return damaged(fmt.Errorf("transfer verify: %s: %s", rep.Path, plural(len(rep.Problems), "problem")), "the stream cannot be installed; write it again from its source")
	}
	return nil
}

func printStreamText(p *printer, rep *xfer.StreamReport) error {
	for _, pb := range rep.Problems {
		fmt.Fprintf(p.w, "%s: offset %d: %s\n", pb.Path, pb.Offset, pb.Reason)
	}
	t := p.Table("stream", rep.Path)
	t.Row("bytes", rep.Bytes)
	t.Row("store", rep.StoreID)
	t.Row("snapshot", rep.SnapshotID)
	t.Row("snapshot bytes", rep.Size)
	t.Row("chunks ok", fmt.Sprintf("%d of %d", rep.ChunksOK, rep.Chunks))
	if rep.Entries == 0 {
		t.Row("tail", "no entries")
	} else {
		t.Row("tail", fmt.Sprintf("%d entries, %d..%d", rep.Entries, rep.TailFrom, rep.TailEnd))
	}
	t.Row("signature", checkedNote(rep.MACChecked, "checked", "not checked (no secret given)"))
	t.Row("checkpoint", checkedNote(rep.CheckpointChecked, "verified", "not verified"))
	t.Row("problems", len(rep.Problems))
	return t.Flush()
}

func checkedNote(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

// ---- transfer status ----

func transferStatusCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show transfers: a server's leases, sends and join (--addr), or a data directory's partial transfer",
		Description: `With --addr HOST:PORT (or KVTOOL_ADDR) asks a running server (GET
/v1/transfers): the lease each receiving peer holds (the pinned index, the
bytes it keeps on disk, its state and expiry), the sends started there,
and on a node started with serve --join, the join's progress.

Without it, reads --data: a partial transfer being received (its snapshot,
the chunks verified and durable, the tail received), or a complete store.
Reads only; changes nothing.

Examples:
  kvtool transfer status --addr 127.0.0.1:7070 --json
  kvtool transfer status --data /srv/copy`,
		Flags: []cli.Flag{addrFlag()},
		Action: act(e, spec{scope: serverOrAnyDir}, func(c *call) error {
			if c.t.remote() {
				return serverTransferStatus(c.Context, c.t.addr)
			}
			return localTransferStatus(c)
		}),
	}
}

func serverTransferStatus(cCtx *cli.Context, addr string) error {
	c := client.New(addr)
	defer c.Close()
	var st server.TransfersStatus
	if err := c.Transfers(cCtx.Context, &st); err != nil {
		return remoteError(err)
	}
	p := newPrinter(cCtx)
	if p.json {
		return p.JSON(st)
	}
	t := p.Table("LEASE PEER", "PINNED INDEX", "RETAINED BYTES", "STATE", "EXPIRES")
	for _, l := range st.Leases {
		t.Row(l.Peer, l.Index, l.RetainedBytes, l.State, l.Expires.Format(time.RFC3339))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if err := printSends(p, st.Sends); err != nil {
		return err
	}
	return printJoin(p, st.Join)
}

// printSends lists the sends started on a server, if any.
func printSends(p *printer, sends []*server.SendJob) error {
	if len(sends) == 0 {
		return nil
	}
	t := p.Table("SEND", "TO", "STATE", "CHUNKS DONE", "TAIL INDEX", "ERROR")
	for _, j := range sends {
		t.Row(j.ID, j.To, j.State, fmt.Sprintf("%d/%d", j.Progress.ChunksDone, j.Progress.Chunks), j.Progress.TailIndex, j.Error)
	}
	return t.Flush()
}

// printJoin describes a node's join, if it is one.
func printJoin(p *printer, j *server.JoinStatus) error {
	if j == nil {
		return nil
	}
	t := p.Table("joined from", j.Source)
	if j.SourceAPI != "" {
		t.Row("source api (send writes there)", j.SourceAPI)
	}
	t.Row("phase", j.Phase)
	t.Row("connected", j.Connected)
	t.Row("cut over", j.CutOver)
	t.Row("chunks done", fmt.Sprintf("%d/%d", j.Progress.ChunksDone, j.Progress.Chunks))
	t.Row("applied index", j.Progress.AppliedIndex)
	if j.Error != "" {
		t.Row("last error", j.Error)
	}
	return t.Flush()
}

func localTransferStatus(c *call) error {
	cCtx, data := c.Context, c.data()
	if state, err := statDataDir(c.fs, data); err == nil && (state == dirMissing || state == dirNoParent || state == dirNotDir) {
		return noDataDir(c.fs, dataSetting(cCtx)) // an empty directory is a receiver yet to start
	}
	st, err := xfer.ReadLocalStatus(c.fs, data)
	if err != nil {
		return dirError(err, data)
	}
	p := newPrinter(cCtx)
	if p.json {
		return p.JSON(st)
	}
	t := p.Table("data directory", st.DataDir)
	switch {
	case st.Receiving:
		t.Row("receiving", "snapshot "+st.Snapshot+" of store "+st.StoreID)
		t.Row("chunks verified", fmt.Sprintf("%d of %d (%d of %d bytes)", st.ChunksDone, st.Chunks, st.BytesDone, st.Bytes))
		t.Row("tail received through", st.TailIndex)
		t.Row("snapshot verified", st.Verified)
	case st.Complete:
		t.Row("store", st.StoreID+" (complete; no transfer in progress)")
	default:
		t.Row("state", "empty: no store, no transfer in progress")
	}
	if st.SendCheckpoint != "" {
		t.Row("kept for a resumed send", st.SendCheckpoint)
	}
	if st.SourceAPI != "" {
		t.Row("received from the source whose API is", st.SourceAPI)
	}
	return t.Flush()
}

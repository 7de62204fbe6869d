package node

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"

	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
	"github.com/kvtool/kvtool/xferstore"
)

// maxTransferSessions bounds the transfers a node runs at once; an
// authenticated peer beyond it is told the source is busy (it retries).
const maxTransferSessions = 8

// withTransfers puts the transfer endpoints in front of the API srv of
// st (sends started there end with ctx).
func (n *node) withTransfers(ctx context.Context, st *store.Store, srv *server.Server, src transfer.Source) http.Handler {
	return server.WithTransfers(srv, st, server.TransferOptions{Source: src, Secret: n.cfg.Secret, MaxRate: n.cfg.TransferMaxRate,
		Context: ctx, Logger: n.log, Dial: n.dial})
}

// dial connects to a transfer peer, over TLS if the node has DialTLS.
func (n *node) dial(ctx context.Context, addr string) (net.Conn, error) {
	return transfer.Dial(ctx, addr, n.cfg.DialTLS)
}

// acceptTransfers sends to every node that connects to ln until ctx ends:
// at most maxTransferSessions sessions, counted once the peer proved the
// secret; connections still in their handshake have their own bound and a
// short deadline (transfer.Serve). srv's /metrics count every send. A
// failing listener is logged; the node serves on without it.
func (n *node) acceptTransfers(ctx context.Context, ln net.Listener, src transfer.Source, srv *server.Server) {
	opts := transfer.SendOptions{Secret: n.cfg.Secret, MaxRate: n.cfg.TransferMaxRate, APIAddr: n.apiAddr(),
		Progress: srv.ObserveSendProgress}
	err := transfer.Serve(ctx, ln, src, opts, transfer.ServeOptions{MaxSessions: maxTransferSessions,
		Done: func(peer string, res transfer.SendResult, err error) {
			srv.ObserveSend(peer, res, err)
			logSend(n.log, "transfer to "+peer, res, err)
		}})
	if err != nil {
		n.log.Error("transfers: no longer accepting", "error", err)
	}
}

// logSend logs how a send to a peer ended; a follower disconnecting is the
// normal end of its session.
func logSend(log *slog.Logger, what string, res transfer.SendResult, err error) {
	attrs := []any{"snapshot", res.Snapshot.String(), "chunk_bytes", res.ChunkBytes, "tail_entries", res.Entries, "applied_index", res.Applied}
	switch {
	case err == nil:
		log.Info(what+" done", attrs...)
	case errors.Is(err, transfer.ErrPeerGone) || errors.Is(err, context.Canceled):
		log.Info(what+" ended: the peer went away", append(attrs, "error", err)...)
	default:
		log.Warn(what+" failed", append(attrs, "error", err)...)
	}
}

// storeSource is what the node sends from its store.
func (n *node) storeSource(st *store.Store) *xferstore.StoreSource {
	return xferstore.NewStoreSource(st, xferstore.StoreSourceOptions{FS: n.cfg.FS})
}

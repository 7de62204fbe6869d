package cluster

import "maps"

// AddPeer makes id a peer at addr: the transport dials it and accepts its
// connections. A peer known at another address is moved there; one known
// at addr is left alone. A member adds the peers of the membership it
// applies (Config.OnMembership).
func (t *TCPTransport) AddPeer(id uint64, addr string) {
	if id == t.cfg.ID || id == 0 || addr == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx.Err() != nil {
		return
	}
	old := *t.peers.Load()
	if p := old[id]; p != nil && p.addr == addr {
		return
	}
	next := maps.Clone(old)
	if p := next[id]; p != nil {
		p.cancel()
	}
	p := newPeerSender(t, id, addr)
	next[id] = p
	t.peers.Store(&next)
	t.wg.Add(2)
	go p.run()
	go p.report()
}

// RemovePeer stops sending to id and refuses its connections (those open
// end at their next frame).
func (t *TCPTransport) RemovePeer(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.peers.Load()
	p := old[id]
	if p == nil {
		return
	}
	next := maps.Clone(old)
	delete(next, id)
	t.peers.Store(&next)
	p.cancel()
}

// hasPeer reports whether id is a peer now.
func (t *TCPTransport) hasPeer(id uint64) bool { return (*t.peers.Load())[id] != nil }

package drill

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// link is one direction of the network between two cluster nodes: a TCP
// proxy on a loopback port that the dialling node has in its --cluster map
// as the other node's peer address, forwarding to that node's real
// --peer-listen. The drill cuts a link to partition a node while its
// process keeps running, and heals it afterwards. It is safe for
// concurrent use.
type link struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{} // both ends of every forwarded connection
	wg    sync.WaitGroup        // the accept loop and the forwarders
}

// newLink listens on a loopback port and forwards what it accepts to
// target.
func newLink(target string) (*link, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &link{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// Addr is the address the dialling node is given for the other node.
func (l *link) Addr() string { return l.ln.Addr().String() }

// Cut drops every connection through the link and refuses new ones (they
// are accepted and closed at once, as a dead network would reset them)
// until Heal.
func (l *link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = true
	for c := range l.conns {
		c.Close()
	}
	clear(l.conns)
}

// Heal lets connections through again.
func (l *link) Heal() {
	l.mu.Lock()
	l.cut = false
	l.mu.Unlock()
}

// Close stops the link and waits for its goroutines.
func (l *link) Close() {
	l.ln.Close()
	l.Cut()
	l.wg.Wait()
}

func (l *link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return // closed
		}
		l.wg.Add(1)
		go l.forward(c)
	}
}

// forward joins c to a new connection to the target, unless the link is
// cut.
func (l *link) forward(c net.Conn) {
	defer l.wg.Done()
	if !l.track(c) {
		c.Close()
		return
	}
	t, err := net.Dial("tcp", l.target)
	if err != nil || !l.track(t) {
		if t != nil {
			t.Close()
		}
		l.untrack(c)
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(t, c)
	go pipe(c, t)
	<-done
	<-done
	l.untrack(c)
	l.untrack(t)
}

// track records an open connection; false if the link is cut.
func (l *link) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *link) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	c.Close()
}

// network is the links of a cluster: links[from][to] carries what node
// from dials node to with.
type network struct {
	links map[string]map[string]*link
}

// newNetwork makes a link for every ordered pair of the nodes, forwarding
// to peer[to].
func newNetwork(names []string, peer map[string]string) (*network, error) {
	n := &network{links: map[string]map[string]*link{}}
	for _, from := range names {
		n.links[from] = map[string]*link{}
		for _, to := range names {
			if from == to {
				continue
			}
			l, err := newLink(peer[to])
			if err != nil {
				n.Close()
				return nil, errors.Join(errors.New("listen for a drill's peer link"), err)
			}
			n.links[from][to] = l
		}
	}
	return n, nil
}

// addLink makes the link from carries to node to over, forwarding to
// target (a joiner's peer listener, which the members reach through the
// link's address given as its --advertise-peer). Cut, heal and Close treat
// it as every other link.
func (n *network) addLink(from, to, target string) (*link, error) {
	l, err := newLink(target)
	if err != nil {
		return nil, fmt.Errorf("listen for a drill's peer link to %s: %w", to, err)
	}
	if n.links[from] == nil {
		n.links[from] = map[string]*link{}
	}
	n.links[from][to] = l
	return l, nil
}

// clusterMap is node from's --cluster map: its own real peer address, and
// the links to every other node.
func (n *network) clusterMap(from string, names []string, peer map[string]string) string {
	s := ""
	for i, to := range names {
		if i > 0 {
			s += ","
		}
		addr := peer[to]
		if to != from {
			addr = n.links[from][to].Addr()
		}
		s += to + "=" + addr
	}
	return s
}

// isolate cuts (or, with heal, restores) every link to and from node.
func (n *network) isolate(node string, heal bool) {
	for from, m := range n.links {
		for to, l := range m {
			if from != node && to != node {
				continue
			}
			if heal {
				l.Heal()
			} else {
				l.Cut()
			}
		}
	}
}

// healAll restores every link.
func (n *network) healAll() {
	for _, m := range n.links {
		for _, l := range m {
			l.Heal()
		}
	}
}

// Close closes every link.
func (n *network) Close() {
	for _, m := range n.links {
		for _, l := range m {
			l.Close()
		}
	}
}

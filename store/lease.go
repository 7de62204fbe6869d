package store

import (
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/kvtool/kvtool/format"
)

// DefaultMaxLeaseBytes caps what one lease may keep on disk: a peer that
// stalls for ever cannot fill the disk; past the cap its lease is evicted
// and compaction goes on (the peer restarts with a new snapshot).
const DefaultMaxLeaseBytes = 4 << 30

// Lease states.
const (
	LeaseActive  = "active"
	LeaseExpired = "expired"
	LeaseEvicted = "evicted" // retained more than the cap
)

// Lease keeps, for one peer, every WAL entry after Index and the named files
// from being removed by compaction, until it is released or expires.
type Lease struct {
	s     *Store
	id    uint64
	peer  string
	index uint64
	files []string // paths relative to the data directory

	mu      sync.Mutex
	expires time.Time
	state   string
}

// LeaseInfo describes a lease.
type LeaseInfo struct {
	Peer          string    `json:"peer"`
	Index         uint64    `json:"pinned_index"`
	Files         []string  `json:"files"`
	RetainedBytes int64     `json:"retained_bytes"`
	State         string    `json:"state"`
	Expires       time.Time `json:"expires"`
}

type leases struct {
	mu     sync.Mutex
	next   uint64
	byID   map[uint64]*Lease
	maxLen int64
}

// AcquireLease pins, for peer, the WAL after index and files (paths
// relative to the data directory) for ttl.
func (s *Store) AcquireLease(peer string, index uint64, files []string, ttl time.Duration) *Lease {
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	s.leases.next++
	l := &Lease{s: s, id: s.leases.next, peer: peer, index: index, files: slices.Clone(files),
		expires: time.Now().Add(ttl), state: LeaseActive}
	if s.leases.byID == nil {
		s.leases.byID = map[uint64]*Lease{}
	}
	s.leases.byID[l.id] = l
	return l
}

// Renew extends an active lease by ttl from now. An expired or evicted
// lease stays so: its files may already be gone.
func (l *Lease) Renew(ttl time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == LeaseActive && time.Now().Before(l.expires) {
		l.expires = time.Now().Add(ttl)
	}
}

// Release drops the lease.
func (l *Lease) Release() {
	l.s.leases.mu.Lock()
	delete(l.s.leases.byID, l.id)
	l.s.leases.mu.Unlock()
}

// Active reports whether the lease still protects what it pins.
func (l *Lease) Active() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.activeLocked(time.Now())
}

func (l *Lease) activeLocked(now time.Time) bool {
	if l.state == LeaseActive && !now.Before(l.expires) {
		l.state = LeaseExpired
	}
	return l.state == LeaseActive
}

// Info describes the lease.
func (l *Lease) Info() LeaseInfo {
	l.mu.Lock()
	l.activeLocked(time.Now())
	info := LeaseInfo{Peer: l.peer, Index: l.index, Files: slices.Clone(l.files), State: l.state, Expires: l.expires}
	l.mu.Unlock()
	info.RetainedBytes = l.s.retainedBytes(l.index, l.files)
	return info
}

// Leases describes every lease, active or not, oldest first.
func (s *Store) Leases() []LeaseInfo {
	s.leases.mu.Lock()
	ls := make([]*Lease, 0, len(s.leases.byID))
	for _, l := range s.leases.byID {
		ls = append(ls, l)
	}
	s.leases.mu.Unlock()
	slices.SortFunc(ls, func(a, b *Lease) int { return int(a.id - b.id) })
	out := make([]LeaseInfo, len(ls))
	for i, l := range ls {
		out[i] = l.Info()
	}
	return out
}

// retentionLocked returns the first WAL index compaction must keep (the
// manifest's, or earlier for an active lease) and the snapshot file names
// leases pin. A lease over the size cap is evicted here. The caller holds
// s.leases.mu until it has dropped what is not kept, so that no lease is
// acquired in between (it would be promised history that is about to go).
func (s *Store) retentionLocked(walFirst uint64) (uint64, map[string]bool) {
	now := time.Now()
	pinned := map[string]bool{}
	for _, l := range s.leases.byID {
		l.mu.Lock()
		if l.activeLocked(now) && s.retainedBytes(l.index, l.files) > s.leases.maxLen {
			l.state = LeaseEvicted
		}
		if l.state == LeaseActive {
			walFirst = min(walFirst, l.index+1)
			for _, f := range l.files {
				pinned[filepath.Base(f)] = true
			}
		}
		l.mu.Unlock()
	}
	return walFirst, pinned
}

// retainedBytes is what keeping the WAL after index and files costs on disk.
func (s *Store) retainedBytes(index uint64, files []string) int64 {
	n := int64(0)
	if s.log != nil {
		for _, seg := range s.log.Segments() {
			if seg.LastIndex > index || seg.Records == 0 {
				n += seg.Size
			}
		}
	}
	for _, f := range files {
		if fi, err := s.fs.Stat(filepath.Join(s.dir, f)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// SnapPath returns the path of a snapshot file, relative to the data
// directory, as leases name it.
func SnapPath(name string) string { return filepath.Join(format.SnapDir, name) }

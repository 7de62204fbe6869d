package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Header names of the API.
const (
	// IndexHeader is the response header holding the applied index of the
	// snapshot a read was served from.
	IndexHeader = "X-Kvtool-Index"
	// MoreHeader is set to "true" on a scan answer that stopped before the
	// end of the requested range (at the limit or at the server's byte
	// budget).
	MoreHeader = "X-Kvtool-More"
	// RequestIDHeader carries a client's ID for a write, so that a write
	// retried after a lost answer is applied once (cluster.Request.ID).
	RequestIDHeader = "X-Kvtool-Request-Id"
)

// JSONLinesType is the content type of a streamed scan (?format=jsonl).
const JSONLinesType = "application/x-ndjson"

// ServerHeader and ServerID identify a kvtool server: every answer it gives
// carries "Server: kvtool/v1". A client.Client treats an answer without it as
// coming from something else at the address (*NotKvtoolError), never as a
// kvtool answer: another program's 404 is not a missing key.
const (
	ServerHeader = "Server"
	ServerID     = "kvtool/v1"
)

// IsKvtool reports whether h, the headers of an answer, come from a kvtool
// server.
func IsKvtool(h http.Header) bool { return strings.HasPrefix(h.Get(ServerHeader), "kvtool/") }

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
	// Op is the index of the operation that failed a check (409 only).
	Op *int `json:"op,omitempty"`
	// Key and Reason detail a failed check (409 only).
	Key    string `json:"key,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// IndexResult is the answer to a write: the log index it committed at.
type IndexResult struct {
	Index uint64 `json:"index"`
}

// Pair is one key/value pair of a scan. In JSON the value is "value" when
// it is valid UTF-8 and "value_base64" otherwise, and likewise the key
// ("key" or "key_base64"), so every byte survives the round trip.
type Pair struct {
	Key   string
	Value []byte
}

type jsonPair struct {
	Key         string  `json:"key,omitempty"`
	KeyBase64   string  `json:"key_base64,omitempty"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
}

// MarshalJSON encodes p as {"key","value"}, using the _base64 forms for
// bytes that are not valid UTF-8.
func (p Pair) MarshalJSON() ([]byte, error) {
	var jp jsonPair
	if utf8.ValidString(p.Key) {
		jp.Key = p.Key
	} else {
		jp.KeyBase64 = base64.StdEncoding.EncodeToString([]byte(p.Key))
	}
	if utf8.Valid(p.Value) {
		s := string(p.Value)
		jp.Value = &s
	} else {
		s := base64.StdEncoding.EncodeToString(p.Value)
		jp.ValueBase64 = &s
	}
	return json.Marshal(jp)
}

// UnmarshalJSON decodes either form of each field.
func (p *Pair) UnmarshalJSON(b []byte) error {
	var jp jsonPair
	if err := json.Unmarshal(b, &jp); err != nil {
		return err
	}
	p.Key = jp.Key
	if jp.KeyBase64 != "" {
		k, err := base64.StdEncoding.DecodeString(jp.KeyBase64)
		if err != nil {
			return fmt.Errorf("key_base64: %w", err)
		}
		p.Key = string(k)
	}
	switch {
	case jp.ValueBase64 != nil:
		v, err := base64.StdEncoding.DecodeString(*jp.ValueBase64)
		if err != nil {
			return fmt.Errorf("value_base64: %w", err)
		}
		p.Value = v
	case jp.Value != nil:
		p.Value = []byte(*jp.Value)
	default:
		p.Value = []byte{}
	}
	return nil
}

// HashResult is the answer of GET /v1/hash: the state hash (16 hex digits)
// of one snapshot and that snapshot's applied index.
type HashResult struct {
	AppliedIndex uint64 `json:"applied_index"`
	StateHash    string `json:"state_hash"`
}

// Status is the answer of GET /v1/status.
type Status struct {
	StoreID      string `json:"store_id"`
	DataDir      string `json:"data_dir"`
	AppliedIndex uint64 `json:"applied_index"`
	DurableIndex uint64 `json:"durable_index"`
	Shards       int    `json:"shards"`
	Keys         int    `json:"keys"`
	// Failed is the error that stopped the store accepting writes, if any.
	Failed        string          `json:"failed,omitempty"`
	WALFirstIndex uint64          `json:"wal_first_index"`
	WALLastIndex  uint64          `json:"wal_last_index"`
	WALBytes      int64           `json:"wal_bytes"`
	Segments      []SegmentStatus `json:"segments"`
	// Checkpoint is the base checkpoint named by the manifest (nil: none).
	Checkpoint *FileStatus `json:"checkpoint"`
	// Deltas is the delta chain on top of Checkpoint, oldest first.
	Deltas []FileStatus `json:"deltas"`
	// Leases are the retention leases peers hold (snapshot transfers).
	Leases []LeaseStatus `json:"leases"`
	// Cluster is this member's view of its cluster (nil on a single node).
	Cluster *ClusterStatus `json:"cluster,omitempty"`
	// Replica, on a read replica (serve --join), names its source.
	Replica *ReplicaStatus `json:"replica,omitempty"`
}

// ReplicaStatus names the source a read replica follows.
type ReplicaStatus struct {
	Source string `json:"source"` // the transfer listener it follows
	// SourceAPI is the source's HTTP API, where writes go ("" if the
	// source did not say).
	SourceAPI string `json:"source_api,omitempty"`
}

// LeaseStatus describes a retention lease: what it keeps from compaction.
type LeaseStatus struct {
	Peer          string    `json:"peer"`
	PinnedIndex   uint64    `json:"pinned_index"`
	Files         []string  `json:"files"`
	RetainedBytes int64     `json:"retained_bytes"`
	State         string    `json:"state"`
	Expires       time.Time `json:"expires"`
}

// SegmentStatus describes one WAL segment.
type SegmentStatus struct {
	Name       string `json:"name"`
	FirstIndex uint64 `json:"first_index"`
	LastIndex  uint64 `json:"last_index"`
	Records    int64  `json:"records"`
	Bytes      int64  `json:"bytes"`
}

// FileStatus describes a checkpoint or delta file named by the manifest.
type FileStatus struct {
	Name      string `json:"name"`
	FromIndex uint64 `json:"from_index"`
	Index     uint64 `json:"index"`
	Bytes     int64  `json:"bytes"`
}

// RotateResult is the answer of POST /v1/admin/rotate: the new active
// segment.
type RotateResult struct {
	Segment    string `json:"segment"`
	FirstIndex uint64 `json:"first_index"`
}

// CheckpointResult is the answer of POST /v1/admin/checkpoint and
// /v1/admin/merge: the checkpoint written, now the manifest's base.
type CheckpointResult struct {
	Name      string `json:"name"`
	Path      string `json:"path"` // on the server
	Index     uint64 `json:"index"`
	Term      uint64 `json:"term"`
	Keys      uint64 `json:"keys"`
	Blocks    int    `json:"blocks"`
	Size      int64  `json:"size"`
	StateHash string `json:"state_hash"` // 16 hex digits
	Checksum  string `json:"checksum"`   // whole-file checksum, 16 hex digits
}

// DeltaResult is the answer of POST /v1/admin/delta: the delta written,
// now the end of the manifest's chain.
type DeltaResult struct {
	Name       string `json:"name"`
	Path       string `json:"path"` // on the server
	FromIndex  uint64 `json:"from_index"`
	ToIndex    uint64 `json:"to_index"`
	Term       uint64 `json:"term"`
	Parent     string `json:"parent"` // the base or previous delta it builds on
	Keys       uint64 `json:"keys"`   // keys changed: puts plus tombstones
	Puts       uint64 `json:"puts"`
	Tombstones uint64 `json:"tombstones"`
	Blocks     int    `json:"blocks"`
	Size       int64  `json:"size"`
	Checksum   string `json:"checksum"` // whole-file checksum, 16 hex digits
}

// CompactResult is the answer of POST /v1/admin/compact.
type CompactResult struct {
	// Checkpoint is the checkpoint written; nil when the state was already
	// checkpointed at the applied index.
	Checkpoint      *CheckpointResult `json:"checkpoint"`
	WALFirstIndex   uint64            `json:"wal_first_index"`  // first WAL index the manifest still needs
	DroppedSegments []string          `json:"dropped_segments"` // WAL segments removed
	RemovedFiles    []string          `json:"removed_files"`    // checkpoints, deltas and temp files removed
}

package cluster

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/kvtool/kvtool/store"
)

// Batch records: the IDs of a batch entry of version 3 are recorded in one
// key of the replicated state, by the batch's index, instead of three
// writes per request (the slot table of version 2 made three of a batched
// put's four store writes, on every member: a quarter of a cluster's CPU
// per put at 128 clients, issue 11 "Speed"). Little-endian; part of the
// replicated format:
//
//	DedupPrefix + "batch/" + %016x index -> flags u8 | count uvarint | count x (len uvarint | ID)
//
// flags bit 0: the store refused the batch as a whole, so each of its IDs
// was decided as aborted (as abortedMark records it for one request).
// 1 <= count <= maxBatchRequests, each ID at most MaxRequestID bytes.
//
// The oldest record is deleted, by the apply of a later version 3 batch,
// once the records after it hold DedupWindow IDs or more: an ID applied in
// a batch is remembered for at least DedupWindow batched requests, as in
// version 2, and the records hold fewer than DedupWindow +
// maxBatchRequests IDs.
//
// Lookups go through batchIndex, in memory, which mirrors the records: it
// is built from the store when the node starts and after a snapshot
// install, and changed only by the apply that writes the records, on the
// Ready goroutine. Clients cannot write under DedupPrefix (the server
// refuses it), so nothing else changes them.
const batchRecordPrefix = DedupPrefix + "batch/"

func batchRecordKey(idx uint64) string { return fmt.Sprintf("%s%016x", batchRecordPrefix, idx) }

// batchRecordAborted is the flag of a refused batch's record.
const batchRecordAborted = 1

// batchIndex is the batch records in memory. Only the Ready goroutine
// uses it (and Start before that goroutine runs).
type batchIndex struct {
	ids   map[string]batchRef // every ID a record holds
	recs  []batchRecord       // the records, oldest first
	total int                 // the IDs in recs
	// singles says the store may hold per-request dedup records
	// (dedupKey: requests applied alone, batches of version 2): set by
	// load when it holds one, and before an entry writes one. While it
	// is unset, Node.decided needs no store lookup: a member that only
	// ever batched plain writes looked every request up in the store for
	// nothing (4% of a member's CPU at 128 clients, issue 11 "Speed").
	singles bool
}

// batchRef says where an ID was decided.
type batchRef struct {
	index   uint64
	aborted bool
}

// batchRecord is one batch record.
type batchRecord struct {
	index   uint64
	ids     []string
	aborted bool
}

// load rebuilds the index from snap's records. The records are decoded
// first and the map then made at its final size: a joining member
// rebuilds it after the snapshot's install, up to DedupWindow IDs, and
// growing the map there cost it more than the scan and the decoding.
func (b *batchIndex) load(snap *store.Snapshot) error {
	*b = batchIndex{}
	snap.Scan(store.ScanOptions{Prefix: DedupPrefix + "id/", Limit: 1}, func(string, []byte) bool {
		b.singles = true
		return false
	})
	var err error
	snap.Scan(store.ScanOptions{Prefix: batchRecordPrefix}, func(k string, v []byte) bool {
		var rec batchRecord
		if rec, err = decodeBatchRecord(k, v); err != nil {
			return false
		}
		b.recs = append(b.recs, rec)
		b.total += len(rec.ids)
		return true
	})
	b.ids = make(map[string]batchRef, b.total)
	for _, rec := range b.recs {
		for _, id := range rec.ids {
			b.ids[id] = batchRef{index: rec.index, aborted: rec.aborted}
		}
	}
	return err
}

// decided returns the dedup value (as a dedupKey record holds it: the
// decimal index, after abortedMark if aborted) of an ID a batch record
// holds.
func (b *batchIndex) decided(id string) ([]byte, bool) {
	ref, ok := b.ids[id]
	if !ok {
		return nil, false
	}
	var v []byte
	if ref.aborted {
		v = []byte(abortedMark)
	}
	return strconv.AppendUint(v, ref.index, 10), true
}

// evictions returns how many of the oldest records go when a record of
// n more IDs is added: each one the records after it (the new one
// included) hold window IDs or more.
func (b *batchIndex) evictions(n int, window uint64) int {
	after := b.total + n
	k := 0
	for k < len(b.recs) && uint64(after-len(b.recs[k].ids)) >= window {
		after -= len(b.recs[k].ids)
		k++
	}
	return k
}

// ops returns the writes that record reqs (distinct new IDs) as applied
// at idx, and their twins for a batch the store refuses, each deleting the
// records that the new one evicts (evictions).
func (b *batchIndex) ops(idx uint64, reqs []*request, window uint64) (record, onAbort []store.Op) {
	k := b.evictions(len(reqs), window)
	record = make([]store.Op, 0, k+1)
	for _, rec := range b.recs[:k] {
		record = append(record, store.Op{Kind: store.OpDelete, Key: batchRecordKey(rec.index)})
	}
	onAbort = append(make([]store.Op, 0, k+1), record...)
	key := batchRecordKey(idx)
	record = append(record, store.Op{Kind: store.OpPut, Key: key, Value: encodeBatchRecord(0, reqs)})
	onAbort = append(onAbort, store.Op{Kind: store.OpPut, Key: key, Value: encodeBatchRecord(batchRecordAborted, reqs)})
	return record, onAbort
}

// applied records in memory what ops wrote, once the store applied it.
func (b *batchIndex) applied(idx uint64, reqs []*request, aborted bool, window uint64) {
	k := b.evictions(len(reqs), window)
	for _, rec := range b.recs[:k] {
		for _, id := range rec.ids {
			if b.ids[id].index == rec.index {
				delete(b.ids, id)
			}
		}
		b.total -= len(rec.ids)
	}
	clear(b.recs[:k])
	b.recs = b.recs[k:]
	rec := batchRecord{index: idx, aborted: aborted, ids: make([]string, len(reqs))}
	for i, r := range reqs {
		rec.ids[i] = r.id
	}
	b.add(rec)
}

// add appends rec as the newest record.
func (b *batchIndex) add(rec batchRecord) {
	if b.ids == nil {
		b.ids = map[string]batchRef{}
	}
	for _, id := range rec.ids {
		b.ids[id] = batchRef{index: rec.index, aborted: rec.aborted}
	}
	b.recs = append(b.recs, rec)
	b.total += len(rec.ids)
}

// encodeBatchRecord encodes the record of reqs' IDs.
func encodeBatchRecord(flags byte, reqs []*request) []byte {
	size := 1 + binary.MaxVarintLen64
	for _, r := range reqs {
		size += 1 + len(r.id)
	}
	v := append(make([]byte, 0, size), flags)
	v = binary.AppendUvarint(v, uint64(len(reqs)))
	for _, r := range reqs {
		v = appendBytes(v, []byte(r.id))
	}
	return v
}

// decodeBatchRecord decodes the record under key k strictly: a malformed
// one is an error naming the key (it was written by no member).
func decodeBatchRecord(k string, v []byte) (batchRecord, error) {
	idx, err := strconv.ParseUint(k[len(batchRecordPrefix):], 16, 64)
	if err != nil || len(k) != len(batchRecordPrefix)+16 {
		return batchRecord{}, fmt.Errorf("kvtool/cluster: batch dedup record %q: the key names no index", k)
	}
	d := &reqDecoder{b: v}
	rec := batchRecord{index: idx}
	flags := d.byte1()
	rec.aborted = flags&batchRecordAborted != 0
	n := d.uvarint()
	switch {
	case d.err != nil:
	case flags&^batchRecordAborted != 0:
		d.fail("flags %#x", flags)
	case n == 0 || n > maxBatchRequests:
		d.fail("%d IDs, want 1 to %d", n, maxBatchRequests)
	}
	// The IDs are substrings of one copy of the record (they are dropped
	// together when the record is evicted): one allocation, not two per ID.
	whole := string(v)
	if d.err == nil {
		rec.ids = make([]string, 0, n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		l := d.uvarint()
		if l > MaxRequestID {
			d.fail("length %d exceeds the limit %d", l, MaxRequestID)
		}
		off := len(v) - len(d.b)
		if d.take(int(l)); d.err == nil {
			rec.ids = append(rec.ids, whole[off:off+int(l)])
		}
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d bytes after the last ID", len(d.b))
	}
	if d.err != nil {
		return batchRecord{}, fmt.Errorf("kvtool/cluster: batch dedup record %q: %w", k, d.err)
	}
	return rec, nil
}

package drill

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/store"
)

// The bank workload: accounts holding money, and transfers between them
// from many goroutines. Each transfer is one transaction that moves an
// amount, checks that the source stays non-negative, and puts a marker key
// naming the transfer's unique ID, so that after any fault the state itself
// says which transfers were applied. The workload records every transfer it
// attempted and what the store answered; the checker (checker.go) compares
// a state against that record.

// ErrAborted is matched by the error a Target returns for a transfer its
// own check aborted (the source would go negative): nothing changed.
var ErrAborted = errors.New("kvtool/drill: transfer aborted by its check")

// Target is where the workload sends transactions: a store in this process
// or a server over HTTP (a cluster member is one too).
type Target interface {
	// Commit applies txn atomically and durably and returns its log index.
	// A failed check returns an error matching ErrAborted.
	Commit(ctx context.Context, txn *store.Txn) (uint64, error)
}

// StoreTarget commits to a store in this process.
type StoreTarget struct{ S *store.Store }

// Commit implements Target.
func (t StoreTarget) Commit(ctx context.Context, txn *store.Txn) (uint64, error) {
	idx, err := t.S.Commit(ctx, txn)
	if errors.Is(err, store.ErrCheckFailed) {
		return 0, fmt.Errorf("%w: %v", ErrAborted, err)
	}
	return idx, err
}

// ServerTarget commits to a kvtool server over HTTP.
type ServerTarget struct{ C *client.Client }

// Commit implements Target.
func (t ServerTarget) Commit(ctx context.Context, txn *store.Txn) (uint64, error) {
	ops := make([]client.Op, 0, len(txn.Ops))
	for _, op := range txn.Ops {
		switch {
		case op.Kind == store.OpPut:
			ops = append(ops, client.PutOp(op.Key, string(op.Value)))
		case op.Kind == store.OpAdd:
			ops = append(ops, client.AddOp(op.Key, op.Delta))
		case op.Kind == store.OpCheck && op.Check == store.CheckMin:
			ops = append(ops, client.CheckMinOp(op.Key, op.Min))
		default:
			return 0, fmt.Errorf("kvtool/drill: the bank workload has no operation %d", op.Kind)
		}
	}
	idx, err := t.C.Txn(ctx, ops...)
	if errors.Is(err, client.ErrCheckFailed) {
		return 0, fmt.Errorf("%w: %v", ErrAborted, err)
	}
	return idx, err
}

// Transfer is one attempted move of money.
type Transfer struct {
	ID       uint64
	From, To int
	Amount   int64
}

// AccountKey is the key of account i.
func AccountKey(i int) string { return fmt.Sprintf("acct:%03d", i) }

// MarkerKey is the key a transfer puts, naming its ID.
func MarkerKey(id uint64) string { return fmt.Sprintf("xfer:%012d", id) }

// Key prefixes of the bank's keys.
const (
	accountPrefix = "acct:"
	markerPrefix  = "xfer:"
)

func parseMarkerKey(k string) (uint64, bool) {
	n, err := strconv.ParseUint(strings.TrimPrefix(k, markerPrefix), 10, 64)
	return n, err == nil && n > 0
}

// Outcome is what the store answered to one transfer.
type Outcome int

// Outcomes.
const (
	Acked   Outcome = iota + 1 // acknowledged: it must survive every fault
	Aborted                    // aborted by its check: it must never appear
	Unknown                    // an error answer or none: it may or may not have been applied
)

// setupID is the record's ID for the transaction that creates the accounts.
const setupID = 0

// Bank is the bank workload and its record of what was acknowledged. It is
// safe for concurrent use.
type Bank struct {
	accounts int
	initial  int64
	pad      string // appended to every marker value (to fill a disk quickly)

	next    atomic.Uint64
	mu      sync.RWMutex
	tried   map[uint64]Transfer
	index   map[uint64]uint64 // acknowledged ID -> its log index
	ackSeq  []uint64          // acknowledged IDs in the order acknowledged (setupID first)
	aborted map[uint64]bool
	unknown int
	lastErr error
}

// NewBank returns a bank of n accounts holding initial each, not yet set up
// in any store. pad bytes are added to every transfer's marker value.
func NewBank(n int, initial int64, pad int) *Bank {
	return &Bank{accounts: n, initial: initial, pad: strings.Repeat("p", pad),
		tried: map[uint64]Transfer{}, index: map[uint64]uint64{}, aborted: map[uint64]bool{}}
}

// Setup creates the accounts in one transaction.
func (b *Bank) Setup(ctx context.Context, t Target) error {
	txn := &store.Txn{}
	for i := range b.accounts {
		txn.Ops = append(txn.Ops, store.Op{Kind: store.OpPut, Key: AccountKey(i), Value: []byte(strconv.FormatInt(b.initial, 10))})
	}
	idx, err := t.Commit(ctx, txn)
	if err != nil {
		return fmt.Errorf("create the %d accounts: %w", b.accounts, err)
	}
	b.mu.Lock()
	b.index[setupID] = idx
	b.ackSeq = append(b.ackSeq, setupID)
	b.mu.Unlock()
	return nil
}

// markerValue is what transfer x puts under its marker key.
func (b *Bank) markerValue(x Transfer) string {
	return fmt.Sprintf("%d,%d,%d%s", x.From, x.To, x.Amount, b.pad)
}

func (b *Bank) txn(x Transfer) *store.Txn {
	from, to := AccountKey(x.From), AccountKey(x.To)
	return &store.Txn{Ops: []store.Op{
		{Kind: store.OpAdd, Key: from, Delta: -x.Amount},
		{Kind: store.OpAdd, Key: to, Delta: x.Amount},
		{Kind: store.OpCheck, Key: from, Check: store.CheckMin, Min: 0},
		{Kind: store.OpPut, Key: MarkerKey(x.ID), Value: []byte(b.markerValue(x))},
	}}
}

// requestTimeout bounds one transfer: an answer that takes longer counts
// as none (Unknown).
const requestTimeout = 10 * time.Second

// Attempt makes one random transfer and records the answer.
func (b *Bank) Attempt(ctx context.Context, t Target, rng *rand.Rand) (Outcome, error) {
	x := Transfer{ID: b.next.Add(1), From: rng.IntN(b.accounts), Amount: 1 + rng.Int64N(b.initial/3+1)}
	x.To = (x.From + 1 + rng.IntN(b.accounts-1)) % b.accounts
	b.mu.Lock()
	b.tried[x.ID] = x
	b.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	idx, err := t.Commit(rctx, b.txn(x))
	cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err == nil:
		b.index[x.ID] = idx
		b.ackSeq = append(b.ackSeq, x.ID)
		return Acked, nil
	case errors.Is(err, ErrAborted):
		b.aborted[x.ID] = true
		return Aborted, err
	}
	b.unknown++
	b.lastErr = err
	return Unknown, err
}

// Run runs workers goroutines of transfers until ctx is done.
func (b *Bank) Run(ctx context.Context, t Target, workers int, seed uint64) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for ctx.Err() == nil {
				b.Attempt(ctx, t, rng)
			}
		}()
	}
	wg.Wait()
}

// Stats counts the transfers by outcome so far.
type Stats struct {
	Attempted, Acked, Aborted, Unknown int
	LastErr                            error // the last error answer, if any
}

// Stats returns the counts so far (the setup transaction not included).
func (b *Bank) Stats() Stats {
	b.mu.RLock()
	defer b.mu.RUnlock()
	acked := len(b.ackSeq)
	if _, ok := b.index[setupID]; ok {
		acked--
	}
	return Stats{Attempted: len(b.tried), Acked: acked, Aborted: len(b.aborted), Unknown: b.unknown, LastErr: b.lastErr}
}

// Record is what the workload knows was acknowledged at one moment: the
// first n acknowledgements. It is a view of the bank, not a copy.
type Record struct {
	b *Bank
	n int
	// lost, if set, says which log indexes a repair reported removed: the
	// checker expects those transfers absent rather than present.
	lost func(index uint64) bool
}

// All returns the record of everything acknowledged so far.
func (b *Bank) All() Record {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return Record{b: b, n: len(b.ackSeq)}
}

// WithReportedLost returns the record with the transfers at the log indexes
// lost(index) reports expected absent: a forced repair said it removed them.
func (r Record) WithReportedLost(lost func(index uint64) bool) Record {
	r.lost = lost
	return r
}

// Acked returns the number of transfers acknowledged in the record.
func (r Record) Acked() int {
	r.b.mu.RLock()
	defer r.b.mu.RUnlock()
	n := r.n
	if n > 0 && r.b.ackSeq[0] == setupID {
		n--
	}
	return n
}

// IndexOf returns the log index transfer id was acknowledged at.
func (r Record) IndexOf(id uint64) (uint64, bool) {
	r.b.mu.RLock()
	defer r.b.mu.RUnlock()
	idx, ok := r.b.index[id]
	return idx, ok
}

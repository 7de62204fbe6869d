package client

import "github.com/kvtool/kvtool/api"

// The wire types moved to package api, which the server imports too. These
// aliases keep existing callers compiling while they move over.
type (
	// Op is one operation of a transaction; build it with api's
	// constructors (api.PutOp, ...), which the server decodes by
	// construction.
	//
	// Deprecated: use api.Op.
	Op = api.Op
	// TxnRequest is the body of POST /v1/txn.
	//
	// Deprecated: use api.Txn.
	TxnRequest = api.Txn
	// Deprecated: use api.ErrorBody.
	ErrorBody = api.ErrorBody
	// Deprecated: use api.IndexResult.
	IndexResult = api.IndexResult
	// Deprecated: use api.Pair.
	Pair = api.Pair
	// Deprecated: use api.HashResult.
	HashResult = api.HashResult
	// Deprecated: use api.Status.
	Status = api.Status
	// Deprecated: use api.LeaseStatus.
	LeaseStatus = api.LeaseStatus
	// Deprecated: use api.SegmentStatus.
	SegmentStatus = api.SegmentStatus
	// Deprecated: use api.FileStatus.
	FileStatus = api.FileStatus
	// Deprecated: use api.RotateResult.
	RotateResult = api.RotateResult
	// Deprecated: use api.CheckpointResult.
	CheckpointResult = api.CheckpointResult
	// Deprecated: use api.DeltaResult.
	DeltaResult = api.DeltaResult
	// Deprecated: use api.CompactResult.
	CompactResult = api.CompactResult
)

// Header names and content types, moved to package api.
const (
	// Deprecated: use api.IndexHeader.
	IndexHeader = api.IndexHeader
	// Deprecated: use api.MoreHeader.
	MoreHeader = api.MoreHeader
	// Deprecated: use api.JSONLinesType.
	JSONLinesType = api.JSONLinesType
)

// PutOp sets key to value.
//
// Deprecated: use api.PutOp.
func PutOp(key, value string) Op { return api.PutOp(key, value) }

// DelOp removes key.
//
// Deprecated: use api.DelOp.
func DelOp(key string) Op { return api.DelOp(key) }

// AddOp adds delta to the decimal integer at key (a missing key is 0).
//
// Deprecated: use api.AddOp.
func AddOp(key string, delta int64) Op { return api.AddOp(key, delta) }

// CheckMinOp aborts the transaction unless key holds an integer >= min.
//
// Deprecated: use api.CheckMinOp.
func CheckMinOp(key string, min int64) Op { return api.CheckMinOp(key, min) }

// CheckExistsOp aborts the transaction unless key's presence is exists.
//
// Deprecated: use api.CheckExistsOp.
func CheckExistsOp(key string, exists bool) Op { return api.CheckExistsOp(key, exists) }

// CheckEqualsOp aborts the transaction unless key holds exactly value.
//
// Deprecated: use api.CheckEqualsOp.
func CheckEqualsOp(key, value string) Op { return api.CheckEqualsOp(key, value) }

package client

import "github.com/kvtool/kvtool/api"

// The wire types moved to package api, which the server imports too. These
// aliases keep existing callers compiling while they move over.
type (
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

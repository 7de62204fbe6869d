// Package manifest reads and publishes the manifest: the one small file of
// a data directory that says what the directory holds — the store's
// identity and shard count, the base checkpoint, its delta chain, and the
// first WAL index still needed. Recovery starts from it; a file it does
// not name is never trusted.
//
// # On-disk layout
//
//	DATA/MANIFEST:
//	+-----------------------------------+-------------------------------------+
//	| file header (format.MagicManifest, | one frame (format.FrameManifest):   |
//	| no ext)                           | payload: the Manifest as JSON       |
//	+-----------------------------------+-------------------------------------+
//
// The frame checksum covers the JSON; JSON keeps the file readable with a
// hex dump at 3 a.m. and lets later versions add fields (a reader refuses
// unknown ones). The file is replaced only by format's durable publish
// (temp, fsync, rename, fsync directory), so it is always either the old
// or the new manifest, never a mix.
//
// # Concurrency
//
// Load and Publish are safe to call concurrently with readers of the file;
// callers serialize Publish calls for one directory. A Manifest is a plain
// value.
package manifest

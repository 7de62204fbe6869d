// Package api holds the request and response types of the HTTP API that
// `kvtool serve` exposes (package server) and the Go client calls (package
// client): the transaction JSON, the status, hash, scan and maintenance
// answers, the error body and the header names. Both sides encode and
// decode these types, so the contract is written down once and cannot
// drift between them.
//
// # Bytes
//
// Keys and values are bytes. On the wire a key or value is a JSON string
// when it is valid UTF-8 ("key", "value", "equals") and base64 of its bytes
// otherwise ("key_base64", "value_base64", "equals_base64"); the encoders
// here pick the form, and the decoders accept either and refuse a string
// that is not valid UTF-8 rather than rewrite it. ParseTxnJSON reads a
// transaction as a stream and stops at the first operation past MaxTxnOps
// or MaxTxnBytes, so a huge body costs what one transaction may hold.
//
// Only the standard library and internal/txncheck (the state-free check
// the store runs too) are imported: a program that talks to a server does
// not link the store. The limits equal the store's; a test pins them.
//
// # Concurrency
//
// The types are plain values; ParseTxnJSON and the JSON methods keep no
// state between calls and are safe to call from many goroutines.
package api

// Command kvtool runs a durable key-value store and inspects, verifies and
// repairs its data directory; see `kvtool --help`, README.md and
// ../shared/DESIGN.md (CLI and API contract).
//
// The CLI is github.com/urfave/cli/v2, one file per command group, each
// returning a *cli.Command. It is thin: an action parses its arguments and
// flags, calls one library function (store, datadir, segment, transfer,
// server, client, ...) and prints the result. Only this package prints:
// data on the app's Writer (aligned text, or one JSON document or JSON
// lines with --json), notes and errors on its ErrWriter.
//
// # Bytes
//
// It defines no file format of its own; every file it reads or writes goes
// through the library packages. Scripts rely on its output and exit codes:
// 0 success, 1 operational failure, 2 usage error, 3 corruption, a gap or
// a mismatch found, 4 a transaction aborted by a failed check, 5 a get of
// a missing key, 130 interrupted. Read-only commands (list, inspect,
// verify, dump, query) never create, lock or change a file.
//
// # Concurrency
//
// One command runs per process. A command that writes a data directory
// holds its LOCK (a second one gets an error naming the holder), or asks
// the server of --addr to do the work on its live store.
package main

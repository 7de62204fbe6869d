//go:build race

package query

// raceEnabled shortens the randomized campaigns under the race detector,
// which makes SQLite's translated C many times slower.
const raceEnabled = true

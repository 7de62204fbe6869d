package query

import (
	"strings"

	"modernc.org/sqlite"
)

// readPragmas are the pragmas a query may use with an argument: they take
// a table or function name and only describe it. Any other pragma with an
// argument could change a setting (query_only, case_sensitive_like) and is
// refused; without one, a pragma only reads.
var readPragmas = map[string]bool{
	"table_info": true, "table_xinfo": true, "table_list": true, "index_list": true,
	"index_info": true, "index_xinfo": true, "foreign_key_list": true,
}

// authorize is the session's SQLite authorizer: it lets a statement read
// and compute, and refuses anything that would write, attach a database,
// change a setting or load an extension. It records what it refused so the
// error says so. PRAGMA query_only is on as well; this is the check that
// names the reason.
func (s *Session) authorize(action sqlite.AuthorizerActionCode, arg1, arg2, dbName, trigger string) sqlite.AuthorizerReturnCode {
	what := ""
	switch action {
	case sqlite.AuthSelect, sqlite.AuthRead, sqlite.AuthRecursive, sqlite.AuthTransaction, sqlite.AuthSavepoint:
		return sqlite.AuthorizerOK
	case sqlite.AuthFunction:
		if !strings.EqualFold(arg2, "load_extension") {
			return sqlite.AuthorizerOK
		}
		what = "load_extension"
	case sqlite.AuthPragma:
		if arg2 == "" || readPragmas[strings.ToLower(arg1)] {
			return sqlite.AuthorizerOK
		}
		what = "PRAGMA " + arg1 + " = " + arg2
	case sqlite.AuthAttach:
		what = "ATTACH"
	case sqlite.AuthDetach:
		what = "DETACH"
	case sqlite.AuthInsert, sqlite.AuthUpdate, sqlite.AuthDelete:
		if isSchemaTable(arg1) {
			what = "changing the schema (CREATE, DROP, ALTER)"
			break
		}
		what = map[sqlite.AuthorizerActionCode]string{sqlite.AuthInsert: "INSERT into ", sqlite.AuthUpdate: "UPDATE of ", sqlite.AuthDelete: "DELETE from "}[action] + arg1
	default:
		what = actionNames[action]
		if what == "" {
			what = "a statement that changes the database"
		}
	}
	s.mu.Lock()
	if s.denied == "" {
		s.denied = what
	}
	s.mu.Unlock()
	return sqlite.AuthorizerDeny
}

func isSchemaTable(name string) bool {
	switch strings.ToLower(name) {
	case "sqlite_master", "sqlite_temp_master", "sqlite_schema", "sqlite_temp_schema", "sqlite_sequence":
		return true
	}
	return false
}

var actionNames = map[sqlite.AuthorizerActionCode]string{
	sqlite.AuthCreateIndex: "CREATE INDEX", sqlite.AuthCreateTable: "CREATE TABLE",
	sqlite.AuthCreateTempIndex: "CREATE INDEX", sqlite.AuthCreateTempTable: "CREATE TABLE",
	sqlite.AuthCreateTempTrigger: "CREATE TRIGGER", sqlite.AuthCreateTempView: "CREATE VIEW",
	sqlite.AuthCreateTrigger: "CREATE TRIGGER", sqlite.AuthCreateView: "CREATE VIEW",
	sqlite.AuthDropIndex: "DROP INDEX", sqlite.AuthDropTable: "DROP TABLE",
	sqlite.AuthDropTempIndex: "DROP INDEX", sqlite.AuthDropTempTable: "DROP TABLE",
	sqlite.AuthDropTempTrigger: "DROP TRIGGER", sqlite.AuthDropTempView: "DROP VIEW",
	sqlite.AuthDropTrigger: "DROP TRIGGER", sqlite.AuthDropView: "DROP VIEW",
	sqlite.AuthAlterTable: "ALTER TABLE", sqlite.AuthReindex: "REINDEX", sqlite.AuthAnalyze: "ANALYZE",
	sqlite.AuthCreateVTable: "CREATE VIRTUAL TABLE", sqlite.AuthDropVTable: "DROP TABLE",
}

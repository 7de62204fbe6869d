package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// POST /v1/query runs one read-only SQL statement on a snapshot of the
// server's state and streams its rows as JSON lines:
//
//	{"columns": ["key", "value"], "applied_index": 42}   QueryHeader
//	["acct:1", "90"]                                      one array per row
//	{"end": true, "rows": 2}                              QueryEnd
//
// A cell is null, a number (INTEGER), a string (TEXT), or an object:
// {"real": "1.5"} (REAL, as strconv formats it, "+Inf" included),
// {"base64": "..."} (BLOB) or {"text_base64": "..."} (TEXT that is not
// UTF-8). A statement that fails before its first row is answered 400 (bad
// SQL, a write refused: the kind says which) or another error status; one
// that fails later ends the stream with a QueryEnd holding the error.

// QueryRequest is the body of POST /v1/query.
type QueryRequest struct {
	SQL       string `json:"sql"`
	MaxRows   int64  `json:"max_rows,omitempty"`   // stop after this many rows (the server caps it)
	TimeoutMS int64  `json:"timeout_ms,omitempty"` // give up after this long (the server caps it)
}

// QueryHeader is the first line of a query's answer.
type QueryHeader struct {
	Columns      []string `json:"columns"`
	AppliedIndex uint64   `json:"applied_index"` // the snapshot the kv table reads
}

// QueryEnd is the last line of a query's answer.
type QueryEnd struct {
	End       bool   `json:"end"`
	Rows      int64  `json:"rows"`
	Truncated bool   `json:"truncated,omitempty"` // the row limit stopped the query
	Error     string `json:"error,omitempty"`     // the query failed after its header
	Kind      string `json:"kind,omitempty"`      // the error's kind (see Query kinds)
}

// Query error kinds, in error answers and QueryEnd.
const (
	QueryKindSQL        = "sql"         // SQLite rejected the statement
	QueryKindReadOnly   = "read_only"   // the statement would write
	QueryKindNotCovered = "not_covered" // kv_at of an index the files do not cover
	QueryKindCorruption = "corruption"  // a file read is damaged
	QueryKindTimeout    = "timeout"     // the server's time limit ended it
	QueryKindCanceled   = "canceled"
)

// QueryError is a query the server refused or that failed.
type QueryError struct {
	Status  int    // HTTP status (200 when the stream ended with the error)
	Kind    string // a QueryKind, or "" if not known
	Message string
}

func (e *QueryError) Error() string { return e.Message }

// queryErrorBody is the error answer of POST /v1/query.
type queryErrorBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind,omitempty"`
}

// Query runs req on the server: it calls header once, then row for each
// row as it arrives (the slice is reused; its values are not). A failure
// of the statement is a *QueryError.
func (c *Client) Query(ctx context.Context, req QueryRequest, header func(QueryHeader) error, row func([]any) error) (QueryEnd, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return QueryEnd{}, err
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1/query", bytes.NewReader(body), "application/json")
	if err != nil {
		return QueryEnd{}, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		var eb queryErrorBody
		if json.Unmarshal(raw, &eb) != nil || eb.Error == "" {
			return QueryEnd{}, checkStatus(&http.Response{StatusCode: resp.StatusCode, Body: io.NopCloser(bytes.NewReader(raw))})
		}
		return QueryEnd{}, &QueryError{Status: resp.StatusCode, Kind: eb.Kind, Message: eb.Error}
	}
	var cbErr error // an error of header or row is returned as is
	end, err := readQueryStream(resp.Body, func(h QueryHeader) error {
		cbErr = header(h)
		return cbErr
	}, func(vals []any) error {
		cbErr = row(vals)
		return cbErr
	})
	if cbErr != nil {
		return end, cbErr
	} else if err != nil && ctx.Err() != nil {
		return end, ctx.Err()
	} else if err != nil {
		return end, c.transportErr(err)
	}
	if end.Error != "" {
		return end, &QueryError{Status: http.StatusOK, Kind: end.Kind, Message: end.Error}
	}
	return end, nil
}

// maxQueryLine bounds one line of a query's answer: a row of a few
// values of at most format.MaxValueSize each, base64-encoded.
const maxQueryLine = 64 << 20

func readQueryStream(r io.Reader, header func(QueryHeader) error, row func([]any) error) (QueryEnd, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	line, err := readLine(br)
	if err != nil {
		return QueryEnd{}, streamErr(err, "no header")
	}
	var h QueryHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return QueryEnd{}, fmt.Errorf("kvtool/client: query header: %w", err)
	}
	if err := header(h); err != nil {
		return QueryEnd{}, err
	}
	vals := make([]any, len(h.Columns))
	for {
		line, err := readLine(br)
		if err != nil {
			return QueryEnd{}, streamErr(err, "the answer ended before its last line")
		}
		if len(line) > 0 && line[0] == '{' {
			var end QueryEnd
			if err := json.Unmarshal(line, &end); err != nil || !end.End {
				return QueryEnd{}, fmt.Errorf("kvtool/client: query end line %.80q: %v", line, err)
			}
			return end, nil
		}
		if err := DecodeRow(line, vals); err != nil {
			return QueryEnd{}, err
		}
		if err := row(vals); err != nil {
			return QueryEnd{}, err
		}
	}
}

// readLine reads one whole line (without its newline); a line cut short
// by the end of the answer is an error, as is one over maxQueryLine.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		part, err := br.ReadSlice('\n')
		if len(line)+len(part) > maxQueryLine {
			return nil, fmt.Errorf("a line is over %d bytes", maxQueryLine)
		}
		line = append(line, part...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

func streamErr(err error, what string) error {
	return fmt.Errorf("kvtool/client: query: %s: %w", what, err)
}

// AppendRow appends the JSON array of a row's values to dst.
func AppendRow(dst []byte, vals []any) []byte {
	dst = append(dst, '[')
	for i, v := range vals {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendCell(dst, v)
	}
	return append(dst, ']')
}

// AppendCell appends the JSON form of one value (see the stream format).
func AppendCell(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case int64:
		return strconv.AppendInt(dst, v, 10)
	case float64:
		dst = append(dst, `{"real":"`...)
		dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
		return append(dst, `"}`...)
	case string:
		if !utf8.ValidString(v) {
			return appendBase64(dst, "text_base64", []byte(v))
		}
		b, _ := json.Marshal(v)
		return append(dst, b...)
	case []byte:
		return appendBase64(dst, "base64", v)
	case bool:
		if v {
			return append(dst, '1')
		}
		return append(dst, '0')
	}
	b, _ := json.Marshal(fmt.Sprint(v))
	return append(dst, b...)
}

func appendBase64(dst []byte, name string, b []byte) []byte {
	dst = append(dst, `{"`...)
	dst = append(dst, name...)
	dst = append(dst, `":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, `"}`...)
}

// DecodeRow decodes a JSON row into vals (which must have one slot per
// column): nil, int64, float64, string or []byte.
func DecodeRow(line []byte, vals []any) error {
	var cells []json.RawMessage
	if err := json.Unmarshal(line, &cells); err != nil {
		return fmt.Errorf("kvtool/client: query row %.80q: %w", line, err)
	}
	if len(cells) != len(vals) {
		return fmt.Errorf("kvtool/client: query row has %d values, the header %d columns", len(cells), len(vals))
	}
	for i, c := range cells {
		v, err := decodeCell(c)
		if err != nil {
			return fmt.Errorf("kvtool/client: query row value %d %.40q: %w", i, c, err)
		}
		vals[i] = v
	}
	return nil
}

var errBadCell = errors.New("not a query value")

func decodeCell(c json.RawMessage) (any, error) {
	c = bytes.TrimSpace(c)
	switch {
	case len(c) == 0:
		return nil, errBadCell
	case string(c) == "null":
		return nil, nil
	case c[0] == '"':
		var s string
		err := json.Unmarshal(c, &s)
		return s, err
	case c[0] == '{':
		var o struct {
			Real       *string `json:"real"`
			Base64     *string `json:"base64"`
			TextBase64 *string `json:"text_base64"`
		}
		if err := json.Unmarshal(c, &o); err != nil {
			return nil, err
		}
		switch {
		case o.Real != nil:
			f, err := strconv.ParseFloat(*o.Real, 64)
			if err != nil && !math.IsInf(f, 0) {
				return nil, err
			}
			return f, nil
		case o.Base64 != nil:
			return base64.StdEncoding.DecodeString(*o.Base64)
		case o.TextBase64 != nil:
			b, err := base64.StdEncoding.DecodeString(*o.TextBase64)
			return string(b), err
		}
		return nil, errBadCell
	}
	return strconv.ParseInt(string(c), 10, 64)
}

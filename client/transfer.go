package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// The transfer endpoints of a server (server.WithTransfers). Their answers
// carry types of packages the client does not import (transfer progress
// and results): Transfers decodes into the caller's value, typically a
// *server.TransfersStatus.

// SendRequest is the body of POST /v1/transfer/send: the receiver (a
// `kvtool transfer recv --listen`), and optionally a lower rate and a
// chunk size (0: the server's).
type SendRequest struct {
	To        string `json:"to"`
	MaxRate   int64  `json:"max_rate"`
	ChunkSize int    `json:"chunk_size"`
}

// StartSend asks the server to send its snapshot and log tail to the
// receiver at req.To, and returns the send's ID; Transfers follows it.
func (c *Client) StartSend(ctx context.Context, req SendRequest) (int, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	var started struct {
		ID int `json:"id"`
	}
	const path = "/v1/transfer/send"
	resp, err := c.transferDo(ctx, http.MethodPost, path, body)
	if err != nil {
		return 0, err
	}
	defer drain(resp)
	if err := json.NewDecoder(resp.Body).Decode(&started); err != nil {
		return 0, fmt.Errorf("%s: decode the answer of POST %s: %w", c.addr, path, c.transportErr(err))
	}
	return started.ID, nil
}

// Transfers decodes the answer of GET /v1/transfers (the leases receiving
// peers hold, the sends started there, a node's join) into v.
func (c *Client) Transfers(ctx context.Context, v any) error {
	const path = "/v1/transfers"
	resp, err := c.transferDo(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer drain(resp)
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("%s: decode the answer of GET %s: %w", c.addr, path, c.transportErr(err))
	}
	return nil
}

// TransferStream returns the server's one-way transfer stream (GET
// /v1/transfer/stream), at most maxRate bytes per second (0: the server's
// limit). The caller closes it.
func (c *Client) TransferStream(ctx context.Context, maxRate int64) (io.ReadCloser, error) {
	resp, err := c.transferDo(ctx, http.MethodGet, fmt.Sprintf("/v1/transfer/stream?max_rate=%d", maxRate), nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// transferDo sends a request to a transfer endpoint; an answer other than
// 2xx is an *Error (wrapped with the request) and its body is closed.
func (c *Client) transferDo(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	resp, err := c.do(ctx, method, path, bytes.NewReader(body), "application/json")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer drain(resp)
		return nil, fmt.Errorf("%s %s: %w", method, path, checkStatus(resp))
	}
	return resp, nil
}

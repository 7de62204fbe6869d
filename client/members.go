package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/kvtool/kvtool/api"
)

// MemberSigner signs a membership change request with the members'
// shared secret (cluster.MemberChangeMAC); the client does not know the
// secret itself.
type MemberSigner func(method, path string, unix int64, body []byte) string

// AddMember asks the cluster to add a learner (POST /v1/cluster/members),
// through any member, and returns the membership once the change applied.
func (c *Client) AddMember(ctx context.Context, sign MemberSigner, req api.MemberAddRequest) (*api.MemberChangeResult, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	return c.memberChange(ctx, sign, http.MethodPost, "/v1/cluster/members", body)
}

// PromoteMember asks the leader to make learner name a voter; a learner
// that lags is an *Error with Status 409.
func (c *Client) PromoteMember(ctx context.Context, sign MemberSigner, name string) (*api.MemberChangeResult, error) {
	return c.memberChange(ctx, sign, http.MethodPost, "/v1/cluster/members/"+url.PathEscape(name)+"/promote", nil)
}

// RemoveMember asks the cluster to remove member name.
func (c *Client) RemoveMember(ctx context.Context, sign MemberSigner, name string) (*api.MemberChangeResult, error) {
	return c.memberChange(ctx, sign, http.MethodDelete, "/v1/cluster/members/"+url.PathEscape(name), nil)
}

// ReplaceMember asks the cluster to make learner add a voter and remove
// voter old, in one joint change.
func (c *Client) ReplaceMember(ctx context.Context, sign MemberSigner, old, add string) (*api.MemberChangeResult, error) {
	return c.memberChange(ctx, sign, http.MethodPost, "/v1/cluster/members/"+url.PathEscape(old)+"/replace-with/"+url.PathEscape(add), nil)
}

func (c *Client) memberChange(ctx context.Context, sign MemberSigner, method, path string, body []byte) (*api.MemberChangeResult, error) {
	now := time.Now().Unix()
	hdr := http.Header{}
	hdr.Set(api.MemberTimeHeader, strconv.FormatInt(now, 10))
	hdr.Set(api.MemberAuthHeader, sign(method, path, now, body))
	resp, err := c.doHeader(ctx, method, path, bytes.NewReader(body), "application/json", hdr)
	if err != nil {
		return nil, err
	}
	var res api.MemberChangeResult
	if err := notCluster(c.decodeAnswer(resp, method, path, &res)); err != nil {
		return nil, err
	}
	return &res, nil
}

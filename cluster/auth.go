package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// MemberChangeMAC is the authentication of a membership change request
// over the HTTP API: hex HMAC-SHA256 with the members' shared secret over
// the method, path, time (Unix seconds) and body. The secret never
// travels.
func MemberChangeMAC(secret []byte, method, path string, unix int64, body []byte) string {
	h := hmac.New(sha256.New, secret)
	fmt.Fprintf(h, "kvtool-member-change\x00%s\x00%s\x00%d\x00", method, path, unix)
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// ErrUnauthorized is wrapped when a membership change request is not
// signed with the cluster's shared secret, or too old.
var ErrUnauthorized = errors.New("kvtool/cluster: membership change refused")

// MaxMemberChangeSkew is how far a membership change request's time may
// be from the member's clock.
const MaxMemberChangeSkew = 5 * time.Minute

// CheckMemberChange checks the authentication of a membership change
// request (MemberChangeMAC) against this member's secret and clock.
func (m *Member) CheckMemberChange(method, path, unix, mac string, body []byte) error {
	t, err := strconv.ParseInt(unix, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: the request has no valid time (%q)", ErrUnauthorized, unix)
	}
	if d := time.Since(time.Unix(t, 0)); d > MaxMemberChangeSkew || d < -MaxMemberChangeSkew {
		return fmt.Errorf("%w: the request's time is %v off this member's clock (at most %v)", ErrUnauthorized, d.Round(time.Second), MaxMemberChangeSkew)
	}
	want := MemberChangeMAC(m.secret, method, path, t, body)
	if !hmac.Equal([]byte(want), []byte(mac)) {
		return fmt.Errorf("%w: the request is not signed with this cluster's shared secret (KVTOOL_SECRET or --secret-file)", ErrUnauthorized)
	}
	return nil
}

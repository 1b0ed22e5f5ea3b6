package webhooks

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPublicAddr(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"2606:4700:4700::1111", true},
		{"::ffff:8.8.8.8", true},
		{"127.0.0.1", false},
		{"127.1.2.3", false},
		{"::1", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false}, // EC2 metadata
		{"169.254.170.2", false},   // ECS credentials
		{"fd00:ec2::254", false},   // EC2 metadata over IPv6
		{"fe80::1", false},
		{"100.64.0.1", false}, // CGNAT
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"::", false},
		{"224.0.0.1", false},
		{"ff02::1", false},
		{"255.255.255.255", false},
		{"240.0.0.1", false},
		{"192.0.0.8", false},
		{"198.18.0.1", false},
		{"192.0.2.1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"64:ff9b::7f00:1", false}, // NAT64 of 127.0.0.1
		{"2002:7f00:1::", false},   // 6to4 of 127.0.0.1
	} {
		a := netip.MustParseAddr(c.addr)
		assert.Equal(t, c.public, PublicAddr(a), c.addr)
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		url          string
		ok           bool
		okIfPrivate  bool
		blockedError bool
	}{
		{url: "https://example.com/hook", ok: true, okIfPrivate: true},
		{url: "https://example.com:8443/hook?x=1", ok: true, okIfPrivate: true},
		{url: "https://8.8.8.8/hook", ok: true, okIfPrivate: true},
		{url: "http://example.com/hook", okIfPrivate: true},
		{url: "http://127.0.0.1:9000/hook", okIfPrivate: true},
		{url: "https://127.0.0.1/hook", okIfPrivate: true, blockedError: true},
		{url: "https://[::1]/hook", okIfPrivate: true, blockedError: true},
		{url: "https://169.254.169.254/latest/meta-data", okIfPrivate: true, blockedError: true},
		{url: "https://10.0.0.1/", okIfPrivate: true, blockedError: true},
		{url: "https://[fd00:ec2::254]/", okIfPrivate: true, blockedError: true},
		{url: "https://100.64.1.1/", okIfPrivate: true, blockedError: true},
		{url: "https://localhost/hook", okIfPrivate: true, blockedError: true},
		{url: "https://api.localhost./hook", okIfPrivate: true, blockedError: true},
		{url: "https://user:pw@example.com/hook"},
		{url: "https://example.com/hook#frag"},
		{url: "ftp://example.com/hook"},
		{url: "/relative"},
		{url: "https://"},
		{url: "mailto:a@example.com"},
	} {
		err := Policy{}.CheckURL(c.url)
		if c.ok {
			assert.NoError(t, err, c.url)
		} else {
			assert.Error(t, err, c.url)
		}
		assert.Equal(t, c.blockedError, errors.Is(err, ErrBlockedDestination), c.url)
		err = Policy{AllowPrivate: true}.CheckURL(c.url)
		if c.okIfPrivate {
			assert.NoError(t, err, "allowing private: "+c.url)
		} else {
			assert.Error(t, err, "allowing private: "+c.url)
		}
	}
}

// A name that resolves to a blocked address passes registration (names are not resolved then)
// but is refused when the connection is made: the dialer checks the address it dials, so DNS
// rebinding between a check and the use gains nothing.
func TestClientRefusesAPrivateAddressAtDialTime(t *testing.T) {
	t.Parallel()
	hit := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit <- struct{}{} }))
	t.Cleanup(srv.Close)
	// localhost's name check is at registration; here the dial of 127.0.0.1 itself is refused.
	_, err := Policy{}.Client(2 * time.Second).Get(srv.URL)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrBlockedDestination)
	assert.Equal(t, "destination address not allowed", describe(context.Background(), err))
	assert.Empty(t, hit)

	resp, err := Policy{AllowPrivate: true}.Client(2 * time.Second).Get(srv.URL)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Len(t, hit, 1)
}

func TestClientFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	resp, err := Policy{AllowPrivate: true}.Client(2 * time.Second).Get(srv.URL + "/moved")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusFound, resp.StatusCode)
}

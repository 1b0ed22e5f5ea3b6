package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrBlockedDestination is returned when a webhook URL names, or resolves to, an address that is
// not public. Its text names no address, so a tenant cannot map internal hosts with it.
var ErrBlockedDestination = errors.New("destination address not allowed")

// blocked are the ranges no webhook may reach unless private targets are allowed: loopback
// (the Lambda Runtime API), RFC 1918 and unique-local (AWS IMDS fd00:ec2::254), link-local
// (IMDS 169.254.169.254, ECS 169.254.170.2), CGNAT, "this network" and unspecified, multicast and
// broadcast, reserved, benchmarking and documentation ranges, and the NAT64, 6to4 and Teredo
// prefixes that embed an IPv4 address. netip's IsGlobalUnicast && !IsPrivate lets several of
// these through.
var blocked = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
		"::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/32",
		"2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "ff00::/8",
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// PublicAddr reports whether a webhook may be sent to addr: a unicast address outside every
// blocked range (an IPv4-mapped IPv6 address is judged as its IPv4 address).
func PublicAddr(addr netip.Addr) bool {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.Zone() != "" {
		return false
	}
	for _, p := range blocked {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// Policy is what destinations the sender accepts. The zero value is production's: https only,
// public addresses only.
type Policy struct {
	// AllowPrivate (WEBHOOK_ALLOW_PRIVATE, default false) lets webhooks reach any address,
	// private and loopback included, and over plain http: for local runs and tests, never in
	// production.
	AllowPrivate bool
}

// CheckURL validates an endpoint URL at registration: absolute https (http only when private
// targets are allowed), a host, no user info and no fragment, and, when the host is an IP
// literal, a public one. A host name is checked again, resolved, at every connection.
func (p Policy) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return errors.New("url must be an absolute https URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.AllowPrivate:
	default:
		return errors.New("url must use https")
	}
	if u.User != nil {
		return errors.New("url must not contain user info")
	}
	if u.Fragment != "" {
		return errors.New("url must not contain a fragment")
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("url must name a host")
	}
	if p.AllowPrivate {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !PublicAddr(a) {
			return ErrBlockedDestination
		}
		return nil
	}
	if h := strings.ToLower(strings.TrimSuffix(host, ".")); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return ErrBlockedDestination
	}
	return nil
}

// control is the dialer's check of the address actually dialled, after DNS resolution, so a name
// that resolves (or re-resolves, DNS rebinding) to a blocked address is refused.
func (p Policy) control(_, address string, _ syscall.RawConn) error {
	if p.AllowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !PublicAddr(ap.Addr()) {
		return ErrBlockedDestination
	}
	return nil
}

// Client returns the HTTP client deliveries use: the dial-time address check, no proxy (the
// check would only see the proxy's address), no redirects (a 3xx is a failed attempt), and
// timeout bounding the whole attempt (default domain.DefaultWebhookTimeout, 10s).
func (p Policy) Client(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: min(timeout, 5*time.Second), Control: p.control}
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           d.DialContext,
			TLSHandshakeTimeout:   min(timeout, 5*time.Second),
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       30 * time.Second,
		},
	}
}

// describe turns a delivery error into the text recorded for the tenant: the kind of failure,
// never the address or port involved.
func describe(ctx context.Context, err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, ErrBlockedDestination):
		return ErrBlockedDestination.Error()
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "timeout"
	case ctx.Err() != nil:
		return "interrupted"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "dns lookup failed"
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return fmt.Sprintf("connection failed (%s)", opErr.Op)
	}
	if strings.Contains(err.Error(), "tls") || strings.Contains(err.Error(), "x509") {
		return "tls handshake failed"
	}
	return "request failed"
}

package upstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Header names this package sets itself.
const (
	HeaderRequestID = "X-Fusillade-Request-Id"
	HeaderCustomID  = "X-Fusillade-Custom-Id"
	// HeaderAPIKey carries the key to upstreams of Anthropic's Messages API, instead of
	// Authorization: Bearer; HeaderAnthropicVersion is the API version they require.
	HeaderAPIKey           = "X-Api-Key"
	HeaderAnthropicVersion = "Anthropic-Version"
)

// MessagesPath is Anthropic's Messages API: calls to it authenticate with x-api-key and carry
// anthropic-version (DefaultAnthropicVersion unless Call.Headers names one).
const MessagesPath = "/v1/messages"

// DefaultAnthropicVersion is the anthropic-version sent to a Messages API upstream when the call
// names none: the version every Messages API upstream accepts.
const DefaultAnthropicVersion = "2023-06-01"

// protectedHeaders cannot be set through Call.Headers: they are either
// controlled here (content negotiation, credentials, our ids) or hop-by-hop
// headers whose misuse could smuggle or break requests.
var protectedHeaders = map[string]bool{
	"Accept":              true,
	"Authorization":       true,
	HeaderAPIKey:          true, // a credential, like Authorization
	"Connection":          true,
	"Content-Length":      true,
	"Content-Type":        true,
	"Host":                true,
	"Keep-Alive":          true,
	"Proxy-Authorization": true,
	"Proxy-Connection":    true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
	"User-Agent":          true,
	HeaderRequestID:       true,
	HeaderCustomID:        true,
}

// HeaderSafe reports whether s can be sent as a header value verbatim:
// printable ASCII only (0x20-0x7E), so no CR, LF, other control bytes or
// non-ASCII. The empty string is safe (though callers skip empty values).
func HeaderSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validPath enforces the shape of an endpoint path. Paths are meant to be
// fixed allow-listed strings; the checks make sure that, even if a
// user-influenced value slipped through, it cannot change the host, add a
// query, escape the base path prefix or smuggle encoded characters.
func validPath(p string) error {
	switch {
	case p == "" || p[0] != '/':
		return errors.New("path must start with /")
	case strings.Contains(p, ".."):
		return errors.New("path must not contain a '..' segment")
	case strings.ContainsAny(p, "?#%"):
		return errors.New("path must not contain ?, # or %")
	case strings.Contains(p, "//"):
		return errors.New("path must not contain //")
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("/-._~:@+=,;", c) >= 0:
		default:
			return errors.New("path contains a character outside [A-Za-z0-9/-._~:@+=,;]")
		}
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." {
			return errors.New("path must not contain . segments")
		}
	}
	return nil
}

// buildURL joins a validated base URL and path.
func buildURL(base, path string) (string, error) {
	if err := validPath(path); err != nil {
		return "", err
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", errors.New("base URL does not parse")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("base URL scheme must be http or https")
	case u.Opaque != "" || u.Hostname() == "":
		return "", errors.New("base URL must have a host")
	case u.User != nil:
		// Credentials belong in APIKey, where they are never logged.
		return "", errors.New("base URL must not contain user info")
	case u.RawQuery != "" || u.ForceQuery || strings.Contains(base, "?"):
		return "", errors.New("base URL must not contain a query")
	case u.Fragment != "" || strings.Contains(base, "#"):
		return "", errors.New("base URL must not contain a fragment")
	}
	return u.JoinPath(path).String(), nil
}

// setHeaders writes the outbound headers. Unsafe optional values are
// dropped rather than failing the call: they are metadata, and dropping is
// better than letting them inject extra header lines.
func (c *Client) setHeaders(h http.Header, call Call, stream bool) {
	for name, value := range call.Headers {
		if !validHeaderName(name) || value == "" || !HeaderSafe(value) {
			continue
		}
		if protectedHeaders[http.CanonicalHeaderKey(name)] {
			continue
		}
		h.Set(name, value)
	}
	h.Set("Content-Type", "application/json")
	if stream {
		h.Set("Accept", "text/event-stream")
	} else {
		h.Set("Accept", "application/json")
	}
	h.Set("User-Agent", c.userAgent)
	switch {
	case call.Path == MessagesPath:
		if call.APIKey != "" {
			h.Set(HeaderAPIKey, call.APIKey)
		}
		if h.Get(HeaderAnthropicVersion) == "" {
			h.Set(HeaderAnthropicVersion, DefaultAnthropicVersion)
		}
	case call.APIKey != "":
		h.Set("Authorization", "Bearer "+call.APIKey)
	}
	if call.RequestID != "" && HeaderSafe(call.RequestID) {
		h.Set(HeaderRequestID, call.RequestID)
	}
	if call.CustomID != "" && HeaderSafe(call.CustomID) {
		h.Set(HeaderCustomID, call.CustomID)
	}
}

// injectStreamOptions turns a request body into its streamed form:
// "stream":true and "stream_options":{"include_usage":true}, keeping every
// other field (and any other stream_options entries) as they were. Key order
// is not preserved; JSON objects are unordered.
func injectStreamOptions(body []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, errors.New("request body must be a JSON object to be streamed")
	}
	m["stream"] = json.RawMessage("true")
	opts := map[string]json.RawMessage{}
	if raw, ok := m["stream_options"]; ok {
		// A non-object stream_options (null, a string, ...) is replaced.
		var existing map[string]json.RawMessage
		if json.Unmarshal(raw, &existing) == nil && existing != nil {
			opts = existing
		}
	}
	opts["include_usage"] = json.RawMessage("true")
	encodedOpts, err := marshalNoEscape(opts)
	if err != nil {
		return nil, errors.New("cannot encode stream_options")
	}
	m["stream_options"] = encodedOpts
	out, err := marshalNoEscape(m)
	if err != nil {
		return nil, errors.New("cannot encode streamed request body")
	}
	return out, nil
}

// marshalNoEscape encodes v without HTML-escaping <, > and &, so user text
// passes through byte-for-byte where possible.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func itoa(i int) string     { return strconv.Itoa(i) }
func itoa64(i int64) string { return strconv.FormatInt(i, 10) }

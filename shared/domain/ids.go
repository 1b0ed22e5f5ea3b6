package domain

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// Object id prefixes follow OpenAI's so that client tooling that sniffs ids keeps working.
const (
	FilePrefix    = "file-"
	BatchPrefix   = "batch_"
	RequestPrefix = "batch_req_"
	TenantPrefix  = "tenant_"
	KeyPrefix     = "fsk_"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomBase62 returns n characters from a CSPRNG. The tiny modulo bias of 256 % 62 is
// irrelevant for identifiers; API keys use 32 characters (~190 bits) so it does not matter there
// either.
func randomBase62(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	for i := range b {
		b[i] = base62[int(b[i])%len(base62)]
	}
	return string(b)
}

// NewFileID returns "file-" plus 24 base62 characters.
func NewFileID() string { return FilePrefix + randomBase62(24) }

// NewBatchID returns "batch_" plus 32 hex characters.
func NewBatchID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return BatchPrefix + hex.EncodeToString(b)
}

// NewTenantID returns "tenant_" plus 16 base62 characters.
func NewTenantID() string { return TenantPrefix + randomBase62(16) }

// NewAPIKey returns a fresh API key ("fsk_" plus 40 base62 characters). Only its SHA-256 hash is
// ever stored.
func NewAPIKey() string { return KeyPrefix + randomBase62(40) }

// OutputLineID is the id of a request as it appears in output and error lines: "batch_req_" plus
// the request's uuid without dashes.
func OutputLineID(requestID string) string {
	return RequestPrefix + strings.ReplaceAll(requestID, "-", "")
}

// ParseRequestID accepts a request id as output lines show it ("batch_req_" plus 32 hex
// characters) or as a plain uuid, and returns the uuid form.
func ParseRequestID(s string) (string, bool) {
	h := strings.ReplaceAll(strings.TrimPrefix(s, RequestPrefix), "-", "")
	if len(h) != 32 {
		return "", false
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", false
	}
	h = strings.ToLower(h)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], true
}

package domain

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Object id prefixes follow OpenAI's so that client tooling that sniffs ids keeps working.
const (
	FilePrefix    = "file-"
	BatchPrefix   = "batch_"
	RequestPrefix = "batch_req_"
	TenantPrefix  = "tenant_"
	KeyPrefix     = "fsk_"
	// UploadPrefix names an Uploads API upload; it shares the random part of the file it builds.
	UploadPrefix = "upload_"
)

// Lengths of the random part of each id, after its prefix.
const (
	fileIDLen   = 24 // base62
	batchIDLen  = 32 // lower-case hex
	tenantIDLen = 16 // base62
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
func NewFileID() string { return FilePrefix + randomBase62(fileIDLen) }

// NewBatchID returns "batch_" plus 32 hex characters.
func NewBatchID() string {
	b := make([]byte, batchIDLen/2)
	_, _ = rand.Read(b)
	return BatchPrefix + hex.EncodeToString(b)
}

// NewTenantID returns "tenant_" plus 16 base62 characters.
func NewTenantID() string { return TenantPrefix + randomBase62(tenantIDLen) }

// The Is*ID functions report whether s has the shape of an id of that kind, as the New*ID
// functions make them. Anything else cannot name an object, so it is rejected as malformed
// before it reaches the store.

// IsFileID reports whether s looks like a file id.
func IsFileID(s string) bool { return hasShape(s, FilePrefix, fileIDLen, base62) }

// IsBatchID reports whether s looks like a batch id.
func IsBatchID(s string) bool { return hasShape(s, BatchPrefix, batchIDLen, "0123456789abcdef") }

// IsTenantID reports whether s looks like a tenant id.
func IsTenantID(s string) bool { return hasShape(s, TenantPrefix, tenantIDLen, base62) }

// IsUploadID reports whether s looks like an upload id ("upload_" plus a file id's random part).
func IsUploadID(s string) bool { return hasShape(s, UploadPrefix, fileIDLen, base62) }

// IsKeyID reports whether s is the id of an API key: a positive decimal integer (a bigserial).
func IsKeyID(s string) bool {
	n, err := strconv.ParseInt(s, 10, 64)
	return err == nil && n > 0 && strconv.FormatInt(n, 10) == s
}

// MaxModelNameLen bounds a model name (the models table's key).
const MaxModelNameLen = 256

// IsModelName reports whether s can name a model: 1 to MaxModelNameLen characters from the set
// model names use in practice ("gpt-4o-mini", "meta-llama/Llama-3.1-8B", "llama3:8b").
func IsModelName(s string) bool {
	if s == "" || len(s) > MaxModelNameLen {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:/@+-", c) >= 0) {
			return false
		}
	}
	return true
}

func hasShape(s, prefix string, n int, alphabet string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || len(rest) != n {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if strings.IndexByte(alphabet, rest[i]) < 0 {
			return false
		}
	}
	return true
}

// ValidText reports whether s can be stored as text: valid UTF-8 without NUL characters, which
// PostgreSQL's text and jsonb types cannot hold.
func ValidText(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// NotText is the error for a parameter that is not ValidText.
func NotText(param string) *Error {
	return &Error{Code: EInvalid, Param: param,
		Message: fmt.Sprintf("Invalid '%s': expected UTF-8 text without NUL characters.", param)}
}

// MaxTimestamp is the latest instant a client-supplied time may name: 9999-12-31T23:59:59Z, the
// last second of a four-digit year, well inside PostgreSQL's timestamptz (which ends in the year
// 294276) and Go's time formatting.
var MaxTimestamp = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

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

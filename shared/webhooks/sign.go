// Package webhooks signs and sends batch webhooks under the Standard Webhooks scheme
// (webhook-id, webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256>), refusing every
// destination that is not a public address (SSRF), with retries on a fixed back-off schedule.
package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SecretPrefix starts every signing secret; the rest is standard base64 (with padding) of the
// key. Every Standard Webhooks library, and openai-node, decodes a whsec_ secret the same way.
const SecretPrefix = "whsec_"

// secretBytes is the key length of a new secret: 32 random bytes, 44 base64 characters (the
// scheme asks for 24 to 64).
const secretBytes = 32

// NewSecret returns a fresh signing secret, whsec_ + base64 of 32 random bytes.
func NewSecret() string {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// SecretHint is the part of a secret shown after creation: the prefix and four characters.
func SecretHint(secret string) string {
	if len(secret) < len(SecretPrefix)+4 {
		return ""
	}
	return secret[:len(SecretPrefix)+4] + "…"
}

// Sign returns the webhook-signature value for one attempt: "v1," + base64(HMAC-SHA256(key,
// id + "." + timestamp + "." + body)), where key is the secret's decoded bytes and timestamp the
// Unix seconds sent in webhook-timestamp (plain digits).
func Sign(secret, msgID string, timestamp int64, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	if len(key) == 0 {
		return "", errors.New("webhook secret is empty")
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msgID + "." + strconv.FormatInt(timestamp, 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// Verify checks a webhook-signature header (space-separated entries, any v1 entry may match) as
// a receiver does, in constant time. Receivers also reject timestamps more than 5 minutes away
// from their clock; that check is theirs.
func Verify(secret, msgID string, timestamp int64, body []byte, header string) bool {
	want, err := Sign(secret, msgID, timestamp, body)
	if err != nil {
		return false
	}
	for _, sig := range strings.Fields(header) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

package webhooks

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Standard Webhooks libraries' published test vector (secret, msg id, timestamp, payload and
// the signature every library computes for them).
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignMatchesTheStandardWebhooksTestVector(t *testing.T) {
	t.Parallel()
	sig, err := Sign(vectorSecret, vectorID, vectorTimestamp, []byte(vectorPayload))
	require.NoError(t, err)
	assert.Equal(t, vectorSignature, sig)
	assert.True(t, Verify(vectorSecret, vectorID, vectorTimestamp, []byte(vectorPayload), "v1,bm90IGl0 "+vectorSignature))
	assert.False(t, Verify(vectorSecret, vectorID, vectorTimestamp+1, []byte(vectorPayload), vectorSignature), "another timestamp")
	assert.False(t, Verify(vectorSecret, vectorID, vectorTimestamp, []byte(`{"test":2432232314}`), vectorSignature), "a re-serialised body")
}

func TestSignRefusesABadSecret(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"whsec_", "whsec_not base64!"} {
		_, err := Sign(s, "evt_1", 1, nil)
		assert.Error(t, err, s)
	}
}

func TestNewSecretIsWhsecAndThirtyTwoBytes(t *testing.T) {
	t.Parallel()
	s := NewSecret()
	require.True(t, strings.HasPrefix(s, SecretPrefix))
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
	require.NoError(t, err)
	assert.Len(t, key, 32)
	assert.NotEqual(t, s, NewSecret())
	assert.Equal(t, s[:10]+"…", SecretHint(s))
}

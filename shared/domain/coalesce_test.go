package domain_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/fusillade/fusillade/shared/domain"
)

func TestBodyKey(t *testing.T) {
	t.Parallel()
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.5}`)
	same := []byte("{ \"temperature\": 0.5,\n \"messages\": [ {\"content\":\"hi\", \"role\":\"user\"} ], \"model\": \"m\" }")
	key := domain.BodyKey("t1", "m", "/v1/chat/completions", "", body)
	assert.Len(t, key, 32)
	assert.Equal(t, key, domain.BodyKey("t1", "m", "/v1/chat/completions", "", same), "key order and whitespace do not matter")
	for name, other := range map[string][]byte{
		"another tenant":   domain.BodyKey("t2", "m", "/v1/chat/completions", "", body),
		"another model":    domain.BodyKey("t1", "m2", "/v1/chat/completions", "", body),
		"another endpoint": domain.BodyKey("t1", "m", "/v1/completions", "", body),
		"another body":     domain.BodyKey("t1", "m", "/v1/chat/completions", "", []byte(`{"model":"m","temperature":0.50}`)),
		"shifted parts":    domain.BodyKey("t1m", "", "/v1/chat/completions", "", body),
		"another variant":  domain.BodyKey("t1", "m", "/v1/chat/completions", "2023-06-01", body),
	} {
		assert.NotEqual(t, key, other, name)
	}
	assert.Equal(t, `{"a":"<&>","b":1.0}`, string(domain.CanonicalJSON([]byte(`{"b":1.0, "a":"<&>"}`))))
	assert.Equal(t, "not json", string(domain.CanonicalJSON([]byte("not json"))))
}

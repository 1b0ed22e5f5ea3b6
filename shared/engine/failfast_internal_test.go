package engine

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUpstreamMessageQuotesWhatTheUpstreamSaid(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", maxUpstreamMessage+10)
	for _, tc := range []struct{ name, body, want string }{
		{"openai", `{"error":{"message":"Unknown parameter: 'foo'.","type":"invalid_request_error"}}`, "Unknown parameter: 'foo'."},
		{"error string", `{"error":"bad key"}`, "bad key"},
		{"top-level message", `{"object":"error","message":"max_tokens too large","code":400}`, "max_tokens too large"},
		{"fastapi detail", `{"detail":"Not authenticated"}`, "Not authenticated"},
		{"plain text", "  Unauthorized\n", "Unauthorized"},
		{"json without a message", `{"error":{"code":"x"}}`, `{"error":{"code":"x"}}`},
		{"empty", "", "no message"},
		{"long", `{"error":{"message":"` + long + `"}}`, strings.Repeat("é", maxUpstreamMessage) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, upstreamMessage([]byte(tc.body)))
		})
	}
}

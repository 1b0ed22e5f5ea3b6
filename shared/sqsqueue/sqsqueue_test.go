package sqsqueue

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

func TestWorkMessagesCarryOnlyTheRequestAndAttempt(t *testing.T) {
	t.Parallel()
	body, err := json.Marshal(message{RequestID: "r-1", Attempt: 3})
	require.NoError(t, err)
	require.JSONEq(t, `{"r":"r-1","a":3}`, string(body))
	w, kick, err := ParseMessage(string(body))
	require.NoError(t, err)
	require.Empty(t, kick)
	require.Equal(t, domain.Work{RequestID: "r-1", Attempt: 3}, w)
}

func TestParseMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body string
		kick string
		ok   bool
	}{
		{`{"k":"mock-chat"}`, "mock-chat", true},
		{`{"r":"x","a":0}`, "", false}, // attempts start at 1: a zero is not a claim
		{`{"a":1}`, "", false},
		{`not json`, "", false},
		{`{}`, "", false},
	} {
		_, kick, err := ParseMessage(tc.body)
		require.Equal(t, tc.ok, err == nil, tc.body)
		require.Equal(t, tc.kick, kick, tc.body)
	}
}

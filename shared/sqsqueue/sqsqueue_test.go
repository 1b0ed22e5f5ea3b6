package sqsqueue

import (
	"context"
	"encoding/json"
	"testing"
	"time"

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
	require.Empty(t, kick.Model)
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
		require.Equal(t, tc.kick, kick.Model, tc.body)
	}
}

func TestADispatchCarriesTheExactTimeItIsDue(t *testing.T) {
	t.Parallel()
	due := time.Date(2026, 3, 1, 12, 0, 1, 234567891, time.UTC)
	body, err := json.Marshal(message{Dispatch: "m", Due: due.UnixNano()})
	require.NoError(t, err)
	_, kick, err := ParseMessage(string(body))
	require.NoError(t, err)
	require.Equal(t, "m", kick.Model)
	require.True(t, kick.Due.Equal(due), "nanosecond precision: a kick due a hair before not_before would claim nothing")

	_, kick, err = ParseMessage(`{"k":"m"}`)
	require.NoError(t, err)
	require.True(t, kick.Due.IsZero(), "a kick without a due time is due at once")
	kick.Wait(context.Background()) // returns at once

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	domain.Dispatch{Model: "m", Due: time.Now().Add(domain.MaxDispatchWait / 2)}.Wait(ctx) // the invocation ending cuts the wait short
}

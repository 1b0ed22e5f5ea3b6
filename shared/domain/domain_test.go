package domain_test

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

func TestBackoffGrowsByFactorAndIsCapped(t *testing.T) {
	t.Parallel()
	p := domain.RetryPolicy{MaxRetries: 10, Base: time.Second, Factor: 2, Max: 10 * time.Second}
	for _, tc := range []struct {
		retries    int
		retryAfter time.Duration
		want       time.Duration
	}{
		{0, 0, time.Second},
		{1, 0, 2 * time.Second},
		{2, 0, 4 * time.Second},
		{3, 0, 8 * time.Second},
		{4, 0, 10 * time.Second},
		{60, 0, 10 * time.Second},
		{0, 3 * time.Second, 3 * time.Second}, // Retry-After longer than the back-off wins
		{3, 3 * time.Second, 8 * time.Second}, // … but never shortens it
		{2000, 0, 10 * time.Second},           // no overflow
	} {
		require.Equal(t, tc.want, p.Backoff(tc.retries, tc.retryAfter, nil), "retries=%d retryAfter=%s", tc.retries, tc.retryAfter)
	}
}

func TestBackoffJitterStaysWithinItsBand(t *testing.T) {
	t.Parallel()
	p := domain.RetryPolicy{Base: time.Second, Factor: 2, Max: 10 * time.Second, Jitter: 0.2}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		d := p.Backoff(1, 0, rnd)
		require.GreaterOrEqual(t, d, 1600*time.Millisecond)
		require.LessOrEqual(t, d, 2400*time.Millisecond)
	}
}

func TestRetryStopsAtMaxRetriesAndBeforeTheDeadline(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := domain.RetryPolicy{MaxRetries: 3, Base: time.Second, Factor: 2, Max: time.Minute, StopBeforeDeadline: 10 * time.Second}
	for _, tc := range []struct {
		name     string
		retries  int
		deadline time.Time
		ok       bool
		at       time.Time
	}{
		{"first retry", 0, now.Add(time.Hour), true, now.Add(time.Second)},
		{"max_retries=3 allows the third retry", 2, now.Add(time.Hour), true, now.Add(4 * time.Second)},
		{"but not a fourth", 3, now.Add(time.Hour), false, time.Time{}},
		{"next attempt would land after deadline − margin", 0, now.Add(10 * time.Second), false, time.Time{}},
		{"just inside the margin", 0, now.Add(11*time.Second + time.Millisecond), true, now.Add(time.Second)},
		{"no deadline", 0, time.Time{}, true, now.Add(time.Second)},
	} {
		at, ok := p.Next(tc.retries, 0, now, tc.deadline, nil)
		require.Equal(t, tc.ok, ok, tc.name)
		require.Equal(t, tc.at, at, tc.name)
	}
}

func TestParseWindow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"24h", 24 * time.Hour, true},
		{"1h", time.Hour, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"90m", 90 * time.Minute, true},
		{"2s", 2 * time.Second, true},
		{"31d", 0, false},
		{"0h", 0, false},
		{"-1h", 0, false},
		{"tomorrow", 0, false},
		{"", 0, false},
	} {
		got, err := domain.ParseWindow(tc.in)
		require.Equal(t, tc.ok, err == nil, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
}

func TestResultLinesFollowOpenAIsShapes(t *testing.T) {
	t.Parallel()
	id := "0b9f3c2e-1111-4222-8333-944455556666"
	for _, tc := range []struct {
		name string
		row  domain.ResultRow
		want string
	}{
		{"success", domain.ResultRow{RequestID: id, CustomID: "a", State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{"x":1}`), UpstreamRequestID: "req_1"},
			`{"id":"batch_req_0b9f3c2e111142228333944455556666","custom_id":"a","response":{"status_code":200,"request_id":"req_1","body":{"x":1}},"error":null}`},
		{"upstream 4xx keeps the response", domain.ResultRow{RequestID: id, CustomID: "b", State: domain.StateFailed, StatusCode: 400, Body: []byte(`{"error":{"message":"bad"}}`)},
			`{"id":"batch_req_0b9f3c2e111142228333944455556666","custom_id":"b","response":{"status_code":400,"request_id":null,"body":{"error":{"message":"bad"}}},"error":null}`},
		{"non-JSON body becomes a string", domain.ResultRow{RequestID: id, CustomID: "c", State: domain.StateFailed, StatusCode: 502, Body: []byte("Bad Gateway")},
			`{"id":"batch_req_0b9f3c2e111142228333944455556666","custom_id":"c","response":{"status_code":502,"request_id":null,"body":"Bad Gateway"},"error":null}`},
		{"network failure", domain.ResultRow{RequestID: id, CustomID: "d", State: domain.StateFailed, ErrorCode: "network_error", ErrorMessage: "connection refused"},
			`{"id":"batch_req_0b9f3c2e111142228333944455556666","custom_id":"d","response":null,"error":{"code":"network_error","message":"connection refused"}}`},
		{"expired", domain.ResultRow{RequestID: id, CustomID: "e", State: domain.StateExpired},
			`{"id":"batch_req_0b9f3c2e111142228333944455556666","custom_id":"e","response":null,"error":{"code":"batch_expired","message":"This request could not be executed before the completion window expired."}}`},
		{"cancelled", domain.ResultRow{RequestID: id, CustomID: "f", State: domain.StateCanceled, ErrorCode: "batch_cancelled"},
			`{"id":"batch_req_0b9f3c2e111142228333944455556666","custom_id":"f","response":null,"error":{"code":"batch_cancelled","message":"This request was not executed because the batch was cancelled."}}`},
	} {
		line := domain.AppendResultLine(nil, tc.row)
		require.Equal(t, byte('\n'), line[len(line)-1], tc.name)
		require.True(t, json.Valid(line), tc.name)
		require.JSONEq(t, tc.want, string(line), tc.name)
	}
}

func TestRequestIDsRoundTripThroughOutputLineIDs(t *testing.T) {
	t.Parallel()
	id := "0b9f3c2e-1111-4222-8333-944455556666"
	got, ok := domain.ParseRequestID(domain.OutputLineID(id))
	require.True(t, ok)
	require.Equal(t, id, got)
	got, ok = domain.ParseRequestID(id)
	require.True(t, ok)
	require.Equal(t, id, got)
	for _, bad := range []string{"", "batch_req_", "batch_req_zz9f3c2e111142228333944455556666", "batch_req_0b9f"} {
		_, ok := domain.ParseRequestID(bad)
		require.False(t, ok, bad)
	}
}

func TestIDsHaveTheirDeclaredShape(t *testing.T) {
	t.Parallel()
	for range 100 {
		require.True(t, domain.IsFileID(domain.NewFileID()))
		require.True(t, domain.IsBatchID(domain.NewBatchID()))
		require.True(t, domain.IsTenantID(domain.NewTenantID()))
	}
	for _, s := range []string{"", "file-", "file-nope", "file-AAAAAAAAAAAAAAAAAAAAAAA\x00", "batch_AAAAAAAAAAAAAAAAAAAAAAAA", "FILE-AAAAAAAAAAAAAAAAAAAAAAAA"} {
		require.False(t, domain.IsFileID(s), "%q", s)
	}
	require.False(t, domain.IsBatchID("batch_0000000000000000000000000000000A"), "lower-case hex only")
	require.True(t, domain.IsUploadID("upload_AAAAAAAAAAAAAAAAAAAAAAAA"))
	for s, ok := range map[string]bool{"1": true, "42": true, "0": false, "-1": false, "01": false, "1x": false, "99999999999999999999": false} {
		require.Equal(t, ok, domain.IsKeyID(s), "%q", s)
	}
	for s, ok := range map[string]bool{"gpt-4o-mini": true, "meta-llama/Llama-3.1-8B": true, "llama3:8b": true, "": false,
		"a b": false, "' OR 1=1": false, "m\x00": false, string(make([]byte, 257)): false} {
		require.Equal(t, ok, domain.IsModelName(s), "%q", s)
	}
	require.True(t, domain.ValidText("héllo"))
	require.False(t, domain.ValidText("a\x00b"))
	require.False(t, domain.ValidText("\xff"))
}

package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/upstream"
)

// The upstream (or a proxy before it) keys billing and analytics on these headers, as fusillade's
// test_reqwest_client_sets_batch_metadata_headers pins them: the names and the timestamp's exact
// text are a contract, not a detail.
func TestTheUpstreamReceivesTheBatchHeadersWithFusilladesNamesAndTimestampFormat(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{MetadataHeaders: []string{"request_source", "absent_key"}})
	ctx := context.Background()
	id := b.batch(t, b.tenant, "m", 1, 24*time.Hour)
	// A created_at with microseconds, stored with another offset: the header is UTC and keeps
	// all six digits.
	_, err := b.store.Pool().Exec(ctx, `UPDATE batches SET created_at = '2026-03-01 13:04:05.000123+01',
		metadata = '{"request_source":"api"}' WHERE id = $1`, id)
	require.NoError(t, err)
	var requestID string
	require.NoError(t, b.store.Pool().QueryRow(ctx, `SELECT id::text FROM requests WHERE batch_id = $1`, id).Scan(&requestID))
	_, err = b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	b.drain(t)

	reqs := b.mock.Requests()
	require.Len(t, reqs, 1)
	h := reqs[0].Header
	for name, want := range map[string]string{
		"x-fusillade-batch-id":                id,
		"x-fusillade-batch-endpoint":          "/v1/chat/completions",
		"x-fusillade-batch-created-at":        "2026-03-01T12:04:05.000123Z",
		"x-fusillade-batch-completion-window": "24h",
		"x-fusillade-batch-request-source":    "api",
		"X-Fusillade-Request-Id":              requestID,
		"X-Fusillade-Custom-Id":               "c1",
	} {
		assert.Equal(t, want, h.Get(name), name)
	}
	_, sent := h["X-Fusillade-Batch-Absent-Key"]
	assert.False(t, sent, "a configured key the batch's metadata lacks sends no header")
}

// A message batch's requests go to the upstream with the anthropic-version the batch was created
// with (kept in its metadata); without one, the upstream client's default.
func TestMessageBatchRequestsCarryTheirAnthropicVersion(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	for _, meta := range []string{`{"anthropic_version":"2026-10-21"}`, `{}`} {
		id := b.batch(t, b.tenant, "m", 1, 24*time.Hour)
		_, err := b.store.Pool().Exec(ctx, `UPDATE batches SET endpoint = '/v1/messages', api = 'anthropic', metadata = $2 WHERE id = $1`, id, meta)
		require.NoError(t, err)
		_, err = b.store.Pool().Exec(ctx, `UPDATE requests SET path = '/v1/messages' WHERE batch_id = $1`, id)
		require.NoError(t, err)
	}
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	b.drain(t)

	var versions []string
	for _, r := range b.mock.Requests() {
		require.Equal(t, "/v1/messages", r.Path)
		versions = append(versions, r.Header.Get("Anthropic-Version"))
	}
	assert.ElementsMatch(t, []string{"2026-10-21", upstream.DefaultAnthropicVersion}, versions)
}

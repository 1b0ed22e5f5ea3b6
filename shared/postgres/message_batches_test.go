package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// messageBatch adds a validating batch created through Anthropic's API.
func (f *fixture) messageBatch(t *testing.T) string {
	t.Helper()
	id := domain.NewBatchID()
	require.NoError(t, f.store.InsertBatch(context.Background(), domain.Batch{ID: id, TenantID: f.tenant, InputFileID: f.fileOf(t, f.batch(t, 1, "m")),
		Endpoint: domain.MessagesEndpoint, CompletionWindow: "24h", CreatedAt: f.now, ExpiresAt: f.now.Add(24 * time.Hour),
		OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID(), API: domain.APIAnthropic}))
	return id
}

// Each API lists only the batches created through it, and a batch remembers its API; before
// pages back towards newer batches, newest first, saying whether more newer ones exist.
func TestListBatchesKeepsToOneAPIAndPagesBothWays(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	var msgs []string
	for range 4 {
		f.now = f.now.Add(time.Second)
		msgs = append(msgs, f.messageBatch(t))
	}
	// msgs[i] was created after the OpenAI batch made for its input file, and before the next.
	openAI := f.listed(t, domain.BatchListParams{})
	require.Len(t, openAI, 4)
	require.NotContains(t, openAI, msgs[0])
	require.Equal(t, []string{msgs[3], msgs[2], msgs[1], msgs[0]}, f.listed(t, domain.BatchListParams{API: domain.APIAnthropic}))
	b, err := f.store.GetBatch(ctx, f.tenant, msgs[0])
	require.NoError(t, err)
	require.Equal(t, domain.APIAnthropic, b.API)
	b, err = f.store.GetBatch(ctx, f.tenant, openAI[0])
	require.NoError(t, err)
	require.Equal(t, domain.APIOpenAI, b.API)

	page := func(p domain.BatchListParams) ([]string, bool) {
		p.API = domain.APIAnthropic
		bs, more, err := f.store.ListBatches(ctx, f.tenant, p)
		require.NoError(t, err)
		ids := []string{}
		for _, b := range bs {
			ids = append(ids, b.ID)
		}
		return ids, more
	}
	got, more := page(domain.BatchListParams{Limit: 2, After: msgs[3]})
	require.Equal(t, []string{msgs[2], msgs[1]}, got)
	require.True(t, more)
	got, more = page(domain.BatchListParams{Limit: 2, Before: msgs[0]})
	require.Equal(t, []string{msgs[2], msgs[1]}, got, "the two right before msgs[0], newest first")
	require.True(t, more, "msgs[3] is newer still")
	got, more = page(domain.BatchListParams{Limit: 2, Before: msgs[2]})
	require.Equal(t, []string{msgs[3]}, got)
	require.False(t, more)
	f.now = f.now.Add(time.Second)
	newest := f.batch(t, 1, "m")
	got, _ = page(domain.BatchListParams{Limit: 2, Before: newest})
	require.Empty(t, got, "nothing of Anthropic's is newer than the newest batch")

	otherTenant, err := f.store.CreateTenant(ctx, "other", false, f.now)
	require.NoError(t, err)
	_, _, err = f.store.ListBatches(ctx, otherTenant.ID, domain.BatchListParams{Limit: 2, Before: msgs[0], API: domain.APIAnthropic})
	require.Equal(t, domain.EInvalid, domain.ErrorCode(err), "another tenant's cursor")
}

// BatchRequestStates counts each batch's requests by state, and only the tenant's.
func TestBatchRequestStatesCountsByState(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	running, cancelled := f.batch(t, 3, "m"), f.batch(t, 2, "m")
	_, err := f.store.CancelBatch(ctx, f.tenant, cancelled, f.now)
	require.NoError(t, err)
	got, err := f.store.BatchRequestStates(ctx, f.tenant, []string{running, cancelled, domain.NewBatchID()})
	require.NoError(t, err)
	require.Equal(t, map[string]map[domain.RequestState]int{
		running:   {domain.StatePending: 3},
		cancelled: {domain.StateCanceled: 2},
	}, got)
	other, err := f.store.CreateTenant(ctx, "other", false, f.now)
	require.NoError(t, err)
	got, err = f.store.BatchRequestStates(ctx, other.ID, []string{running})
	require.NoError(t, err)
	require.Empty(t, got)
}

package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// ids lists a page's batch ids.
func (f *fixture) listed(t *testing.T, p domain.BatchListParams) []string {
	t.Helper()
	p.Limit = 100
	page, _, err := f.store.ListBatches(context.Background(), f.tenant, p)
	require.NoError(t, err)
	ids := []string{}
	for _, b := range page {
		ids = append(ids, b.ID)
	}
	return ids
}

// failedBatch adds a batch of fileID that failed validation.
func (f *fixture) failedBatch(t *testing.T, fileID string) string {
	t.Helper()
	ctx := context.Background()
	id := domain.NewBatchID()
	require.NoError(t, f.store.InsertBatch(ctx, domain.Batch{ID: id, TenantID: f.tenant, InputFileID: fileID,
		Endpoint: "/v1/chat/completions", CompletionWindow: "24h", CreatedAt: f.now, ExpiresAt: f.now.Add(time.Hour),
		OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID()}))
	require.NoError(t, f.store.FailBatch(ctx, id, f.now, []domain.BatchError{{Code: "invalid_json_line", Message: "bad"}}))
	return id
}

// fileOf is the input file of a batch.
func (f *fixture) fileOf(t *testing.T, batchID string) string {
	t.Helper()
	var fileID string
	require.NoError(t, f.store.Pool().QueryRow(context.Background(), `SELECT input_file_id FROM batches WHERE id = $1`, batchID).Scan(&fileID))
	return fileID
}

// A file's batches are listed with input_file_id (newest first, in every status), and status
// keeps the batches that failed validation apart from the rest; the two filters combine.
func TestListBatchesFiltersByInputFileAndByFailedStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	first := f.batch(t, 1, "m")
	fileID := f.fileOf(t, first)
	f.now = f.now.Add(time.Second)
	second := f.failedBatch(t, fileID) // a second batch of the same file
	f.now = f.now.Add(time.Second)
	other := f.batch(t, 1, "m") // another file's
	f.now = f.now.Add(time.Second)
	otherFailed := f.failedBatch(t, f.fileOf(t, other))

	require.Equal(t, []string{second, first}, f.listed(t, domain.BatchListParams{InputFileID: fileID}))
	require.Equal(t, []string{otherFailed, second}, f.listed(t, domain.BatchListParams{Statuses: []string{"failed"}}))
	require.Equal(t, []string{second}, f.listed(t, domain.BatchListParams{InputFileID: fileID, Statuses: []string{"failed"}}))
	require.Equal(t, []string{otherFailed, other, second, first}, f.listed(t, domain.BatchListParams{}))
	require.Empty(t, f.listed(t, domain.BatchListParams{InputFileID: domain.NewFileID()}), "an unknown file has no batches")

	otherTenant, err := f.store.CreateTenant(ctx, "other", false, f.now)
	require.NoError(t, err)
	page, _, err := f.store.ListBatches(ctx, otherTenant.ID, domain.BatchListParams{Limit: 10, InputFileID: fileID})
	require.NoError(t, err)
	require.Empty(t, page, "another tenant's file lists nothing")
}

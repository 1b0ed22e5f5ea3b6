package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// key creates an API key of the fixture's tenant and returns its id.
func (f *fixture) key(t *testing.T, name string) int64 {
	t.Helper()
	k, _, err := f.store.CreateAPIKey(context.Background(), f.tenant, name, false, f.now)
	require.NoError(t, err)
	return k.ID
}

// batchBy records an input file and a batch created by key (0 = unknown) at f.now, then moves
// f.now on a second so that every batch has its own place in the lists. It returns the batch.
func (f *fixture) batchBy(t *testing.T, key int64) domain.Batch {
	t.Helper()
	ctx := context.Background()
	in := domain.File{ID: domain.NewFileID(), TenantID: f.tenant, Filename: "in.jsonl", Purpose: domain.PurposeBatch,
		Status: domain.FileProcessed, ObjectKey: "k", CreatedAt: f.now, CreatedByKey: key}
	require.NoError(t, f.store.InsertFile(ctx, in))
	b := domain.Batch{ID: domain.NewBatchID(), TenantID: f.tenant, InputFileID: in.ID, Endpoint: "/v1/chat/completions",
		CompletionWindow: "24h", CreatedAt: f.now, ExpiresAt: f.now.Add(24 * time.Hour),
		OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID(), CreatedByKey: key}
	require.NoError(t, f.store.InsertBatch(ctx, b))
	f.now = f.now.Add(time.Second)
	return b
}

func batchIDs(bs []domain.Batch) []string {
	ids := make([]string, len(bs))
	for i, b := range bs {
		ids[i] = b.ID
	}
	return ids
}

func fileIDs(fs []domain.File) []string {
	ids := make([]string, len(fs))
	for i, f := range fs {
		ids[i] = f.ID
	}
	return ids
}

func TestCreatingKeyIsRecordedOnFilesBatchesAndTheirResultFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	a := f.key(t, "a")
	b := f.batchBy(t, a)
	got, err := f.store.GetBatch(ctx, f.tenant, b.ID)
	require.NoError(t, err)
	require.Equal(t, a, got.CreatedByKey)
	for _, id := range []string{b.InputFileID, b.OutputFileID, b.ErrorFileID} {
		file, err := f.store.GetFile(ctx, f.tenant, id)
		require.NoError(t, err)
		require.Equal(t, a, file.CreatedByKey, "file %s", id)
	}
	anon := f.batchBy(t, 0)
	got, err = f.store.GetBatch(ctx, f.tenant, anon.ID)
	require.NoError(t, err)
	require.Zero(t, got.CreatedByKey, "no creator reads back as unknown")
	var stored *int64
	require.NoError(t, f.store.Pool().QueryRow(ctx, "SELECT created_by_key FROM batches WHERE id = $1", anon.ID).Scan(&stored))
	require.Nil(t, stored, "unknown is NULL")
}

func TestListsFilterByOneOrTwoCreatingKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	a, b := f.key(t, "a"), f.key(t, "b")
	a1, b1, a2, anon := f.batchBy(t, a), f.batchBy(t, b), f.batchBy(t, a), f.batchBy(t, 0)

	list := func(keys ...int64) []string {
		t.Helper()
		bs, more, err := f.store.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 20, CreatedByKeys: keys})
		require.NoError(t, err)
		require.False(t, more)
		return batchIDs(bs)
	}
	require.Equal(t, []string{a2.ID, a1.ID}, list(a))
	require.Equal(t, []string{a2.ID, b1.ID, a1.ID}, list(a, b))
	require.Equal(t, []string{anon.ID, a2.ID, b1.ID, a1.ID}, list(), "no filter lists every creator, unknown included")
	require.Empty(t, list(b+1000), "an unknown key id matches nothing")

	files := func(keys ...int64) []string {
		t.Helper()
		fs, _, err := f.store.ListFiles(ctx, f.tenant, domain.FileListParams{Limit: 20, CreatedByKeys: keys})
		require.NoError(t, err)
		return fileIDs(fs)
	}
	require.Equal(t, []string{a2.InputFileID, a1.InputFileID}, files(a))
	require.Equal(t, []string{a2.InputFileID, b1.InputFileID, a1.InputFileID}, files(a, b))
	require.Empty(t, files(b+1000))

	// The filter combines with the others: a's batches that are completed.
	_, err := f.store.Pool().Exec(ctx, "UPDATE batches SET status = 'completed', completed_at = now() WHERE id = $1", a1.ID)
	require.NoError(t, err)
	done, _, err := f.store.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 20, CreatedByKeys: []int64{a}, Statuses: []string{"completed"}})
	require.NoError(t, err)
	require.Equal(t, []string{a1.ID}, batchIDs(done))
}

func TestListFilteredByCreatingKeyPagesWithItsCursor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	a, b := f.key(t, "a"), f.key(t, "b")
	var want, wantFiles []string
	for range 5 {
		x := f.batchBy(t, a)
		want = append([]string{x.ID}, want...)
		wantFiles = append(wantFiles, x.InputFileID)
		f.batchBy(t, b)
	}
	var got []string
	after := ""
	for {
		page, more, err := f.store.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 2, After: after, CreatedByKeys: []int64{a}, ActiveFirst: true})
		require.NoError(t, err)
		got = append(got, batchIDs(page)...)
		if !more {
			break
		}
		after = page[len(page)-1].ID
	}
	require.Equal(t, want, got, "newest first, only a's, each once")

	got, after = nil, ""
	for {
		page, more, err := f.store.ListFiles(ctx, f.tenant, domain.FileListParams{Limit: 2, After: after, Asc: true, CreatedByKeys: []int64{a}})
		require.NoError(t, err)
		got = append(got, fileIDs(page)...)
		if !more {
			break
		}
		after = page[len(page)-1].ID
	}
	require.Equal(t, wantFiles, got, "oldest first, only a's, each once")
}

func TestARevokedKeysObjectsStayListed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	a := f.key(t, "a")
	x := f.batchBy(t, a)
	_, err := f.store.RevokeAPIKey(ctx, a, f.now)
	require.NoError(t, err)
	bs, _, err := f.store.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 20, CreatedByKeys: []int64{a}})
	require.NoError(t, err)
	require.Equal(t, []string{x.ID}, batchIDs(bs))
	require.Equal(t, a, bs[0].CreatedByKey)
	fs, _, err := f.store.ListFiles(ctx, f.tenant, domain.FileListParams{Limit: 20, CreatedByKeys: []int64{a}})
	require.NoError(t, err)
	require.Equal(t, []string{x.InputFileID}, fileIDs(fs))
}

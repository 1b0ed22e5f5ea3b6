package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/postgres"
)

func TestLikePatternEscapesWildcards(t *testing.T) {
	t.Parallel()
	require.Equal(t, "", postgres.LikePattern(""))
	require.Equal(t, `%50\%\_a\\b%`, postgres.LikePattern(`50%_a\b`))
}

func TestListBatchesPagesFiltersAndNeverCrossesTenants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	var ids []string
	for i := range 4 {
		ids = append(ids, f.batch(t, 2, "m"))
		f.now = f.now.Add(time.Second)
		_ = i
	}
	// The oldest batch finishes: with active_first it goes last.
	_, err := f.store.Pool().Exec(ctx, "UPDATE batches SET status = 'completed', completed_at = now() WHERE id = $1", ids[0])
	require.NoError(t, err)

	var got []string
	after := ""
	for {
		page, more, err := f.store.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 1, After: after, ActiveFirst: true})
		require.NoError(t, err)
		require.Len(t, page, 1)
		got = append(got, page[0].ID)
		if !more {
			break
		}
		after = page[0].ID
	}
	require.Equal(t, []string{ids[3], ids[2], ids[1], ids[0]}, got)
	require.Equal(t, 2, func() int {
		b, _, err := f.store.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 10})
		require.NoError(t, err)
		return b[0].Counts.Pending
	}(), "live counts")

	done, _, err := f.store.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 10, Statuses: []string{"completed"}})
	require.NoError(t, err)
	require.Len(t, done, 1)
	hit, _, err := f.store.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 10, Search: ids[2][6:20]})
	require.NoError(t, err)
	require.Len(t, hit, 1)

	otherTenant, err := f.store.CreateTenant(ctx, "other", false, f.now)
	require.NoError(t, err)
	other := otherTenant.ID
	_, _, err = f.store.ListBatches(ctx, other, domain.BatchListParams{Limit: 10, After: ids[1]})
	require.Equal(t, domain.EInvalid, domain.ErrorCode(err), "another tenant's cursor is rejected")
	none, more, err := f.store.ListBatches(ctx, other, domain.BatchListParams{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, none)
	require.False(t, more)
	_, _, err = f.store.ListFiles(ctx, other, domain.FileListParams{Limit: 10, After: "file-forged"})
	require.Equal(t, domain.EInvalid, domain.ErrorCode(err))
}

func TestBatchResultsFiltersByStateAndSearch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 10)
	id := f.batch(t, 5, "m")
	f.claim(t, "m", 2, 2)
	collect := func(q domain.ResultQuery) []string {
		var out []string
		require.NoError(t, f.store.BatchResults(ctx, f.tenant, id, q, func(r domain.BatchResult) error {
			out = append(out, fmt.Sprintf("%s:%s", r.CustomID, r.State))
			return nil
		}))
		return out
	}
	require.Equal(t, []string{"c1:claimed", "c2:claimed"}, collect(domain.ResultQuery{Limit: 10, States: []string{"claimed", "processing"}}))
	require.Equal(t, []string{"c4:pending"}, collect(domain.ResultQuery{Limit: 1, Offset: 1, States: []string{"pending"}}))
	require.Equal(t, []string{"c5:pending"}, collect(domain.ResultQuery{Limit: 10, Search: "C5"}))
	require.Empty(t, collect(domain.ResultQuery{Limit: 10, Search: "%"}))
	var none int
	require.NoError(t, f.store.BatchResults(ctx, "tenant_other", id, domain.ResultQuery{Limit: 10}, func(domain.BatchResult) error { none++; return nil }))
	require.Zero(t, none, "rows are tenant-scoped")
}

func TestIdempotencyKeyReserveAndRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	_, ok, err := f.store.ReserveIdempotencyKey(ctx, f.tenant, "r", "k", []byte{1}, "obj-1", f.now)
	require.NoError(t, err)
	require.True(t, ok)
	rec, ok, err := f.store.ReserveIdempotencyKey(ctx, f.tenant, "r", "k", []byte{2}, "obj-2", f.now)
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, "obj-1", rec.ObjectID)
	require.Equal(t, []byte{1}, rec.RequestHash)
	require.NoError(t, f.store.ReleaseIdempotencyKey(ctx, f.tenant, "r", "k", "obj-2"), "another object's release is a no-op")
	_, ok, _ = f.store.ReserveIdempotencyKey(ctx, f.tenant, "r", "k", []byte{2}, "obj-2", f.now)
	require.False(t, ok)
	require.NoError(t, f.store.ReleaseIdempotencyKey(ctx, f.tenant, "r", "k", "obj-1"))
	_, ok, _ = f.store.ReserveIdempotencyKey(ctx, f.tenant, "r", "k", []byte{2}, "obj-2", f.now)
	require.True(t, ok)
}

func TestFailedBatchReadsBackWithItsErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	fileID := domain.NewFileID()
	require.NoError(t, f.store.InsertFile(ctx, domain.File{ID: fileID, TenantID: f.tenant, Filename: "in.jsonl", Purpose: domain.PurposeBatch,
		Status: "processed", CreatedAt: f.now}))
	id := domain.NewBatchID()
	require.NoError(t, f.store.InsertBatch(ctx, domain.Batch{ID: id, TenantID: f.tenant, InputFileID: fileID, Endpoint: "/v1/chat/completions",
		CompletionWindow: "24h", CreatedAt: f.now, ExpiresAt: f.now.Add(time.Hour), OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID()}))
	line := 3
	require.NoError(t, f.store.FailBatch(ctx, id, f.now, []domain.BatchError{{Code: "invalid_json_line", Message: "line 3: bad", Line: &line}}))
	b, err := f.store.GetBatch(ctx, f.tenant, id)
	require.NoError(t, err)
	require.Equal(t, domain.BatchFailed, b.Status)
	require.Len(t, b.Errors, 1)
	require.Equal(t, 3, *b.Errors[0].Line)
}

func TestAPIKeysAreShownOnceAndRevokedAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	k, key, err := f.store.CreateAPIKey(ctx, f.tenant, "ci", false, f.now)
	require.NoError(t, err)
	require.Equal(t, key[:8], k.Prefix)
	p, err := f.store.Authenticate(ctx, key)
	require.NoError(t, err)
	require.Equal(t, f.tenant, p.TenantID)
	var stored []byte
	require.NoError(t, f.store.Pool().QueryRow(ctx, "SELECT key_hash FROM api_keys WHERE id = $1", k.ID).Scan(&stored))
	require.Len(t, stored, 32, "only the SHA-256 is stored")
	_, err = f.store.RevokeAPIKey(ctx, k.ID, f.now)
	require.NoError(t, err)
	_, err = f.store.Authenticate(ctx, key)
	require.Equal(t, domain.EUnauthorized, domain.ErrorCode(err))
	_, _, err = f.store.CreateAPIKey(ctx, "tenant_missing", "x", false, f.now)
	require.Equal(t, domain.ENotFound, domain.ErrorCode(err))
}

// A batch outlives its input file: once the file's expires_after passes and the purge drops it,
// the batch's input_file_id is NULL, and both the list and the single read still return the batch.
func TestListBatchesSurvivesAPurgedInputFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	fileID := domain.NewFileID()
	expires := f.now.Add(time.Hour)
	require.NoError(t, f.store.InsertFile(ctx, domain.File{ID: fileID, TenantID: f.tenant, Filename: "in.jsonl", Purpose: domain.PurposeBatch,
		Status: "processed", CreatedAt: f.now, ExpiresAt: &expires}))
	id := domain.NewBatchID()
	require.NoError(t, f.store.InsertBatch(ctx, domain.Batch{ID: id, TenantID: f.tenant, InputFileID: fileID, Endpoint: "/v1/chat/completions",
		CompletionWindow: "24h", CreatedAt: f.now, ExpiresAt: f.now.Add(24 * time.Hour), OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID()}))

	later := expires.Add(time.Minute)
	files, err := f.store.PurgeableFiles(ctx, 100, later, later)
	require.NoError(t, err)
	require.Len(t, files, 1)
	dropped, err := f.store.DropFiles(ctx, []string{files[0].ID}, later, later)
	require.NoError(t, err)
	require.Equal(t, 1, dropped, "the expired input file is purged")

	list, _, err := f.store.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 10})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, id, list[0].ID)
	require.Empty(t, list[0].InputFileID)
	one, err := f.store.GetBatch(ctx, f.tenant, id)
	require.NoError(t, err)
	require.Equal(t, list[0], one, "the list and the single read agree")
	hit, _, err := f.store.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 10, Search: "in.jsonl"})
	require.NoError(t, err)
	require.Empty(t, hit, "the purged file's name no longer matches")
}

// What PostgreSQL refuses as a value (a data exception, SQLSTATE class 22) is invalid input, not
// an internal error, whichever statement meets it: NUL or invalid UTF-8 in text (22021), a time
// out of range (22008), \u0000 in jsonb (22P05), inside a transaction too.
func TestDataExceptionsAreInvalidInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	_, err := f.store.GetBatch(ctx, f.tenant, "batch_\x00")
	require.Equal(t, domain.EInvalid, domain.ErrorCode(err), "%v", err)
	require.ErrorContains(t, err, "22021", "the PostgreSQL error stays in the chain for the logs")
	_, err = f.store.GetFile(ctx, f.tenant, "file-\xff")
	require.Equal(t, domain.EInvalid, domain.ErrorCode(err), "%v", err)
	far := time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)
	_, _, err = f.store.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 1, CreatedAfter: &far})
	require.Equal(t, domain.EInvalid, domain.ErrorCode(err), "%v", err)

	fileID := domain.NewFileID()
	require.NoError(t, f.store.InsertFile(ctx, domain.File{ID: fileID, TenantID: f.tenant, Filename: "in.jsonl", Purpose: domain.PurposeBatch,
		Status: "processed", CreatedAt: f.now}))
	err = f.store.InsertBatch(ctx, domain.Batch{ID: domain.NewBatchID(), TenantID: f.tenant, InputFileID: fileID, Endpoint: "/v1/chat/completions",
		CompletionWindow: "24h", Metadata: map[string]string{"k": "\x00"}, CreatedAt: f.now, ExpiresAt: f.now.Add(time.Hour),
		OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID()})
	require.Equal(t, domain.EInvalid, domain.ErrorCode(err), "%v", err)

	_, _, err = f.store.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 1})
	require.NoError(t, err, "later statements are unaffected")
}

// Escalating to a model that is not configured is the caller's mistake (400), not a 500.
func TestUpsertModelWithAnUnknownEscalationModelIsInvalid(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	err := f.store.UpsertModel(context.Background(), domain.Model{Name: "m", BaseURL: "http://127.0.0.1:1", ConcurrencyLimit: 1, EscalationModel: "nope"})
	require.Equal(t, domain.EInvalid, domain.ErrorCode(err), "%v", err)
	var de *domain.Error
	require.ErrorAs(t, err, &de)
	require.Equal(t, "escalation_model", de.Param)
	f.model(t, "n", 1)
	require.NoError(t, f.store.UpsertModel(context.Background(), domain.Model{Name: "m", BaseURL: "http://127.0.0.1:1", ConcurrencyLimit: 1, EscalationModel: "n"}))
}

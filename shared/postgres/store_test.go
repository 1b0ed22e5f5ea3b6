package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/pgtest"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// sliceSource feeds InsertRequests from memory.
type sliceSource struct {
	reqs []domain.NewRequest
	i    int
}

func (s *sliceSource) Next() (domain.NewRequest, error) {
	if s.i >= len(s.reqs) {
		return domain.NewRequest{}, io.EOF
	}
	s.i++
	return s.reqs[s.i-1], nil
}

// failingSource fails the test when read: a populate that must skip may not read the file.
type failingSource struct{ t *testing.T }

func (s failingSource) Next() (domain.NewRequest, error) {
	assert.Fail(s.t, "a second populate must not read the file")
	return domain.NewRequest{}, io.EOF
}

type fixture struct {
	store  *postgres.Store
	tenant string
	now    time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s := pgtest.Store(t)
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tenant, err := s.CreateTenant(ctx, "t", false, now)
	require.NoError(t, err)
	return &fixture{store: s, tenant: tenant.ID, now: now}
}

// batch creates a running batch of f.tenant, due in 24h, of n requests alternating over models.
func (f *fixture) batch(t *testing.T, n int, models ...string) string {
	t.Helper()
	return f.batchDue(t, f.tenant, 24*time.Hour, n, models...)
}

// batchDue creates a running batch of tenant due dueIn after f.now, of n requests alternating
// over models.
func (f *fixture) batchDue(t *testing.T, tenant string, dueIn time.Duration, n int, models ...string) string {
	t.Helper()
	reqs := make([]domain.NewRequest, n)
	for i := range reqs {
		m := models[i%len(models)]
		reqs[i] = domain.NewRequest{ID: uuid.NewString(), Line: i + 1, CustomID: fmt.Sprintf("c%d", i+1), Model: m,
			Path: "/v1/chat/completions", Body: []byte(fmt.Sprintf(`{"model":%q}`, m))}
	}
	return f.populatedBatch(t, tenant, dueIn, nil, reqs)
}

// populatedBatch creates a chat batch of tenant due dueIn after f.now, with its input file, set
// further by with (nil: nothing more), and populates it with reqs, which all go in.
func (f *fixture) populatedBatch(t *testing.T, tenant string, dueIn time.Duration, with func(*domain.Batch), reqs []domain.NewRequest) string {
	t.Helper()
	ctx := context.Background()
	fileID := domain.NewFileID()
	require.NoError(t, f.store.InsertFile(ctx, domain.File{ID: fileID, TenantID: tenant, Filename: "in.jsonl",
		Purpose: domain.PurposeBatch, Status: "processed", CreatedAt: f.now}))
	b := domain.Batch{ID: domain.NewBatchID(), TenantID: tenant, InputFileID: fileID,
		Endpoint: "/v1/chat/completions", CompletionWindow: "24h", CreatedAt: f.now, ExpiresAt: f.now.Add(dueIn),
		OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID()}
	if with != nil {
		with(&b)
	}
	require.NoError(t, f.store.InsertBatch(ctx, b))
	res, err := f.store.InsertRequests(ctx, b.ID, &sliceSource{reqs: reqs}, f.now)
	require.NoError(t, err)
	require.Equal(t, len(reqs), res.Inserted)
	return b.ID
}

func (f *fixture) model(t *testing.T, name string, limit int) {
	t.Helper()
	require.NoError(t, f.store.UpsertModel(context.Background(), domain.Model{Name: name, BaseURL: "http://127.0.0.1:1", ConcurrencyLimit: limit}))
}

// claim claims up to max requests of model at f.now (weight 0) and requires exactly want.
func (f *fixture) claim(t *testing.T, model string, max, want int) []domain.Claimed {
	t.Helper()
	c, err := f.store.ClaimForModel(context.Background(), model, max, 0, f.now)
	require.NoError(t, err)
	require.Len(t, c, want)
	return c
}

// claimConcurrently runs claimers claims of up to max requests of model at once and returns
// everything they claimed.
func (f *fixture) claimConcurrently(t *testing.T, claimers int, model string, max int) []domain.Claimed {
	t.Helper()
	var mu sync.Mutex
	var claimed []domain.Claimed
	var wg sync.WaitGroup
	for range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := f.store.ClaimForModel(context.Background(), model, max, 0, f.now)
			assert.NoError(t, err) // not the test's goroutine
			mu.Lock()
			claimed = append(claimed, c...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return claimed
}

func TestClaimNeverExceedsTheGlobalLimitUnderConcurrentClaimers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.model(t, "m", 7)
	f.batch(t, 200, "m")
	require.Len(t, f.claimConcurrently(t, 16, "m", 5), 7)
}

func TestPopulateIsIdempotent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.batch(t, 3, "m")
	res, err := f.store.InsertRequests(context.Background(), id, failingSource{t}, f.now)
	require.NoError(t, err)
	require.True(t, res.Skipped)
	b, err := f.store.GetBatch(context.Background(), f.tenant, id)
	require.NoError(t, err)
	require.Equal(t, 3, b.Counts.Total)
	require.Equal(t, domain.BatchInProgress, b.Status)
}

func TestBatchForPopulateReadsTheBatchWithoutStartingIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	fileID := domain.NewFileID()
	require.NoError(t, f.store.InsertFile(ctx, domain.File{ID: fileID, TenantID: f.tenant, Filename: "in.jsonl",
		Purpose: domain.PurposeBatch, Status: "processed", CreatedAt: f.now}))
	id := domain.NewBatchID()
	require.NoError(t, f.store.InsertBatch(ctx, domain.Batch{ID: id, TenantID: f.tenant, InputFileID: fileID,
		Endpoint: "/v1/embeddings", CompletionWindow: "24h", CreatedAt: f.now, ExpiresAt: f.now.Add(24 * time.Hour),
		OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID()}))
	tenant, endpoint, status, err := f.store.BatchForPopulate(ctx, id)
	require.NoError(t, err)
	require.Equal(t, []string{f.tenant, "/v1/embeddings", string(domain.BatchValidating)}, []string{tenant, endpoint, string(status)})
	started := f.batch(t, 1, "m")
	_, _, status, err = f.store.BatchForPopulate(ctx, started)
	require.NoError(t, err)
	require.Equal(t, domain.BatchInProgress, status)
	_, _, _, err = f.store.BatchForPopulate(ctx, domain.NewBatchID())
	require.Equal(t, domain.ENotFound, domain.ErrorCode(err))
}

func TestClaimStartFinishIsFencedByAttempt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 10)
	id := f.batch(t, 1, "m")
	w := f.claim(t, "m", 10, 1)[0].Work

	job, err := f.store.StartProcessing(ctx, w, "w1", f.now)
	require.NoError(t, err)
	require.Equal(t, id, job.BatchID)
	_, err = f.store.StartProcessing(ctx, w, "w2", f.now)
	require.ErrorIs(t, err, domain.ErrStateConflict, "a duplicate delivery must not start twice")

	// The worker stalls; rescue returns the row, a new claim bumps the attempt.
	resc, err := f.store.Rescue(ctx, f.now.Add(time.Hour), time.Minute, time.Minute, time.Hour)
	require.NoError(t, err)
	require.Len(t, resc, 1)
	c2, err := f.store.ClaimForModel(ctx, "m", 10, 0, f.now.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, c2, 1)
	require.Equal(t, w.Attempt+1, c2[0].Attempt)
	_, err = f.store.StartProcessing(ctx, c2[0].Work, "w2", f.now.Add(time.Hour))
	require.NoError(t, err)

	won, err := f.store.FinishMany(ctx, []domain.Outcome{{Work: c2[0].Work, State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{"ok":2}`)}}, f.now)
	require.NoError(t, err)
	require.Len(t, won, 1)
	// The zombie's late result is fenced out.
	won, err = f.store.FinishMany(ctx, []domain.Outcome{{Work: w, State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{"ok":1}`)}}, f.now)
	require.NoError(t, err)
	require.Empty(t, won)

	var rows []domain.ResultRow
	require.NoError(t, f.store.EachResult(ctx, id, true, func(r domain.ResultRow) error { rows = append(rows, r); return nil }))
	require.Len(t, rows, 1)
	require.JSONEq(t, `{"ok":2}`, string(rows[0].Body))

	_, ok, err := f.store.BeginFinalize(ctx, id, f.now)
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = f.store.BeginFinalize(ctx, id, f.now)
	require.NoError(t, err)
	require.False(t, ok, "only one finaliser is elected")
}

func TestEveryQueryParses(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	conn, err := s.Pool().Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	for name, sql := range postgres.Queries() {
		_, err := conn.Exec(ctx, "PREPARE q AS "+sql)
		require.NoError(t, err, "query %s", name)
		_, err = conn.Exec(ctx, "DEALLOCATE q")
		require.NoError(t, err)
	}
}

// Every "-- name:" of the .sql files is in Queries (and so prepared by TestEveryQueryParses), and
// nothing else is: the list in internal/pgq/all.go is kept by hand next to the generated code.
func TestEveryQueryIsListed(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("queries*.sql")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	header := regexp.MustCompile(`(?m)^-- name: (\w+) :\w+\s*$`)
	var want []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range header.FindAllStringSubmatch(string(b), -1) {
			want = append(want, m[1])
		}
	}
	var got []string
	for name, sql := range postgres.Queries() {
		got = append(got, name)
		require.True(t, strings.HasPrefix(sql, "-- name: "+name+" :"), "query %s maps to the SQL of another", name)
	}
	require.ElementsMatch(t, want, got)
}

// The claim ranks batches and then pulls from the winners, so it probes and locks only the rows
// it claims however many batches are running (fusillade's original shape locked up to the limit
// in every running batch before sorting, which is what made claims slow at millions of rows).
func TestClaimProbesOnlyTheWinningBatches(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 64)
	for range 30 {
		f.batch(t, 50, "m")
	}
	_, err := f.store.Pool().Exec(ctx, "ANALYZE")
	require.NoError(t, err)
	conn, err := f.store.Pool().Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	var plan []byte
	require.NoError(t, tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+postgres.Queries()["ClaimForModel"], "m", 64, f.now, 0.5, "worker-1").Scan(&plan))
	var doc []struct {
		Plan map[string]any `json:"Plan"`
	}
	require.NoError(t, json.Unmarshal(plan, &doc))
	var lockRows []map[string]any
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		if n["Node Type"] == "LockRows" {
			lockRows = append(lockRows, n)
		}
		if kids, ok := n["Plans"].([]any); ok {
			for _, k := range kids {
				walk(k.(map[string]any))
			}
		}
	}
	walk(doc[0].Plan)
	require.Len(t, lockRows, 1)
	loops := lockRows[0]["Actual Loops"].(float64)
	rows := lockRows[0]["Actual Rows"].(float64)
	require.LessOrEqual(t, loops, 2.0, "64 claims fit in the first two ranked batches of 50; none of the other 28 may be probed")
	require.InDelta(t, 64.0, loops*rows, 50, "about the claimed rows are locked, not 64 per batch")
}

func TestPendingCountsByModelAndWindowAreCumulative(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 1)
	f.batch(t, 3, "m")      // due in 24h
	f.batch(t, 2, "m", "n") // one request each of m and n
	_, err := f.store.Pool().Exec(ctx, `UPDATE batches SET expires_at = $1 WHERE total = 2`, f.now.Add(30*time.Minute))
	require.NoError(t, err)
	counts, err := f.store.PendingByModelAndWindow(ctx, []time.Duration{time.Hour, 48 * time.Hour}, domain.PendingFilter{}, f.now)
	require.NoError(t, err)
	require.Equal(t, domain.WindowCounts{
		"m": {3600: 1, 172800: 4},
		"n": {3600: 1, 172800: 1},
	}, counts)
}

func TestPurgeForgetsIdempotencyKeysAfterADay(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.store.Pool().Exec(ctx, `INSERT INTO idempotency_keys (tenant_id, key, route, request_hash, object_id, created_at)
		VALUES ($1, 'old', 'files', '\x00', 'file-a', $2), ($1, 'new', 'files', '\x00', 'file-b', $3)`,
		f.tenant, f.now.Add(-25*time.Hour), f.now.Add(-time.Hour))
	require.NoError(t, err)
	forgotten, err := f.store.PurgeIdempotencyKeys(ctx, 100, f.now.Add(-domain.IdempotencyKeyTTL))
	require.NoError(t, err)
	require.Equal(t, 1, forgotten)
	var left []string
	rows, err := f.store.Pool().Query(ctx, `SELECT key FROM idempotency_keys`)
	require.NoError(t, err)
	left, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"new"}, left)
}

// A deleted batch is never sealed, by the last worker or by the sweep: nothing reads its files
// again, and a concurrent purge may be dropping its requests, files and row (two sweeps racing
// on a deleted batch used to fail the seal with "no rows").
func TestADeletedBatchIsNeverSealed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 10)
	id := f.batch(t, 1, "m")
	c := f.claim(t, "m", 10, 1)
	_, err := f.store.StartProcessing(ctx, c[0].Work, "w1", f.now)
	require.NoError(t, err)
	require.NoError(t, f.store.DeleteBatch(ctx, f.tenant, id, f.now))
	won, err := f.store.FinishMany(ctx, []domain.Outcome{{Work: c[0].Work, State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{}`)}}, f.now)
	require.NoError(t, err)
	require.Len(t, won, 1)

	ids, err := f.store.BatchesToFinalize(ctx, f.now.Add(time.Hour))
	require.NoError(t, err)
	require.NotContains(t, ids, id)
	_, ok, err := f.store.BeginFinalize(ctx, id, f.now)
	require.NoError(t, err)
	require.False(t, ok, "the last worker of a deleted batch does not seal it")
}

package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// An extension moves a running batch's deadline later, never earlier, and the expiry sweep
// follows the new deadline; a batch past its deadline, another tenant's, or one the sweep took
// cannot be extended.
func TestExtendMovesARunningBatchsDeadlineOnlyLater(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 10)
	id := f.batch(t, 2, "m") // due f.now + 24h
	at48 := f.now.Add(48 * time.Hour)

	require.ErrorIs(t, f.store.ExtendBatch(ctx, f.tenant, id, "12h", f.now.Add(12*time.Hour), f.now), domain.ErrStateConflict, "shorter")
	require.ErrorIs(t, f.store.ExtendBatch(ctx, "other", id, "48h", at48, f.now), domain.ErrStateConflict, "another tenant's")
	require.NoError(t, f.store.ExtendBatch(ctx, f.tenant, id, "48h", at48, f.now))
	b, err := f.store.GetBatch(ctx, f.tenant, id)
	require.NoError(t, err)
	require.True(t, b.ExpiresAt.Equal(at48), "expires_at %s", b.ExpiresAt)
	require.Equal(t, "48h", b.CompletionWindow)

	due, err := f.store.ExpireDue(ctx, f.now.Add(25*time.Hour))
	require.NoError(t, err)
	require.Empty(t, due, "the old deadline passed, the new one did not")
	require.ErrorIs(t, f.store.ExtendBatch(ctx, f.tenant, id, "72h", f.now.Add(72*time.Hour), at48.Add(time.Second)), domain.ErrStateConflict,
		"past its deadline")
	due, err = f.store.ExpireDue(ctx, at48)
	require.NoError(t, err)
	require.Equal(t, []domain.Expired{{BatchID: id, Status: domain.BatchInProgress}}, due)
	require.ErrorIs(t, f.store.ExtendBatch(ctx, f.tenant, id, "72h", f.now.Add(72*time.Hour), f.now), domain.ErrStateConflict,
		"taken by the expiry sweep, even at a clock before the deadline")
}

// endedBatch makes a batch of 6 lines end as expired with line 1 and 3 completed, 2 failed, 4
// cancelled and 5–6 expired, and returns it.
func (f *fixture) endedBatch(t *testing.T) domain.Batch {
	t.Helper()
	ctx := context.Background()
	f.model(t, "m", 10)
	id := f.batch(t, 6, "m")
	w := f.running(t, "m", 3)
	f.finish(t, domain.Outcome{Work: w[0], State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{"ok":1}`)},
		domain.Outcome{Work: w[1], State: domain.StateFailed, StatusCode: 400, Body: []byte(`{}`), ErrorCode: "upstream_400"},
		domain.Outcome{Work: w[2], State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{"ok":3}`)})
	var line4 string
	require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT id FROM requests WHERE batch_id = $1 AND line = 4`, id).Scan(&line4))
	_, err := f.store.CancelRequests(ctx, f.tenant, id, []string{line4}, f.now)
	require.NoError(t, err)
	_, err = f.store.ExpireDue(ctx, f.now.Add(25*time.Hour))
	require.NoError(t, err)
	f.seal(t, id, 2, 4)
	b, err := f.store.GetBatch(ctx, f.tenant, id)
	require.NoError(t, err)
	require.Equal(t, domain.BatchExpired, b.Status)
	require.Equal(t, domain.Counts{Total: 6, Completed: 2, Failed: 4}, b.Counts, "nothing finished is lost at expiry")
	return b
}

func (f *fixture) rerunOf(src domain.Batch) domain.Batch {
	return domain.Batch{ID: domain.NewBatchID(), TenantID: f.tenant, InputFileID: src.InputFileID, Endpoint: src.Endpoint,
		CompletionWindow: "24h", Status: domain.BatchValidating, CreatedAt: f.now, ExpiresAt: f.now.Add(24 * time.Hour),
		OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID()}
}

type copiedLine struct {
	Line           int
	CustomID       string
	State          string
	Model, Path    string
	Body           string
	Attempt, Tries int
}

func (f *fixture) lines(t *testing.T, batchID string) []copiedLine {
	t.Helper()
	rows, err := f.store.Pool().Query(context.Background(), `SELECT line, custom_id, state, model, path, convert_from(body, 'UTF8'), attempt, retries
		FROM requests WHERE batch_id = $1 ORDER BY line`, batchID)
	require.NoError(t, err)
	defer rows.Close()
	var out []copiedLine
	for rows.Next() {
		var l copiedLine
		require.NoError(t, rows.Scan(&l.Line, &l.CustomID, &l.State, &l.Model, &l.Path, &l.Body, &l.Attempt, &l.Tries))
		out = append(out, l)
	}
	require.NoError(t, rows.Err())
	return out
}

// A rerun is a new running batch of exactly the lines that did not complete — failed, cancelled
// and expired — with their line numbers, custom_ids and bodies, fresh; the two batches name each
// other; a second rerun answers the first; and the source can no longer retry its failed lines,
// which belong to the rerun now.
func TestRerunCopiesExactlyTheLinesThatDidNotComplete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	src := f.endedBatch(t)

	rerun := f.rerunOf(src)
	res, err := f.store.RerunBatch(ctx, f.tenant, src.ID, rerun, f.now)
	require.NoError(t, err)
	require.Equal(t, domain.Rerun{BatchID: rerun.ID, Models: []string{"m"}}, res)

	body := func(string) string { return `{"model":"m"}` }
	want := []copiedLine{}
	for _, l := range []int{2, 4, 5, 6} {
		want = append(want, copiedLine{Line: l, CustomID: "c" + string(rune('0'+l)), State: "pending", Model: "m", Path: "/v1/chat/completions", Body: body("m")})
	}
	require.Equal(t, want, f.lines(t, rerun.ID))

	got, err := f.store.GetBatch(ctx, f.tenant, rerun.ID)
	require.NoError(t, err)
	require.Equal(t, domain.BatchInProgress, got.Status)
	require.Equal(t, src.ID, got.RerunOf)
	require.Equal(t, "m", got.Model)
	require.Equal(t, domain.Counts{Total: 4, Pending: 4}, got.Counts)
	source, err := f.store.GetBatch(ctx, f.tenant, src.ID)
	require.NoError(t, err)
	require.Equal(t, rerun.ID, source.RerunBatchID)
	require.Equal(t, src.Counts, source.Counts, "the source keeps its results")

	again, err := f.store.RerunBatch(ctx, f.tenant, src.ID, f.rerunOf(src), f.now)
	require.NoError(t, err)
	require.Equal(t, domain.Rerun{BatchID: rerun.ID, Existing: true}, again)
	var batches int
	require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT count(*) FROM batches WHERE tenant_id = $1`, f.tenant).Scan(&batches))
	require.Equal(t, 2, batches, "the repeated rerun created nothing")

	// The rerun claims its lines like any batch.
	for _, cl := range f.claim(t, "m", 10, 4) {
		var batchID string
		require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT batch_id FROM requests WHERE id = $1`, cl.RequestID).Scan(&batchID))
		require.Equal(t, rerun.ID, batchID)
	}
}

// Retrying the failed lines of a batch that was rerun is refused: they run in the rerun.
func TestARerunBatchCannotRetryItsFailedLinesAnyMore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 10)
	id := f.batch(t, 2, "m")
	w := f.running(t, "m", 2)
	f.finish(t, domain.Outcome{Work: w[0], State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{}`)},
		domain.Outcome{Work: w[1], State: domain.StateFailed, StatusCode: 400, Body: []byte(`{}`)})
	f.seal(t, id, 1, 1)
	src, err := f.store.GetBatch(ctx, f.tenant, id)
	require.NoError(t, err)
	require.Equal(t, domain.BatchCompleted, src.Status)
	res, err := f.store.RerunBatch(ctx, f.tenant, id, f.rerunOf(src), f.now)
	require.NoError(t, err)

	_, _, err = f.store.RetryFailed(ctx, f.tenant, id, nil, f.now)
	require.Equal(t, domain.EConflict, domain.ErrorCode(err))
	require.ErrorContains(t, err, res.BatchID)
	require.Equal(t, []copiedLine{{Line: 2, CustomID: "c2", State: "failed", Model: "m", Path: "/v1/chat/completions", Body: `{"model":"m"}`, Attempt: 1}},
		filterState(f.lines(t, id), "failed"), "the source's failed line stays failed")
}

func filterState(ls []copiedLine, state string) []copiedLine {
	var out []copiedLine
	for _, l := range ls {
		if l.State == state {
			out = append(out, l)
		}
	}
	return out
}

// What cannot be rerun creates nothing: a running batch, an ended one whose lines all completed,
// one whose input file (and the prompts with it) is gone, another tenant's.
func TestRerunRefusesWhatCannotBeRerunAndCreatesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 10)
	count := func() (n int) {
		require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT count(*) FROM batches WHERE rerun_of IS NOT NULL`).Scan(&n))
		return n
	}

	running, err := f.store.GetBatch(ctx, f.tenant, f.batch(t, 1, "m"))
	require.NoError(t, err)
	_, err = f.store.RerunBatch(ctx, f.tenant, running.ID, f.rerunOf(running), f.now)
	require.Equal(t, domain.EConflict, domain.ErrorCode(err), "running: %v", err)
	require.ErrorContains(t, err, "extend")

	w := f.running(t, "m", 1)
	f.finish(t, domain.Outcome{Work: w[0], State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{}`)})
	f.seal(t, running.ID, 1, 0)
	_, err = f.store.RerunBatch(ctx, f.tenant, running.ID, f.rerunOf(running), f.now)
	require.Equal(t, domain.EConflict, domain.ErrorCode(err), "all completed: %v", err)
	require.ErrorContains(t, err, "no failed, cancelled or expired lines")

	_, err = f.store.RerunBatch(ctx, "other-tenant", running.ID, f.rerunOf(running), f.now)
	require.Equal(t, domain.ENotFound, domain.ErrorCode(err), "another tenant's: %v", err)

	src := f.endedBatch(t)
	_, err = f.store.DeleteFile(ctx, f.tenant, src.InputFileID, f.now)
	require.NoError(t, err)
	_, err = f.store.RerunBatch(ctx, f.tenant, src.ID, f.rerunOf(src), f.now)
	require.Equal(t, domain.EConflict, domain.ErrorCode(err), "input file deleted: %v", err)
	require.ErrorContains(t, err, "input file")

	require.Zero(t, count())
	var orphans int
	require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT count(*) FROM files f WHERE f.batch_id IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = f.batch_id)`).Scan(&orphans))
	require.Zero(t, orphans, "no output or error file was left behind")
}

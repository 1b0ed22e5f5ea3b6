package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// Request coalescing (migration 0014): keyed lines are claimed one per key at a time, and a
// leader's upstream outcome ends the pending lines that share its key in the tenant's running
// batches, in the finishing transaction.

// coalescingBatch creates a running batch of tenant with coalescing on, one line per body (each
// body a JSON object for model "m"), due in 24h; it returns the batch id and the line ids.
func (f *fixture) coalescingBatch(t *testing.T, tenant string, bodies ...string) (string, []string) {
	t.Helper()
	return f.coalescingBatchWith(t, tenant, nil, bodies...)
}

// coalescingBatchWith is coalescingBatch with the batch's metadata.
func (f *fixture) coalescingBatchWith(t *testing.T, tenant string, meta map[string]string, bodies ...string) (string, []string) {
	t.Helper()
	reqs := make([]domain.NewRequest, len(bodies))
	ids := make([]string, len(bodies))
	for i, b := range bodies {
		ids[i] = uuid.NewString()
		reqs[i] = domain.NewRequest{ID: ids[i], Line: i + 1, CustomID: fmt.Sprintf("c%d", i+1), Model: "m",
			Path: "/v1/chat/completions", Body: []byte(b)}
	}
	on := true
	id := f.populatedBatch(t, tenant, 24*time.Hour, func(b *domain.Batch) { b.Coalesce, b.Metadata = &on, meta }, reqs)
	return id, ids
}

// first makes batch id the first the claim ranks among batches created alike (due earlier).
func (f *fixture) first(t *testing.T, id string) {
	t.Helper()
	_, err := f.store.Pool().Exec(context.Background(), `UPDATE batches SET expires_at = $2 WHERE id = $1`, id, f.now.Add(time.Hour))
	require.NoError(t, err)
}

// body is a chat body for model "m" asking q.
func body(q string) string {
	return fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":%q}]}`, q)
}

// take claims up to n requests of "m" into processing for worker w1, as a worker's refill does.
func (f *fixture) take(t *testing.T, n int) []domain.Job {
	t.Helper()
	_, jobs, err := f.store.FinishAndClaim(context.Background(), nil, domain.Refill{Model: "m", Owner: "w1", Max: n}, f.now)
	require.NoError(t, err)
	return jobs
}

// completed is the outcome of job answered 200 with answer, as the worker builds it.
func completed(j domain.Job, answer string) domain.Outcome {
	return domain.Outcome{Work: j.Work, Model: "m", State: domain.StateCompleted, StatusCode: 200,
		Body:              []byte(fmt.Sprintf(`{"answer":%q,"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`, answer)),
		UpstreamRequestID: "up-" + answer, Coalesce: j.Coalesce}
}

type reqRow struct {
	State, Body, CoalescedFrom string
	Cached                     bool
}

func (f *fixture) row(t *testing.T, id string) reqRow {
	t.Helper()
	var r reqRow
	require.NoError(t, f.store.Pool().QueryRow(context.Background(), `SELECT state, coalesce(convert_from(response_body, 'UTF8'), ''),
		coalesce(coalesced_from::text, ''), cached FROM requests WHERE id = $1`, id).Scan(&r.State, &r.Body, &r.CoalescedFrom, &r.Cached))
	return r
}

func TestCoalescingClaimHandsOutOneRequestPerKeyAtATime(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.model(t, "m", 100)
	lead, ids := f.coalescingBatch(t, f.tenant, body("a"), body("b"), body("a"), body("c"), body("b"), body("a"))
	other, _ := f.coalescingBatch(t, f.tenant, body("a"), body("d"))
	f.first(t, lead)
	jobs := f.take(t, 100)
	got := map[string]bool{}
	for _, j := range jobs {
		require.True(t, j.Coalesce, "a line of a coalescing batch is keyed")
		got[j.RequestID] = true
	}
	require.Len(t, jobs, 4, "one of each distinct body: a, b, c, d")
	require.True(t, got[ids[0]] && got[ids[1]] && got[ids[3]], "the first line of each key in the earliest batch")
	require.Empty(t, f.take(t, 100), "every other line waits for the line of its key in flight")
	require.Equal(t, map[string]int{"pending:": 1, "processing:": 1}, f.states(t, other))
}

// A message batch's requests go upstream with its anthropic-version, which can change the answer:
// the same body under two versions is two keys, under one version one.
func TestCoalescingKeysMessageBatchesByTheirAnthropicVersion(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.model(t, "m", 100)
	v1 := map[string]string{domain.AnthropicVersionKey: "2023-06-01"}
	f.coalescingBatchWith(t, f.tenant, v1, body("a"))
	f.coalescingBatchWith(t, f.tenant, v1, body("a"))
	f.coalescingBatchWith(t, f.tenant, map[string]string{domain.AnthropicVersionKey: "2023-01-01"}, body("a"))
	f.coalescingBatch(t, f.tenant, body("a"))
	require.Len(t, f.take(t, 100), 3, "one per version, and one without a version")
}

func TestCoalescingConcurrentClaimsNeverRunOneKeyTwice(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.model(t, "m", 100)
	bodies := make([]string, 40)
	for i := range bodies {
		bodies[i] = body(fmt.Sprint("q", i%4))
	}
	f.coalescingBatch(t, f.tenant, bodies...)
	f.coalescingBatch(t, f.tenant, bodies...)
	claimed := f.claimConcurrently(t, 16, "m", 3)
	require.Len(t, claimed, 4, "one claim per distinct body, however the claimers race")
	var dup int
	require.NoError(t, f.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM (SELECT body_key FROM requests
		WHERE state IN ('claimed', 'processing') GROUP BY body_key HAVING count(*) > 1) d`).Scan(&dup))
	require.Zero(t, dup)
}

func TestCoalescingIsOffByDefaultAndUnkeyedLinesAreClaimedFreely(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.model(t, "m", 100)
	id := f.batch(t, 5, "m") // five identical bodies, coalescing off (the tenant's default)
	b, err := f.store.GetBatch(context.Background(), f.tenant, id)
	require.NoError(t, err)
	require.False(t, *b.Coalesce)
	var keyed int
	require.NoError(t, f.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM requests WHERE batch_id = $1 AND body_key IS NOT NULL`,
		id).Scan(&keyed))
	require.Zero(t, keyed)
	for _, j := range f.take(t, 100) {
		require.False(t, j.Coalesce)
	}
	require.Equal(t, map[string]int{"processing:": 5}, f.states(t, id))
}

func TestCoalescingTakesTheTenantDefaultUnlessTheBatchSays(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	tn, err := f.store.SetTenantCoalesceDefault(ctx, f.tenant, true)
	require.NoError(t, err)
	require.True(t, tn.CoalesceDefault)
	mk := func(c *bool) bool {
		fileID := domain.NewFileID()
		require.NoError(t, f.store.InsertFile(ctx, domain.File{ID: fileID, TenantID: f.tenant, Filename: "in.jsonl",
			Purpose: domain.PurposeBatch, Status: "processed", CreatedAt: f.now}))
		id := domain.NewBatchID()
		require.NoError(t, f.store.InsertBatch(ctx, domain.Batch{ID: id, TenantID: f.tenant, InputFileID: fileID,
			Endpoint: "/v1/chat/completions", CompletionWindow: "24h", CreatedAt: f.now, ExpiresAt: f.now.Add(time.Hour),
			OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID(), Coalesce: c}))
		b, err := f.store.GetBatch(ctx, f.tenant, id)
		require.NoError(t, err)
		return *b.Coalesce
	}
	off := false
	require.True(t, mk(nil), "the tenant's default")
	require.False(t, mk(&off), "the batch's own choice wins")
	_, err = f.store.SetTenantCoalesceDefault(ctx, "tenant_0000000000000000", true)
	require.Equal(t, domain.ENotFound, domain.ErrorCode(err))
}

func TestCoalescedResultEndsTheTenantsPendingLinesAcrossBatchesButNoOtherTenants(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 100)
	b1, ids1 := f.coalescingBatch(t, f.tenant, body("a"), body("a"), body("b"))
	b2, ids2 := f.coalescingBatch(t, f.tenant, body("a"))
	stranger := f.newTenant(t, "stranger")
	b3, ids3 := f.coalescingBatch(t, stranger, body("a"))
	f.first(t, b1)
	// b1's lines a, a, b: its line 2 repeats line 1's key, so the claim of three runs two.
	jobs := f.take(t, 3)
	require.Len(t, jobs, 2)
	leader := jobs[0]
	require.Equal(t, ids1[0], leader.RequestID)

	won, err := f.store.FinishMany(ctx, []domain.Outcome{completed(leader, "A")}, f.now)
	require.NoError(t, err)
	followers := map[string]string{}
	for _, w := range won[1:] {
		followers[w.RequestID] = w.BatchID
		require.Equal(t, leader.RequestID, w.CoalescedFrom)
		require.Equal(t, domain.StateCompleted, w.State)
	}
	require.Equal(t, leader.RequestID, won[0].RequestID)
	require.Empty(t, won[0].CoalescedFrom)
	require.Equal(t, map[string]string{ids1[1]: b1, ids2[0]: b2}, followers, "the tenant's other lines with the key, in both batches")

	for _, id := range []string{ids1[1], ids2[0]} {
		r := f.row(t, id)
		require.Equal(t, "completed", r.State)
		require.Equal(t, leader.RequestID, r.CoalescedFrom)
		require.Contains(t, r.Body, `"answer":"A"`)
	}
	require.Equal(t, reqRow{State: "pending"}, f.row(t, ids3[0]), "another tenant's line with the same body is its own")
	require.Equal(t, "processing", f.row(t, ids1[2]).State, "another key is untouched")

	bt1, err := f.store.GetBatch(ctx, f.tenant, b1)
	require.NoError(t, err)
	require.Equal(t, 1, bt1.Coalesced)
	require.Equal(t, 2, bt1.Counts.Completed)
	bt2, err := f.store.GetBatch(ctx, f.tenant, b2)
	require.NoError(t, err)
	require.Equal(t, 1, bt2.Coalesced)
	require.Equal(t, 0, bt2.Counts.Pending, "nothing left to run in the second batch")
	bt3, err := f.store.GetBatch(ctx, stranger, b3)
	require.NoError(t, err)
	require.Zero(t, bt3.Coalesced)

	var shared []bool
	require.NoError(t, f.store.EachResult(ctx, b1, true, func(r domain.ResultRow) error {
		shared = append(shared, r.Shared)
		return nil
	}))
	require.Equal(t, []bool{false, true}, shared, "the follower's line is marked, so usage counts its tokens once")

	// The second batch's only line ended by the propagation: its finaliser election succeeds.
	_, ok, err := f.store.BeginFinalize(ctx, b2, f.now)
	require.NoError(t, err)
	require.True(t, ok)
}

func TestCoalescedResultSkipsBatchesThatStoppedRunning(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 100)
	lead, ids := f.coalescingBatch(t, f.tenant, body("a"))
	f.first(t, lead)
	cancelling, c := f.coalescingBatch(t, f.tenant, body("a"))
	overdue, o := f.coalescingBatch(t, f.tenant, body("a"))
	deleted, d := f.coalescingBatch(t, f.tenant, body("a"))
	running, r := f.coalescingBatch(t, f.tenant, body("a"))
	leader := f.take(t, 1)[0]
	require.Equal(t, ids[0], leader.RequestID)
	// The moments before their sweeps and cancels end the rows: still pending, batch stopped.
	_, err := f.store.Pool().Exec(ctx, `UPDATE batches SET status = 'cancelling', cancelling_at = $2 WHERE id = $1`, cancelling, f.now)
	require.NoError(t, err)
	_, err = f.store.Pool().Exec(ctx, `UPDATE batches SET expires_at = $2 WHERE id = $1`, overdue, f.now)
	require.NoError(t, err)
	_, err = f.store.Pool().Exec(ctx, `UPDATE batches SET deleted_at = $2 WHERE id = $1`, deleted, f.now)
	require.NoError(t, err)

	won, err := f.store.FinishMany(ctx, []domain.Outcome{completed(leader, "A")}, f.now)
	require.NoError(t, err)
	require.Len(t, won, 2, "the leader and the running batch's line")
	require.Equal(t, r[0], won[1].RequestID)
	require.Equal(t, running, won[1].BatchID)
	for _, id := range []string{c[0], o[0], d[0]} {
		require.Equal(t, reqRow{State: "pending"}, f.row(t, id))
	}

	// A cancelled batch's lines keep the state the cancel gave them.
	sb, stopped := f.coalescingBatch(t, f.tenant, body("b"))
	f.first(t, sb)
	cb, cancelled := f.coalescingBatch(t, f.tenant, body("b"))
	_, err = f.store.CancelBatch(ctx, f.tenant, cb, f.now)
	require.NoError(t, err)
	lb := f.take(t, 1)[0]
	require.Equal(t, stopped[0], lb.RequestID)
	won, err = f.store.FinishMany(ctx, []domain.Outcome{completed(lb, "B")}, f.now)
	require.NoError(t, err)
	require.Len(t, won, 1)
	require.Equal(t, "canceled", f.row(t, cancelled[0]).State)
}

func TestCoalescedResultOnlyFromAnUpstreamOutcome(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 100)
	_, ids := f.coalescingBatch(t, f.tenant, body("a"), body("a"))
	leader := f.take(t, 1)[0]

	// A retry goes back to pending: nothing propagates, and the next claim picks one line afresh.
	won, err := f.store.FinishMany(ctx, []domain.Outcome{{Work: leader.Work, Model: "m", State: domain.StatePending, StatusCode: 503,
		ErrorCode: "upstream_error", Coalesce: true}}, f.now)
	require.NoError(t, err)
	require.Len(t, won, 1)
	require.Equal(t, reqRow{State: "pending"}, f.row(t, ids[1]))
	again := f.take(t, 10)
	require.Len(t, again, 1, "one of the two lines, never both")

	// A failure without an upstream answer (a timeout) leads nothing either.
	won, err = f.store.FinishMany(ctx, []domain.Outcome{{Work: again[0].Work, Model: "m", State: domain.StateFailed,
		ErrorCode: "timeout", ErrorMessage: "no answer", Coalesce: true}}, f.now)
	require.NoError(t, err)
	require.Len(t, won, 1)
	last := f.take(t, 10)
	require.Len(t, last, 1)

	// A failure the upstream answered is the result of every line with the key.
	_, more := f.coalescingBatch(t, f.tenant, body("a"))
	won, err = f.store.FinishMany(ctx, []domain.Outcome{{Work: last[0].Work, Model: "m", State: domain.StateFailed, StatusCode: 400,
		Body: []byte(`{"error":{"message":"bad"}}`), Coalesce: true}}, f.now)
	require.NoError(t, err)
	require.Len(t, won, 2)
	require.Equal(t, more[0], won[1].RequestID)
	require.Equal(t, domain.StateFailed, won[1].State)
	require.Contains(t, f.row(t, more[0]).Body, "bad")
}

func TestResultCacheServesLinesAtPopulate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.store.WithCoalesceCacheTTL(time.Hour)
	ctx := context.Background()
	f.model(t, "m", 100)
	_, _ = f.coalescingBatch(t, f.tenant, body("a"))
	leader := f.take(t, 1)[0]
	_, err := f.store.FinishMany(ctx, []domain.Outcome{completed(leader, "A")}, f.now)
	require.NoError(t, err)

	// A later batch with the same body is served from the cache, with no claim; another body runs.
	id, ids := f.coalescingBatch(t, f.tenant, body("a"), body("z"))
	cached := f.row(t, ids[0])
	require.Equal(t, "completed", cached.State)
	require.True(t, cached.Cached)
	require.Contains(t, cached.Body, `"answer":"A"`)
	require.Equal(t, "pending", f.row(t, ids[1]).State)
	b, err := f.store.GetBatch(ctx, f.tenant, id)
	require.NoError(t, err)
	require.Equal(t, 1, b.Cached)
	jobs := f.take(t, 10)
	require.Len(t, jobs, 1)
	require.Equal(t, ids[1], jobs[0].RequestID)

	// Another tenant's identical body is not served from this tenant's answer.
	_, theirs := f.coalescingBatch(t, f.newTenant(t, "stranger"), body("a"))
	require.Equal(t, "pending", f.row(t, theirs[0]).State)

	// Past its lifetime an entry serves nothing and the purge drops it.
	later := f.now.Add(2 * time.Hour)
	f.now = later
	_, stale := f.coalescingBatch(t, f.tenant, body("a"))
	require.Equal(t, "pending", f.row(t, stale[0]).State)
	n, err := f.store.PurgeCoalesceCache(ctx, 100, later)
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func TestResultCacheIsOffWithoutALifetime(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 100)
	_, _ = f.coalescingBatch(t, f.tenant, body("a"))
	leader := f.take(t, 1)[0]
	_, err := f.store.FinishMany(ctx, []domain.Outcome{completed(leader, "A")}, f.now)
	require.NoError(t, err)
	_, ids := f.coalescingBatch(t, f.tenant, body("a"))
	require.Equal(t, reqRow{State: "pending"}, f.row(t, ids[0]))
	var entries int
	require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT count(*) FROM coalesce_cache`).Scan(&entries))
	require.Zero(t, entries)
}

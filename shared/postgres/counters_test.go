package postgres_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/pgtest"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/postgres"
)

// The batch counters (migration 0006) against the requests they count: every test drives the
// store through a real path and checks that GetBatch shows what counting the rows shows.

type shown struct{ completed, failed, pending int }

// requireCounts checks the counts GetBatch and ListBatches show for a running batch against
// want, and against the batch's request rows counted directly.
func (f *fixture) requireCounts(t *testing.T, batchID string, want shown, msg string) {
	t.Helper()
	ctx := context.Background()
	b, err := f.store.GetBatch(ctx, f.tenant, batchID)
	require.NoError(t, err)
	require.Equal(t, want, shown{b.Counts.Completed, b.Counts.Failed, b.Counts.Pending}, "GetBatch: %s", msg)
	var rows shown
	require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'completed'),
		count(*) FILTER (WHERE state IN ('failed', 'canceled', 'expired')),
		count(*) FILTER (WHERE state IN ('pending', 'claimed', 'processing'))
		FROM requests WHERE batch_id = $1`, batchID).Scan(&rows.completed, &rows.failed, &rows.pending))
	require.Equal(t, want, rows, "request rows: %s", msg)
	list, _, err := f.store.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 100})
	require.NoError(t, err)
	for _, l := range list {
		if l.ID == batchID {
			require.Equal(t, want, shown{l.Counts.Completed, l.Counts.Failed, l.Counts.Pending}, "ListBatches: %s", msg)
			return
		}
	}
	require.Fail(t, "batch not listed", batchID)
}

// running claims up to n requests of model and moves them to processing.
func (f *fixture) running(t *testing.T, model string, n int) []domain.Work {
	t.Helper()
	var out []domain.Work
	for _, c := range f.claim(t, model, n, n) {
		_, err := f.store.StartProcessing(context.Background(), c.Work, "w1", f.now)
		require.NoError(t, err)
		out = append(out, c.Work)
	}
	return out
}

func (f *fixture) finish(t *testing.T, outs ...domain.Outcome) {
	t.Helper()
	won, err := f.store.FinishMany(context.Background(), outs, f.now)
	require.NoError(t, err)
	require.Len(t, won, len(outs))
}

// counterXmins names the batch's counter rows and the transaction that last wrote each: it
// changes whenever a counter row of the batch is written or added.
func (f *fixture) counterXmins(t *testing.T, batchID string) string {
	t.Helper()
	var xmins string
	require.NoError(t, f.store.Pool().QueryRow(context.Background(),
		`SELECT string_agg(slot || ':' || xmin::text, ',' ORDER BY slot) FROM batch_counters WHERE batch_id = $1`, batchID).Scan(&xmins))
	return xmins
}

func TestBatchCountsFollowPopulateAndEveryKindOfFinish(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.model(t, "m", 100)
	id := f.batch(t, 7, "m")
	f.requireCounts(t, id, shown{0, 0, 7}, "after populate")

	w := f.running(t, "m", 5)
	f.requireCounts(t, id, shown{0, 0, 7}, "claimed and processing requests are pending")
	f.finish(t,
		domain.Outcome{Work: w[0], State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{}`)},
		domain.Outcome{Work: w[1], State: domain.StateFailed, StatusCode: 400, Body: []byte(`{}`)},
		domain.Outcome{Work: w[2], State: domain.StatePending, ErrorCode: "network_error", NotBefore: f.now},
		domain.Outcome{Work: w[3], State: domain.StateCanceled, ErrorCode: domain.CodeRequestCancelled},
		domain.Outcome{Work: w[4], State: domain.StateExpired, ErrorCode: domain.CodeBatchExpired})
	f.requireCounts(t, id, shown{1, 3, 3}, "a finish of each kind; the retry is pending again")
}

func TestBatchCountsFollowRescue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 100)
	id := f.batch(t, 4, "m")
	f.running(t, "m", 2)
	xmins := f.counterXmins(t, id)

	// Stuck processing requests of a running batch go back to pending: nothing to count.
	rescued, err := f.store.Rescue(ctx, f.now.Add(time.Hour), time.Minute, time.Minute, 24*time.Hour)
	require.NoError(t, err)
	require.Len(t, rescued, 2)
	f.requireCounts(t, id, shown{0, 0, 4}, "rescued to pending")
	require.Equal(t, xmins, f.counterXmins(t, id), "a rescue to pending does not write a counter row")

	// Stuck requests of a cancelled batch are ended by the rescue.
	f.running(t, "m", 3)
	_, err = f.store.CancelBatch(ctx, f.tenant, id, f.now)
	require.NoError(t, err)
	f.requireCounts(t, id, shown{0, 1, 3}, "the cancel ended the one pending request, the processing ones are marked")
	rescued, err = f.store.Rescue(ctx, f.now.Add(2*time.Hour), time.Minute, time.Minute, 24*time.Hour)
	require.NoError(t, err)
	require.Len(t, rescued, 3)
	f.requireCounts(t, id, shown{0, 4, 0}, "rescued as canceled")
}

func TestBatchCountsFollowCancellationOfTheBatchAndOfRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 100)
	id := f.batch(t, 6, "m")
	w := f.running(t, "m", 2)
	claimed := f.claim(t, "m", 1, 1)

	// Individual requests: the claimed one ends at once, a processing one is only marked.
	out, err := f.store.CancelRequests(ctx, f.tenant, id, []string{claimed[0].RequestID, w[0].RequestID}, f.now)
	require.NoError(t, err)
	require.Len(t, out, 2)
	f.requireCounts(t, id, shown{0, 1, 5}, "one request cancelled")

	// The batch: its three pending requests end, the two processing ones are marked and then end
	// when their workers record the abort.
	_, err = f.store.CancelBatch(ctx, f.tenant, id, f.now)
	require.NoError(t, err)
	f.requireCounts(t, id, shown{0, 4, 2}, "batch cancelled")
	f.finish(t,
		domain.Outcome{Work: w[0], State: domain.StateCanceled, ErrorCode: domain.CodeRequestCancelled},
		domain.Outcome{Work: w[1], State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{}`)})
	f.requireCounts(t, id, shown{1, 5, 0}, "running requests finished")
}

func TestBatchCountsFollowExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 100)
	ids := []string{f.batch(t, 3, "m"), f.batch(t, 2, "m")}
	f.running(t, "m", 1)
	expired, err := f.store.ExpireDue(ctx, f.now.Add(25*time.Hour))
	require.NoError(t, err)
	require.Len(t, expired, 2)
	// The claim took the first batch's first line; it keeps running and is ended by its worker.
	counts := map[string]shown{}
	for _, id := range ids {
		b, err := f.store.GetBatch(ctx, f.tenant, id)
		require.NoError(t, err)
		counts[id] = shown{b.Counts.Completed, b.Counts.Failed, b.Counts.Pending}
	}
	total := shown{}
	for _, id := range ids {
		c := counts[id]
		f.requireCounts(t, id, c, "after expiry")
		total = shown{total.completed + c.completed, total.failed + c.failed, total.pending + c.pending}
	}
	require.Equal(t, shown{0, 4, 1}, total, "every unstarted request expired, the running one did not")
}

// A sealed batch shows the counts frozen on its row; a retry of its failed requests reopens it
// and its counts are live again, from the same counter row.
func TestRetryingFailedRequestsReopensTheBatchWithExactCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 100)
	id := f.batch(t, 3, "m")
	w := f.running(t, "m", 3)
	f.finish(t,
		domain.Outcome{Work: w[0], State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{}`)},
		domain.Outcome{Work: w[1], State: domain.StateFailed, StatusCode: 500, Body: []byte(`{}`)},
		domain.Outcome{Work: w[2], State: domain.StateFailed, StatusCode: 500, Body: []byte(`{}`)})
	f.seal(t, id, 1, 2)
	b, err := f.store.GetBatch(ctx, f.tenant, id)
	require.NoError(t, err)
	require.Equal(t, domain.BatchCompleted, b.Status)
	require.Equal(t, shown{1, 2, 0}, shown{b.Counts.Completed, b.Counts.Failed, b.Counts.Pending})

	retried, _, err := f.store.RetryFailed(ctx, f.tenant, id, []string{w[1].RequestID}, f.now)
	require.NoError(t, err)
	require.Equal(t, 1, retried)
	f.requireCounts(t, id, shown{1, 1, 1}, "one failed request retried")
	retried, _, err = f.store.RetryFailed(ctx, f.tenant, id, nil, f.now)
	require.NoError(t, err)
	require.Equal(t, 1, retried)
	f.requireCounts(t, id, shown{1, 0, 2}, "every failed request retried")
}

// Deleting requests (the purge does, once their batch is deleted) leaves what a sealed batch
// shows alone: its frozen counts.
func TestASealedBatchShowsItsFrozenCountsWithoutItsRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 100)
	id := f.batch(t, 2, "m")
	w := f.running(t, "m", 2)
	f.finish(t,
		domain.Outcome{Work: w[0], State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{}`)},
		domain.Outcome{Work: w[1], State: domain.StateFailed, StatusCode: 500, Body: []byte(`{}`)})
	f.seal(t, id, 1, 1)
	_, err := f.store.Pool().Exec(ctx, `DELETE FROM requests WHERE batch_id = $1`, id)
	require.NoError(t, err)
	b, err := f.store.GetBatch(ctx, f.tenant, id)
	require.NoError(t, err)
	require.Equal(t, domain.Counts{Total: 2, Completed: 1, Failed: 1}, b.Counts)

	// Nor does the read of a sealed batch look at its counter rows.
	var plan []byte
	require.NoError(t, f.store.Pool().QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+postgres.Queries()["GetBatch"], id, f.tenant).Scan(&plan))
	require.Equal(t, []float64{0}, loopsOf(t, plan, "batch_counters"), "batch_counters is never scanned: %s", plan)
}

// Two transactions finishing requests of the same batch on different connections neither wait
// for each other (each writes its own connection's counter slot, so their commits can share a
// flush) nor lose a count; and many finishers at once, through the store, are all counted.
func TestConcurrentFinishesOfOneBatchAreAllCounted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 200)
	id := f.batch(t, 102, "m")
	w := f.running(t, "m", 102)

	// Two connections in different slots (the pool holds up to 20; pids are consecutive).
	pool := f.store.Pool()
	slotOf := func(c *pgxpool.Conn) int {
		var s int
		require.NoError(t, c.QueryRow(ctx, `SELECT batch_counter_slot()`).Scan(&s))
		return s
	}
	first, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer first.Release()
	var second *pgxpool.Conn
	var held []*pgxpool.Conn
	for range 10 {
		c, err := pool.Acquire(ctx)
		require.NoError(t, err)
		if slotOf(c) != slotOf(first) {
			second = c
			break
		}
		held = append(held, c)
	}
	for _, c := range held {
		c.Release()
	}
	require.NotNil(t, second, "ten more connections, all in the first one's counter slot")
	defer second.Release()

	finish := `UPDATE requests SET state = 'completed', finished_at = now() WHERE id = $1 AND state = 'processing'`
	tx1, err := first.Begin(ctx)
	require.NoError(t, err)
	defer tx1.Rollback(ctx) //nolint:errcheck
	_, err = tx1.Exec(ctx, finish, w[0].RequestID)
	require.NoError(t, err)
	// With tx1 open, a finish on the second connection commits without waiting for it (a lock
	// wait would hang here until the statement timeout).
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, pgx.BeginFunc(wctx, second, func(tx pgx.Tx) error {
		_, err := tx.Exec(wctx, finish, w[1].RequestID)
		return err
	}), "the second finish does not wait for the first transaction")
	require.NoError(t, tx1.Commit(ctx))
	f.requireCounts(t, id, shown{2, 0, 100}, "both finishes counted")

	// Many finishers at once, through the store.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 2 + g; i < len(w); i += 4 {
				state := domain.StateCompleted
				if i%3 == 0 {
					state = domain.StateFailed
				}
				won, err := f.store.FinishMany(ctx, []domain.Outcome{{Work: w[i], State: state, StatusCode: 200, Body: []byte(`{}`)}}, f.now)
				assert.NoError(t, err) // not the test's goroutine
				assert.Len(t, won, 1, "finish %d", i)
			}
		}()
	}
	wg.Wait()
	f.requireCounts(t, id, shown{2 + 67, 33, 0}, "every concurrent finish counted")
}

// A claim (pending → claimed → processing), a give-back (Unclaim) and a retry back to pending
// change no count, so they write no counter row: claims of a batch never queue behind its
// finishes.
func TestAClaimDoesNotWriteTheCounterRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 100)
	id := f.batch(t, 5, "m")
	xmins := f.counterXmins(t, id)
	w := f.running(t, "m", 3)
	c := f.claim(t, "m", 2, 2)
	require.NoError(t, f.store.Unclaim(ctx, []domain.Work{c[0].Work, c[1].Work}))
	f.finish(t, domain.Outcome{Work: w[0], State: domain.StatePending, ErrorCode: "network_error", NotBefore: f.now})
	require.Equal(t, xmins, f.counterXmins(t, id), "claim, start, unclaim and retry left the counter rows unwritten")
	f.requireCounts(t, id, shown{0, 0, 5}, "nothing finished")

	f.finish(t, domain.Outcome{Work: w[1], State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{}`)})
	require.NotEqual(t, xmins, f.counterXmins(t, id), "a finish writes one")
}

// GetBatch and ListBatches read a running batch's counts from its counter row: their plans touch
// no request row however many the batch has.
func TestGetBatchAndListBatchesReadNoRequestRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 100)
	id := f.batch(t, 500, "m")
	_, err := f.store.Pool().Exec(ctx, "ANALYZE")
	require.NoError(t, err)
	// ListBatches: active_first, tenant_id, api, statuses, pattern, created_by_keys, input_file_id,
	// created_after, created_before, cursor_at, cursor_rank, cursor_id, max (the order sqlc
	// numbers them).
	for name, args := range map[string][]any{
		"GetBatch":    {id, f.tenant},
		"ListBatches": {true, f.tenant, "openai", []string{}, "", []int64{}, "", nil, nil, nil, 0, "", 21},
	} {
		var plan []byte
		require.NoError(t, f.store.Pool().QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+postgres.Queries()[name], args...).Scan(&plan))
		require.NotContains(t, relations(t, plan), "requests", "%s plan: %s", name, plan)
	}
	b, err := f.store.GetBatch(ctx, f.tenant, id)
	require.NoError(t, err)
	require.Equal(t, 500, b.Counts.Pending)
}

// relations lists the tables an EXPLAIN (FORMAT JSON) plan reads.
func relations(t *testing.T, plan []byte) []string {
	t.Helper()
	var out []string
	eachScan(t, plan, func(rel string, _ map[string]any) { out = append(out, rel) })
	return out
}

// loopsOf lists the Actual Loops of each scan of rel in an EXPLAIN (ANALYZE, FORMAT JSON) plan.
func loopsOf(t *testing.T, plan []byte, rel string) []float64 {
	t.Helper()
	var out []float64
	eachScan(t, plan, func(r string, n map[string]any) {
		if r == rel {
			loops, _ := n["Actual Loops"].(float64)
			out = append(out, loops)
		}
	})
	return out
}

// eachScan calls fn for every node of a FORMAT JSON plan that reads a table.
func eachScan(t *testing.T, plan []byte, fn func(rel string, node map[string]any)) {
	t.Helper()
	var doc []struct {
		Plan map[string]any `json:"Plan"`
	}
	require.NoError(t, json.Unmarshal(plan, &doc))
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		if r, ok := n["Relation Name"].(string); ok {
			fn(r, n)
		}
		if kids, ok := n["Plans"].([]any); ok {
			for _, k := range kids {
				walk(k.(map[string]any))
			}
		}
	}
	walk(doc[0].Plan)
}

// Migrating a database with running batches fills their counters from their request rows.
func TestMigrationBackfillsTheCountersOfExistingBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.EmptyURL(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	_, err = postgres.MigrateTo(ctx, pool, 5)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `
		INSERT INTO tenants (id, name) VALUES ('t', 't');
		INSERT INTO files (id, tenant_id, filename, purpose) VALUES ('file-1', 't', 'in.jsonl', 'batch');
		INSERT INTO batches (id, tenant_id, input_file_id, endpoint, completion_window, status, total, expires_at)
		VALUES ('batch_a', 't', 'file-1', '/v1/chat/completions', '24h', 'in_progress', 10, now() + interval '1 day'),
		       ('batch_b', 't', 'file-1', '/v1/chat/completions', '24h', 'validating', 0, now() + interval '1 day');
		INSERT INTO requests (id, batch_id, tenant_id, line, custom_id, model, path, body, body_bytes, state)
		SELECT gen_random_uuid(), 'batch_a', 't', i, 'c' || i, 'm', '/v1/chat/completions', '', 0,
		       (ARRAY['pending', 'claimed', 'processing', 'completed', 'failed', 'canceled', 'expired'])[1 + i % 7]
		FROM generate_series(1, 10) i;`)
	require.NoError(t, err)
	_, err = postgres.Migrate(ctx, pool)
	require.NoError(t, err)

	s, err := postgres.Open(ctx, url, postgres.Options{})
	require.NoError(t, err)
	defer s.Close()
	a, err := s.GetBatch(ctx, "t", "batch_a")
	require.NoError(t, err)
	// Line i is in state 1 + i%7 of the array: pending 7; claimed 1, 8; processing 2, 9;
	// completed 3, 10; failed 4; canceled 5; expired 6.
	require.Equal(t, domain.Counts{Total: 10, Completed: 2, Failed: 3, Pending: 5}, a.Counts)
	b, err := s.GetBatch(ctx, "t", "batch_b")
	require.NoError(t, err)
	require.Equal(t, domain.Counts{}, b.Counts, "a batch without requests counts nothing")
}

// seal elects the finaliser of batch id and seals it with output and error files of the given
// line counts.
func (f *fixture) seal(t *testing.T, id string, outLines, errLines int) {
	t.Helper()
	ctx := context.Background()
	_, ok, err := f.store.BeginFinalize(ctx, id, f.now)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, f.store.SealBatch(ctx, id, domain.Sealed{Key: "o", Lines: outLines}, domain.Sealed{Key: "e", Lines: errLines}, nil, f.now))
}

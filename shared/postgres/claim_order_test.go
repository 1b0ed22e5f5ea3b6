package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// The order in which ClaimForModel (and FinishAndClaim, which sends the same statement) hands out
// the requests of model m across batches. The score of a batch is
//
//	(1 − w) · load(tenant) / max load + w · clamp((expires_at − now) / 24h, 0, 1)
//
// ascending, then earliest deadline, then batch id, where load is the number of m's slots the
// batch's tenant holds (the tenant is whom fusillade's per-user fairness is for: its created_by
// is the batch owner) and w the urgency weight.

// rankedBatch creates a batch of tenant for model m due dueIn after f.now with exactly one
// claimable request (line 1) and load more already running, so that its tenant holds load of m's
// slots.
func (f *fixture) rankedBatch(t *testing.T, tenant string, dueIn time.Duration, load int) string {
	t.Helper()
	id := f.batchDue(t, tenant, dueIn, 1+load, "m")
	_, err := f.store.Pool().Exec(context.Background(), `UPDATE requests
		SET state = 'processing', attempt = 1, claimed_at = $2, started_at = $2, owner = 'w-load'
		WHERE batch_id = $1 AND line > 1`, id, f.now)
	require.NoError(t, err)
	return id
}

// claimedBatches claims up to k requests of m at weight w, returns the batch of each (sorted by
// request, which says nothing of rank) and gives the claims back, so that the loads the next
// call sees are the same.
func (f *fixture) claimedBatches(t *testing.T, w float64, k int) map[string]bool {
	t.Helper()
	ctx := context.Background()
	c, err := f.store.ClaimForModel(ctx, "m", k, w, f.now)
	require.NoError(t, err)
	ids := make([]string, len(c))
	work := make([]domain.Work, len(c))
	for i, x := range c {
		ids[i], work[i] = x.RequestID, x.Work
	}
	rows, err := f.store.Pool().Query(ctx, `SELECT batch_id FROM requests WHERE id = ANY ($1::uuid[])`, ids)
	require.NoError(t, err)
	batches, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NoError(t, f.store.Unclaim(ctx, work))
	set := map[string]bool{}
	for _, b := range batches {
		set[b] = true
	}
	return set
}

// claimOrder is the rank of the n batches (one claimable request each) at weight w: a claim of k
// takes the k best-ranked, so each claim of one more adds the next batch. RETURNING order is not
// claim order, so the order is read from these growing sets, never from one claim's rows.
func (f *fixture) claimOrder(t *testing.T, w float64, n int) []string {
	t.Helper()
	var order []string
	prev := map[string]bool{}
	for k := 1; k <= n; k++ {
		set := f.claimedBatches(t, w, k)
		require.Len(t, set, k, "a claim of %d at weight %v takes %d batches' one request each", k, w, k)
		for b := range prev {
			require.True(t, set[b], "a claim of %d at weight %v keeps the %d best-ranked", k, w, k-1)
		}
		for b := range set {
			if !prev[b] {
				order = append(order, b)
			}
		}
		prev = set
	}
	return order
}

func (f *fixture) newTenant(t *testing.T, name string) string {
	t.Helper()
	tn, err := f.store.CreateTenant(context.Background(), name, false, f.now)
	require.NoError(t, err)
	return tn.ID
}

// At the default weight of 0.5 the order is neither the fairness order (weight 0) nor the
// deadline order (weight 1). Loads 0, 2 and 4 of a maximum of 4 give fairness terms 0, 0.5 and 1;
// deadlines 36h (clamped to 24h), 9h36m and 2h24m give urgency terms 1, 0.4 and 0.1:
//
//	weight 0:   idle 0     half 0.5   busy 1     → idle, half, busy
//	weight 0.5: half 0.45  idle 0.5   busy 0.55  → half, idle, busy
//	weight 1:   busy 0.1   half 0.4   idle 1     → busy, half, idle
func TestClaimOrderBlendsTenantFairnessAndDeadlineByTheUrgencyWeight(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.model(t, "m", 100)
	// Created in none of the orders below; batch ids are random, so they break no tie either.
	half := f.rankedBatch(t, f.newTenant(t, "half"), 9*time.Hour+36*time.Minute, 2)
	busy := f.rankedBatch(t, f.newTenant(t, "busy"), 2*time.Hour+24*time.Minute, 4)
	idle := f.rankedBatch(t, f.newTenant(t, "idle"), 36*time.Hour, 0)

	require.Equal(t, []string{idle, half, busy}, f.claimOrder(t, 0, 3), "weight 0: fewest slots in use first")
	require.Equal(t, []string{half, idle, busy}, f.claimOrder(t, 0.5, 3), "weight 0.5, the default: the blend")
	require.Equal(t, []string{busy, half, idle}, f.claimOrder(t, 1, 3), "weight 1: earliest deadline first")

	// A worker's refill (FinishAndClaim with an owner) ranks by the weight it is given as well.
	_, jobs, err := f.store.FinishAndClaim(context.Background(), nil, domain.Refill{Model: "m", Owner: "w1", Max: 1, UrgencyWeight: 0.5}, f.now)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	require.Equal(t, half, jobs[0].BatchID)
}

// Batches of one tenant share its load, so whatever the weight they go earliest deadline first,
// however they were created.
func TestClaimOrderIsEarliestDeadlineFirstAcrossBatchesAtEveryWeight(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.model(t, "m", 100)
	late := f.rankedBatch(t, f.tenant, 24*time.Hour, 1)
	mid := f.rankedBatch(t, f.tenant, 2*time.Hour, 0)
	urgent := f.rankedBatch(t, f.tenant, 30*time.Minute, 2)
	for _, w := range []float64{0, 0.5, 1} {
		require.Equal(t, []string{urgent, mid, late}, f.claimOrder(t, w, 3), "weight %v", w)
	}
}

// The earliest batch is drained first, in input line order, rather than one request taken from
// each batch: nine batches due in 6h and an urgent one created last.
func TestClaimDrainsTheEarliestBatchFirstInLineOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 100)
	for range 9 {
		f.batchDue(t, f.tenant, 6*time.Hour, 3, "m")
	}
	urgent := f.batchDue(t, f.tenant, 30*time.Minute, 5, "m")
	c := f.claim(t, "m", 3, 3)
	ids := []string{c[0].RequestID, c[1].RequestID, c[2].RequestID}
	rows, err := f.store.Pool().Query(ctx, `SELECT batch_id, line FROM requests WHERE id = ANY ($1::uuid[]) ORDER BY line`, ids)
	require.NoError(t, err)
	type row struct {
		Batch string
		Line  int32
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	require.NoError(t, err)
	require.Equal(t, []row{{urgent, 1}, {urgent, 2}, {urgent, 3}}, got)
}

// Fairness reorders tenants, never the batches of one tenant: its nearer deadline still goes
// first. Tenant a holds 1 of m's slots and has batches due in 1h and 7d; the busier tenant b
// holds 3 and has one due in 30 min. Fairness terms a 1/3, b 1; urgency terms a-1h 1/24,
// a-7d 1 (clamped), b 1/48.
func TestClaimOrderKeepsATenantsBatchesEarliestDeadlineFirstUnderFairness(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.model(t, "m", 100)
	a, b := f.newTenant(t, "a"), f.newTenant(t, "b")
	aWeek := f.rankedBatch(t, a, 7*24*time.Hour, 1)
	aHour := f.rankedBatch(t, a, time.Hour, 0)
	bUrgent := f.rankedBatch(t, b, 30*time.Minute, 3)

	require.Equal(t, []string{aHour, aWeek, bUrgent}, f.claimOrder(t, 0, 3), "weight 0: a first, its 1h batch before its 7d one")
	require.Equal(t, []string{aHour, bUrgent, aWeek}, f.claimOrder(t, 0.5, 3), "weight 0.5: 0.19, 0.51, 0.67")
	require.Equal(t, []string{bUrgent, aHour, aWeek}, f.claimOrder(t, 1, 3), "weight 1: deadlines only")
}

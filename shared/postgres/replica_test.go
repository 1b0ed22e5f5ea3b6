package postgres_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/pgtest"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/postgres"
)

// replicaFixture is a fixture whose store reads from a real streaming replica of its database.
func replicaFixture(t *testing.T) (*fixture, pgtest.Replicated) {
	t.Helper()
	r := pgtest.Replica(t)
	s, err := postgres.Open(context.Background(), r.PrimaryURL, postgres.Options{ReplicaURL: r.ReplicaURL})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tenant, err := s.CreateTenant(context.Background(), "t", false, now)
	require.NoError(t, err)
	return &fixture{store: s, tenant: tenant.ID, now: now}, r
}

// With replay paused the replica lags: the lists and counts, served by it, do not show what the
// primary committed since (which proves they read the replica), while a get, results and an
// `after` cursor of an object the replica lacks are answered by the primary — never "not found".
// Once replay resumes, the lists show everything.
func TestALaggingReplicaNeverHidesAnObjectJustCreated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, r := replicaFixture(t)
	f.model(t, "m", 10)
	before := f.batch(t, 2, "m")
	r.CatchUp()
	windows := []time.Duration{48 * time.Hour}
	counts, err := f.store.PendingByModelAndWindow(ctx, windows, domain.PendingFilter{}, f.now)
	require.NoError(t, err)
	require.Equal(t, domain.WindowCounts{"m": {172800: 2}}, counts)

	r.Pause()
	fileID := domain.NewFileID()
	require.NoError(t, f.store.InsertFile(ctx, domain.File{ID: fileID, TenantID: f.tenant, Filename: "new.jsonl",
		Purpose: domain.PurposeBatch, Status: domain.FileProcessed, CreatedAt: f.now.Add(time.Minute)}))
	batchID := f.batch(t, 3, "m")

	got, err := f.store.ViewFile(ctx, f.tenant, fileID)
	require.NoError(t, err, "a file just created must be found, however far behind the replica is")
	require.Equal(t, "new.jsonl", got.Filename)
	b, err := f.store.ViewBatch(ctx, f.tenant, batchID)
	require.NoError(t, err, "a batch just created must be found")
	require.Equal(t, 3, b.Counts.Total)
	var lines []string
	require.NoError(t, f.store.BatchResults(ctx, f.tenant, batchID, domain.ResultQuery{Limit: 10}, func(row domain.BatchResult) error {
		lines = append(lines, row.CustomID)
		return nil
	}))
	require.Equal(t, []string{"c1", "c2", "c3"}, lines, "results the replica lacks come from the primary")
	_, err = f.store.ViewFile(ctx, f.tenant, domain.NewFileID())
	require.Equal(t, domain.ENotFound, domain.ErrorCode(err), "a file neither has is still not found")

	files, _, err := f.store.ListFiles(ctx, f.tenant, domain.FileListParams{Limit: 100})
	require.NoError(t, err, "a lagging replica may omit objects from a list but not fail it")
	require.NotContains(t, fileIDs(files), fileID, "the list is the replica's")
	require.Len(t, files, 1, "the first batch's input file")
	batches, _, err := f.store.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 100})
	require.NoError(t, err)
	require.Equal(t, []string{before}, batchIDs(batches), "the list is the replica's")
	counts, err = f.store.PendingByModelAndWindow(ctx, windows, domain.PendingFilter{}, f.now)
	require.NoError(t, err)
	require.Equal(t, domain.WindowCounts{"m": {172800: 2}}, counts, "the counts are the replica's")
	_, _, err = f.store.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 100, After: batchID})
	require.NoError(t, err, "an `after` only the primary knows is not a bad cursor")
	_, _, err = f.store.ListFiles(ctx, f.tenant, domain.FileListParams{Limit: 100, After: fileID})
	require.NoError(t, err, "an `after` only the primary knows is not a bad cursor")

	r.Resume()
	files, _, err = f.store.ListFiles(ctx, f.tenant, domain.FileListParams{Limit: 100})
	require.NoError(t, err)
	require.Contains(t, fileIDs(files), fileID)
	batches, _, err = f.store.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 100})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{before, batchID}, batchIDs(batches))
	counts, err = f.store.PendingByModelAndWindow(ctx, windows, domain.PendingFilter{}, f.now)
	require.NoError(t, err)
	require.Equal(t, domain.WindowCounts{"m": {172800: 5}}, counts)
}

// What the API does not promise, shown: a view of an object the replica has may be its older
// version (here a batch's status before a cancel), while GetBatch, what writes and their
// answers read, is the primary's.
func TestAViewMayBeOlderThanTheWriteBeforeItButGetIsNot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, r := replicaFixture(t)
	f.model(t, "m", 10)
	id := f.batch(t, 2, "m")
	r.CatchUp()
	r.Pause()
	status, err := f.store.CancelBatch(ctx, f.tenant, id, f.now)
	require.NoError(t, err)
	require.NotEqual(t, domain.BatchInProgress, status)
	view, err := f.store.ViewBatch(ctx, f.tenant, id)
	require.NoError(t, err)
	require.Equal(t, domain.BatchInProgress, view.Status, "the replica's older version")
	got, err := f.store.GetBatch(ctx, f.tenant, id)
	require.NoError(t, err)
	require.Equal(t, status, got.Status)
	r.Resume()
	view, err = f.store.ViewBatch(ctx, f.tenant, id)
	require.NoError(t, err)
	require.Equal(t, status, view.Status)
}

// The replica is never a new way to fail: one that does not answer at start or later only sends
// its reads to the primary.
func TestAnUnreachableReplicaSendsItsReadsToThePrimary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	s, err := postgres.Open(ctx, pgtest.URL(t), postgres.Options{ReplicaURL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/none?sslmode=disable", port)})
	require.NoError(t, err, "an unreachable replica does not stop the store opening")
	t.Cleanup(s.Close)
	f := &fixture{store: s, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	tenant, err := s.CreateTenant(ctx, "t", false, f.now)
	require.NoError(t, err)
	f.tenant = tenant.ID
	f.model(t, "m", 10)
	id := f.batch(t, 2, "m")

	b, err := s.ViewBatch(ctx, f.tenant, id)
	require.NoError(t, err)
	_, err = s.ViewFile(ctx, f.tenant, b.InputFileID)
	require.NoError(t, err)
	files, _, err := s.ListFiles(ctx, f.tenant, domain.FileListParams{Limit: 10})
	require.NoError(t, err)
	require.Len(t, files, 1)
	batches, _, err := s.ListBatches(ctx, f.tenant, domain.BatchListParams{Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []string{id}, batchIDs(batches))
	n := 0
	require.NoError(t, s.BatchResults(ctx, f.tenant, id, domain.ResultQuery{Limit: 10}, func(domain.BatchResult) error { n++; return nil }))
	require.Equal(t, 2, n)
	require.NoError(t, s.ResultFile(ctx, f.tenant, id, true, domain.ResultQuery{Limit: 10}, func(domain.ResultRow) error { return nil }))
	counts, err := s.PendingByModelAndWindow(ctx, []time.Duration{48 * time.Hour}, domain.PendingFilter{}, f.now)
	require.NoError(t, err)
	require.Equal(t, domain.WindowCounts{"m": {172800: 2}}, counts)
}

// The replica's sessions are read-only, so a write routed to it by mistake fails even against a
// server that would take it: here the "replica" is the primary database itself.
func TestTheReplicaPoolRefusesWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	s, err := postgres.Open(ctx, url, postgres.Options{ReplicaURL: url})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	_, err = s.CreateTenant(ctx, "t", false, time.Now())
	require.NoError(t, err, "writes go to the primary")
	_, err = s.ReplicaPool().Exec(ctx, "DELETE FROM tenants")
	require.ErrorContains(t, err, "read-only transaction")
	require.Nil(t, pgtest.Store(t).ReplicaPool(), "no replica, no replica pool")
}

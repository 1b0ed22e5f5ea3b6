package postgres_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/pgtest"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/postgres"
)

// A database that cannot be reached is the domain's "unavailable" (the API's 503), through every
// kind of call; a statement's own failure is not.
func TestUnreachableDatabaseIsUnavailable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@"+addr+"/x?sslmode=disable&connect_timeout=2")
	require.NoError(t, err)
	defer pool.Close()
	s := postgres.New(pool, nil)
	ctx := context.Background()
	_, err = s.GetFile(ctx, "t", "file-x") // QueryRow
	require.ErrorIs(t, err, postgres.ErrUnavailable)
	require.Equal(t, domain.EUnavailable, domain.ErrorCode(err))
	_, err = s.ListModels(ctx) // Query
	require.ErrorIs(t, err, postgres.ErrUnavailable)
	require.ErrorIs(t, s.StopWorker(ctx, "w", time.Now()), postgres.ErrUnavailable)              // Exec
	require.ErrorIs(t, s.InsertBatch(ctx, domain.Batch{ID: "batch_x"}), postgres.ErrUnavailable) // transaction
	require.ErrorIs(t, s.Ping(ctx), postgres.ErrUnavailable)

	live := pgtest.Store(t)
	_, err = live.GetFile(ctx, "t", "file-x")
	require.Equal(t, domain.ENotFound, domain.ErrorCode(err))
	require.False(t, errors.Is(err, postgres.ErrUnavailable))
}

package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/postgres/internal/pgq"
)

// SampleProgress records one progress sample of every running batch at now and prunes the
// samples older than before and those of batches no longer running (migration 0011). It returns
// how many batches were sampled.
func (s *Store) SampleProgress(ctx context.Context, now, before time.Time) (int, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := pgq.New(tx)
		if _, err := q.PruneProgress(ctx, before); err != nil {
			return err
		}
		var err error
		n, err = q.SampleProgress(ctx, now)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sample progress: %w", err)
	}
	return int(n), nil
}

// ProgressSince returns, for each of the batches that has one, its oldest progress sample at or
// after since. Only shown, never decided on: a replica may serve it.
func (s *Store) ProgressSince(ctx context.Context, batchIDs []string, since time.Time) (map[string]domain.ProgressSample, error) {
	out := make(map[string]domain.ProgressSample, len(batchIDs))
	if len(batchIDs) == 0 {
		return out, nil
	}
	err := s.read(ctx, func(q *pgq.Queries) error {
		rows, err := q.ProgressSince(ctx, pgq.ProgressSinceParams{Ids: batchIDs, Since: since})
		if err != nil {
			return err
		}
		for _, r := range rows {
			out[r.BatchID] = domain.ProgressSample{At: r.At, Done: int(r.Done)}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("progress samples: %w", err)
	}
	return out, nil
}

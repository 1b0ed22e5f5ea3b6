package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/postgres/internal/pgq"
)

// DecideFailFast runs the fail-fast breaker of a batch after one of its requests failed with the
// upstream 4xx status: it trips when the batch's first fail_fast_after finished requests all
// failed with that status (queries_failfast.sql), and then, in the same transaction, ends the
// batch's unstarted requests as batch_failed_fast and marks its running ones for their workers to
// abort, as a cancel does. The batch is sealed as failed once its last request has finished;
// the caller asks for the seal. upstreamMessage is the upstream's error message, shown in the
// batch's errors. tripped is false when the breaker did not trip, now or before.
func (s *Store) DecideFailFast(ctx context.Context, batchID string, status int, upstreamMessage string, now time.Time) (tripped bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := pgq.New(tx)
		trip, err := q.DecideFailFast(ctx, pgq.DecideFailFastParams{BatchID: batchID, Status: int32(status),
			UpstreamMessage: upstreamMessage, Code: domain.CodeFailFast, Now: now})
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // undecided, or decided before
		}
		if err != nil {
			return err
		}
		if trip == nil || !*trip {
			return nil
		}
		tripped = true
		return endUnstarted(ctx, q, batchID, now, domain.StateFailed, domain.CodeBatchFailedFast)
	})
	if err != nil {
		return false, fmt.Errorf("fail-fast breaker of %s: %w", batchID, err)
	}
	return tripped, nil
}

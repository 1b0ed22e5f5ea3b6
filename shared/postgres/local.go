package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ValidatingBatches returns the ids of batches waiting for populate (see the query).
func (s *Store) ValidatingBatches(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, q("ValidatingBatches"))
	if err != nil {
		return nil, fmt.Errorf("validating batches: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

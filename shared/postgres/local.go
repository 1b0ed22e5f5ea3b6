package postgres

import (
	"context"
	"fmt"
)

// ValidatingBatches returns the ids of batches waiting for populate (see the query).
func (s *Store) ValidatingBatches(ctx context.Context) ([]string, error) {
	ids, err := s.q.ValidatingBatches(ctx)
	if err != nil {
		return nil, fmt.Errorf("validating batches: %w", err)
	}
	return ids, nil
}

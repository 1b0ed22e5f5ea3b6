package postgres

import "github.com/fusillade/fusillade/shared/postgres/internal/pgq"

// Queries returns every named query of queries*.sql as it is sent ($1..$n parameters), by name:
// for the tests that prepare them all against the schema and for the benchmark's EXPLAIN of the
// claim. The Store itself calls the typed methods sqlc generated into internal/pgq.
func Queries() map[string]string { return pgq.SQL }

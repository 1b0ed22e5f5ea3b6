package wire_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/pgtest"
	"github.com/fusillade/fusillade/shared/postgres"
	"github.com/fusillade/fusillade/shared/wire"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// bootEnv is a function's environment against the database at url (no AWS call is made).
func bootEnv(url string) func(string) string {
	env := map[string]string{"DATABASE_URL": url, "BUCKET": "b", "WORK_QUEUE_URL": "http://127.0.0.1:1/work",
		"POPULATE_QUEUE_URL": "http://127.0.0.1:1/populate", "AWS_REGION": "us-east-1"}
	return func(k string) string { return env[k] }
}

// Every function boots through wire.Boot; a schema older than the build must stop it there, so
// that no invocation runs queries against tables or columns that do not exist yet.
func TestBootRefusesASchemaOneMigrationBehindAndServesOnceMigrated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.EmptyURL(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	latest := postgres.LatestMigration()
	require.Greater(t, latest, 1)
	_, err = postgres.MigrateTo(ctx, pool, latest-1)
	require.NoError(t, err)

	for _, fn := range []string{"api", "populate", "dispatch", "worker", "purge"} {
		_, err := wire.Boot(ctx, bootEnv(url), fn)
		require.ErrorIs(t, err, postgres.ErrSchemaBehind, fn)
		require.ErrorContains(t, err, fmt.Sprintf("at migration %d", latest-1), fn)
		require.ErrorContains(t, err, fmt.Sprintf("needs %d", latest), fn)
	}

	n, err := postgres.Migrate(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	app, err := wire.Boot(ctx, bootEnv(url), "api")
	require.NoError(t, err)
	defer app.Close()
	rec := httptest.NewRecorder()
	app.API().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

// Migrations are additive, so the build before a migration keeps serving after it: a deployment
// migrates before it replaces the functions, and a rollback leaves the newer schema in place.
func TestBootAcceptsASchemaNewerThanTheBuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_a_newer_build.sql')`, postgres.LatestMigration()+1)
	require.NoError(t, err)
	app, err := wire.Boot(ctx, bootEnv(url), "worker")
	require.NoError(t, err)
	// A booted function records its metrics as EMF, which its main flushes per invocation.
	require.NotNil(t, app.EMF)
	require.Same(t, app.EMF, app.Metrics)
	app.Close()
}

func TestBootRefusesADatabaseThatWasNeverMigrated(t *testing.T) {
	t.Parallel()
	_, err := wire.Boot(context.Background(), bootEnv(pgtest.EmptyURL(t)), "dispatch")
	require.ErrorIs(t, err, postgres.ErrSchemaBehind)
	require.ErrorContains(t, err, "at migration 0")
}

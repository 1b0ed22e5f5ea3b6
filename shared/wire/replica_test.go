package wire_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/pgtest"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/wire"
)

// DATABASE_REPLICA_URL reaches the API: with the replica's replay paused, the file list (the
// replica's) lacks a file just created while GET of that file (missing on the replica, so read
// on the primary) finds it; once replay resumes the list has it too.
func TestBootWiresTheReplicaIntoTheAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := pgtest.Replica(t)
	base := bootEnv(r.PrimaryURL)
	app, err := wire.Boot(ctx, func(k string) string {
		if k == "DATABASE_REPLICA_URL" {
			return r.ReplicaURL
		}
		return base(k)
	}, "api")
	require.NoError(t, err)
	defer app.Close()
	require.NotNil(t, app.Store.ReplicaPool())
	now := time.Now()
	tenant, err := app.Store.CreateTenant(ctx, "t", false, now)
	require.NoError(t, err)
	_, key, err := app.Store.CreateAPIKey(ctx, tenant.ID, "k", false, now)
	require.NoError(t, err)
	api := app.API()
	get := func(path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		return rec
	}
	r.CatchUp()

	r.Pause()
	id, expires := domain.NewFileID(), now.Add(time.Hour)
	require.NoError(t, app.Store.InsertFile(ctx, domain.File{ID: id, TenantID: tenant.ID, Filename: "in.jsonl",
		Purpose: domain.PurposeBatch, Status: domain.FileProcessed, CreatedAt: now, ExpiresAt: &expires}))
	rec := get("/v1/files/" + id)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = get("/v1/files")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.NotContains(t, rec.Body.String(), id, "the list is the lagging replica's")

	r.Resume()
	rec = get("/v1/files")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), id)
}

package engine_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/secrets"
	"github.com/fusillade/fusillade/shared/upstream"
)

// A reference stored before references were checked (or written to the table by hand) must not
// reach the worker's own environment: the line fails with a stable code and the upstream is
// never called, so the value never leaves the process.
func TestWorkerRefusesAStoredCredentialRefOutsideTheAllowedForms(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	getenv := func(k string) string {
		return map[string]string{"AWS_SESSION_TOKEN": "worker-session-token"}[k]
	}
	b.eng = engine.New(engine.Config{Retry: domain.RetryPolicy{MaxRetries: 5, Base: time.Second, Factor: 2, Max: 10 * time.Second},
		CancelPollEvery: 10 * time.Millisecond, HeartbeatEvery: time.Hour},
		engine.Deps{Store: b.store, Queue: b.queue, Upstream: upstream.New(upstream.Config{}), Blobs: b.blobs,
			Credentials: secrets.NewResolver(getenv, nil, domain.CredentialPolicy{}), Now: b.clock.Now,
			Logger: slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	m := mustModel(t, b)
	m.CredentialRef = "env:AWS_SESSION_TOKEN"
	require.NoError(t, b.store.UpsertModel(ctx, m))

	id := b.batch(t, b.tenant, "m", 2, 24*time.Hour)
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	b.drain(t)

	require.Zero(t, b.mock.Calls(), "no upstream call is made with a disallowed reference")
	got := b.get(t, id)
	require.Equal(t, domain.BatchCompleted, got.Status)
	require.Equal(t, domain.Counts{Total: 2, Failed: 2}, got.Counts)
	errs := strings.Split(strings.TrimSpace(b.object(t, got, false)), "\n")
	require.Len(t, errs, 2)
	for _, l := range errs {
		require.Contains(t, l, `"code":"`+domain.CodeCredentialRefNotAllowed+`"`)
		require.NotContains(t, l, "AWS_SESSION_TOKEN")
		require.NotContains(t, l, "worker-session-token")
	}
}

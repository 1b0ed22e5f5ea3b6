package stack_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
)

// While PostgreSQL is down the API answers 503 with Retry-After and x-should-retry (not 500),
// /readyz says the database is unreachable while /healthz stays 200, and once PostgreSQL is back
// everything resumes by itself: the batch submitted before the outage completes, every line once.
func TestDatabaseOutageAnswers503AndResumesWithoutARestart(t *testing.T) {
	st, err := stack.Start(context.Background(), stack.Options{DataDir: t.TempDir(), Ephemeral: true, APIAddr: "127.0.0.1:0",
		Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 2}}})
	require.NoError(t, err)
	t.Cleanup(st.Stop)
	require.NotNil(t, st.Cluster)
	c := client(st, st.APIKey)
	ctx := context.Background()
	var content strings.Builder
	for i := range 10 {
		fmt.Fprintf(&content, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","messages":[],"mock_block":"hold"}}`+"\n", i)
	}
	f := uploadSDK(t, c, []byte(content.String()))
	b := newBatch(t, c, f.ID)
	require.NoError(t, st.Upstream.WaitBlocked(ctx, "hold", 2), "both slots busy")
	require.Equal(t, 200, call(t, st, "", "GET", "/readyz", nil, "").Status)

	require.NoError(t, st.Cluster.Stop())
	r := call(t, st, st.APIKey, "GET", "/v1/batches/"+b.ID, nil, "")
	require.Equal(t, http.StatusServiceUnavailable, r.Status, "%s", r.Body)
	require.Equal(t, "1", r.Header.Get("Retry-After"))
	require.Equal(t, "true", r.Header.Get("x-should-retry"))
	e := r.errorOf(t)
	require.Equal(t, "server_error", e["type"])
	require.NotContains(t, e["message"], "127.0.0.1", "no internal detail reaches the client")
	ready := call(t, st, "", "GET", "/readyz", nil, "")
	require.Equal(t, http.StatusServiceUnavailable, ready.Status)
	require.Equal(t, "database_unreachable", ready.errorOf(t)["code"])
	require.Equal(t, 200, call(t, st, "", "GET", "/healthz", nil, "").Status, "liveness does not depend on the database")

	require.NoError(t, st.Cluster.Start(ctx))
	back := call(t, st, "", "GET", "/readyz", nil, "")
	require.Equal(t, 200, back.Status, "%s", back.Body)
	st.Upstream.Release("hold")
	done := waitBatch(t, c, b.ID, time.Minute)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	require.EqualValues(t, 10, done.RequestCounts.Completed)
	require.EqualValues(t, 10, st.Upstream.Calls(), "every line reached the upstream exactly once")
	assertInvariants(t, st, c, done, map[string]int{"mock-chat": 2})
}

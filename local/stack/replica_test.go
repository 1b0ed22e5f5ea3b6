package stack_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/pgtest"
	"github.com/fusillade/fusillade/local/stack"
)

// A whole batch, upload to download, runs while the API's read replica replays nothing: every
// GET of the new file and batch, the polling to completion and the output's download are
// answered (from the primary, as the replica lacks them), while the lists — the replica's — do
// not show them until replay resumes.
func TestABatchRunsToTheEndWhileTheReadReplicaLags(t *testing.T) {
	r := pgtest.Replica(t)
	st, err := stack.Start(context.Background(), stack.Options{DatabaseURL: r.PrimaryURL, ReplicaURL: r.ReplicaURL,
		DataDir: t.TempDir(), Ephemeral: true, APIAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(st.Stop)
	require.NotNil(t, st.App.Store.ReplicaPool())
	c := client(st, st.APIKey)
	ctx := context.Background()
	r.CatchUp()

	r.Pause()
	f := uploadSDK(t, c, jsonlFile(5, "mock-chat"))
	got, err := c.Files.Get(ctx, f.ID)
	require.NoError(t, err, "a file just uploaded is found though the replica lags")
	require.Equal(t, f.ID, got.ID)
	b := newBatch(t, c, f.ID)
	done := waitBatch(t, c, b.ID, time.Minute)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	require.Len(t, readLines(t, c, done.OutputFileID), 5)

	files, err := c.Files.List(ctx, openai.FileListParams{})
	require.NoError(t, err)
	require.False(t, slices.ContainsFunc(files.Data, func(x openai.FileObject) bool { return x.ID == f.ID }),
		"the list is the lagging replica's")
	batches, err := c.Batches.List(ctx, openai.BatchListParams{})
	require.NoError(t, err)
	require.Empty(t, batches.Data, "the list is the lagging replica's")

	r.Resume()
	files, err = c.Files.List(ctx, openai.FileListParams{})
	require.NoError(t, err)
	require.True(t, slices.ContainsFunc(files.Data, func(x openai.FileObject) bool { return x.ID == f.ID }))
	batches, err = c.Batches.List(ctx, openai.BatchListParams{})
	require.NoError(t, err)
	require.Len(t, batches.Data, 1)
	require.Equal(t, openai.BatchStatusCompleted, batches.Data[0].Status)
}

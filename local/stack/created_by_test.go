package stack_test

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
)

// Two keys of one tenant each create a batch through the official Go SDK; each batch and file
// names its creator in created_by_key, and created_by_key= lists only that key's work, while
// the tenant as a whole still sees both.
func TestTwoKeysOfOneTenantEachListTheirOwnBatches(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 2}}})
	ctx := context.Background()
	_, keyB, err := st.App.Store.CreateAPIKey(ctx, st.TenantID, "team-b", false, time.Now())
	require.NoError(t, err)

	type team struct {
		c       openai.Client
		keyID   string
		batchID string
		fileID  string
	}
	var teams []*team
	for _, key := range []string{st.APIKey, keyB} {
		p, err := st.App.Store.Authenticate(ctx, key)
		require.NoError(t, err)
		tm := &team{c: client(st, key), keyID: strconv.FormatInt(p.KeyID, 10)}
		f, err := tm.c.Files.New(ctx, openai.FileNewParams{File: bytes.NewReader(jsonlFile(2, "mock-chat")), Purpose: openai.FilePurposeBatch})
		require.NoError(t, err)
		require.Equal(t, strconv.Quote(tm.keyID), f.JSON.ExtraFields["created_by_key"].Raw(), "uploaded file names its key")
		b, err := tm.c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
			CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
		require.NoError(t, err)
		require.Equal(t, strconv.Quote(tm.keyID), b.JSON.ExtraFields["created_by_key"].Raw(), "created batch names its key")
		tm.batchID, tm.fileID = b.ID, f.ID
		teams = append(teams, tm)
	}
	require.NotEqual(t, teams[0].keyID, teams[1].keyID)

	for _, tm := range teams {
		page, err := tm.c.Batches.List(ctx, openai.BatchListParams{}, option.WithQuery("created_by_key", tm.keyID))
		require.NoError(t, err)
		require.Len(t, page.Data, 1, "key %s sees only its own batch", tm.keyID)
		require.Equal(t, tm.batchID, page.Data[0].ID)
		require.Equal(t, strconv.Quote(tm.keyID), page.Data[0].JSON.ExtraFields["created_by_key"].Raw())

		files, err := tm.c.Files.List(ctx, openai.FileListParams{Purpose: openai.String("batch")}, option.WithQuery("created_by_key", tm.keyID))
		require.NoError(t, err)
		require.Len(t, files.Data, 1, "key %s sees only its own file", tm.keyID)
		require.Equal(t, tm.fileID, files.Data[0].ID)
	}
	// Without the filter, and with both keys, the tenant sees both batches.
	all, err := teams[0].c.Batches.List(ctx, openai.BatchListParams{})
	require.NoError(t, err)
	require.Len(t, all.Data, 2)
	both, err := teams[1].c.Batches.List(ctx, openai.BatchListParams{}, option.WithQuery("created_by_key", teams[0].keyID+","+teams[1].keyID))
	require.NoError(t, err)
	require.Len(t, both.Data, 2)
}

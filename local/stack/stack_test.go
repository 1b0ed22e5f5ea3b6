package stack_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/pgtest"
	"github.com/fusillade/fusillade/local/stack"
)

func startStack(t *testing.T, opts stack.Options) *stack.Stack {
	t.Helper()
	opts.DatabaseURL = pgtest.URL(t)
	opts.DataDir = t.TempDir()
	opts.Ephemeral = true
	opts.APIAddr = "127.0.0.1:0"
	st, err := stack.Start(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(st.Stop)
	return st
}

func client(st *stack.Stack, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(st.APIURL+"/v1"), option.WithAPIKey(key))
}

// jsonlFile builds n chat lines alternating over models.
func jsonlFile(n int, models ...string) []byte {
	var b bytes.Buffer
	for i := range n {
		m := models[i%len(models)]
		fmt.Fprintf(&b, `{"custom_id":"req-%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"hello %d"}]}}`+"\n", i, m, i)
	}
	return b.Bytes()
}

// waitBatch polls until the batch is terminal.
func waitBatch(t *testing.T, c openai.Client, id string, within time.Duration) *openai.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		b, err := c.Batches.Get(ctx, id)
		require.NoError(t, err)
		switch b.Status {
		case openai.BatchStatusCompleted, openai.BatchStatusFailed, openai.BatchStatusCancelled, openai.BatchStatusExpired:
			return b
		}
		select {
		case <-ctx.Done():
			require.Failf(t, "batch not finished in time", "batch %s still %s after %s (counts %+v)", id, b.Status, within, b.RequestCounts)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func readLines(t *testing.T, c openai.Client, fileID string) []map[string]any {
	t.Helper()
	resp, err := c.Files.Content(context.Background(), fileID)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "every output line is JSON")
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}

// A 1,000-line file spanning two models runs to completion through the official Go SDK, with
// every line answered once and each model's concurrency limit respected at the upstream.
func TestThousandLinesAcrossTwoModelsCompleteWithinLimits(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 8}, {Name: "mock-embed", Limit: 4}}})
	c := client(st, st.APIKey)
	ctx := context.Background()

	f, err := c.Files.New(ctx, openai.FileNewParams{File: bytes.NewReader(jsonlFile(1000, "mock-chat", "mock-embed")), Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	require.Equal(t, "anonymous_file", f.Filename)
	require.Equal(t, openai.FileObjectStatusProcessed, f.Status)

	b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusValidating, b.Status)

	done := waitBatch(t, c, b.ID, 2*time.Minute)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	require.EqualValues(t, 1000, done.RequestCounts.Total)
	require.EqualValues(t, 1000, done.RequestCounts.Completed)
	require.EqualValues(t, 0, done.RequestCounts.Failed)
	require.Empty(t, done.ErrorFileID)

	lines := readLines(t, c, done.OutputFileID)
	require.Len(t, lines, 1000)
	seen := map[string]bool{}
	for _, l := range lines {
		id, _ := l["custom_id"].(string)
		require.False(t, seen[id], "custom_id %s appears twice", id)
		seen[id] = true
		resp := l["response"].(map[string]any)
		require.EqualValues(t, 200, resp["status_code"])
		require.Nil(t, l["error"])
	}
	require.Len(t, seen, 1000)
	require.EqualValues(t, 1000, st.Upstream.Calls(), "each line reaches the upstream exactly once")
	assertInvariants(t, st, c, done, map[string]int{"mock-chat": 8, "mock-embed": 4})
}

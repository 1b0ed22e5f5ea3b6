package stack_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
)

// invocations collects what Options.Invoked reports, by function.
type invocations struct {
	mu    sync.Mutex
	calls map[string][]stack.Invocation
}

func (i *invocations) add(inv stack.Invocation) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.calls[inv.Function] = append(i.calls[inv.Function], inv)
}

func (i *invocations) of(fn string) []stack.Invocation {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]stack.Invocation(nil), i.calls[fn]...)
}

// The benchmark prices a run from these reports: every function the stack runs is reported under
// its template.yaml logical id, the SQS-triggered ones with the records they were handed, and the
// emulator counts the SQS calls the functions made.
func TestInvokedReportsEveryFunctionsInvocations(t *testing.T) {
	seen := &invocations{calls: map[string][]stack.Invocation{}}
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 4}}, Invoked: seen.add})
	c := client(st, st.APIKey)
	ctx := context.Background()
	const n = 20
	f, err := c.Files.New(ctx, openai.FileNewParams{File: bytes.NewReader(jsonlFile(n, "mock-chat")), Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusCompleted, waitBatch(t, c, b.ID, time.Minute).Status)

	// Each report arrives once the invocation has returned, which may be just after its effect
	// was visible; and the schedules' first runs race the batch.
	require.Eventually(t, func() bool {
		return len(seen.of("ApiFunction")) >= 3 && len(seen.of("PopulateFunction")) >= 1 &&
			len(seen.of("DispatchFunction")) >= 1 && len(seen.of("PurgeFunction")) >= 1
	}, 10*time.Second, 10*time.Millisecond, "upload, create and poll are API invocations; every schedule runs at start")
	pop := seen.of("PopulateFunction")
	require.Len(t, pop, 1, "one batch is populated once")
	require.Equal(t, 1, pop[0].Records)
	records := 0
	for _, inv := range seen.of("WorkerFunction") {
		require.Positive(t, inv.Duration)
		require.LessOrEqual(t, inv.Records, 10, "the template's BatchSize")
		records += inv.Records
	}
	require.GreaterOrEqual(t, records, 4, "the kick-off hands each of the model's 4 slots to a worker as an SQS record")
	require.Less(t, records, n, "a freed slot runs its next request without a message")
	for _, inv := range seen.of("DispatchFunction") {
		require.Zero(t, inv.Records)
	}
	reqs := st.SQSEmulator.Requests()
	require.Positive(t, reqs["ReceiveMessage"].Calls)
	require.Positive(t, reqs["DeleteMessageBatch"].Calls)
}

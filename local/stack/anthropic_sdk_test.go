package stack_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
)

// The official Go SDK (anthropic-sdk-go, which authenticates with x-api-key) drives the Message
// Batches routes: create, retrieve until ended, list with paging, stream results, cancel a batch
// that cannot run, delete, and a missing batch's 404 as the SDK's error. Every check reads a field
// the SDK decoded, so a shape the SDK does not expect fails here.
func TestAnthropicGoSDK(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "claude-go", Limit: 4}, {Name: "claude-parked", Limit: 0}}})
	client := anthropic.NewClient(option.WithBaseURL(st.APIURL), option.WithAPIKey(st.APIKey), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	request := func(id, model, text string, extra map[string]any) anthropic.MessageBatchNewParamsRequest {
		p := anthropic.MessageBatchNewParamsRequestParams{Model: anthropic.Model(model), MaxTokens: 32,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(text))}}
		if extra != nil {
			p.SetExtraFields(extra)
		}
		return anthropic.MessageBatchNewParamsRequest{CustomID: id, Params: p}
	}
	created, err := client.Messages.Batches.New(ctx, anthropic.MessageBatchNewParams{Requests: []anthropic.MessageBatchNewParamsRequest{
		request("ok-1", "claude-go", "hello", nil),
		request("refused", "claude-go", "no", map[string]any{"mock_status": 400}),
		request("ok-2", "claude-go", "again", nil),
	}})
	require.NoError(t, err)
	require.Equal(t, anthropic.MessageBatchProcessingStatusInProgress, created.ProcessingStatus)
	require.EqualValues(t, 3, created.RequestCounts.Processing)
	require.False(t, created.CreatedAt.IsZero())

	wait := func(id string) *anthropic.MessageBatch {
		t.Helper()
		for {
			b, err := client.Messages.Batches.Get(ctx, id, anthropic.MessageBatchGetParams{})
			require.NoError(t, err)
			if b.ProcessingStatus == anthropic.MessageBatchProcessingStatusEnded {
				return b
			}
			select {
			case <-ctx.Done():
				require.FailNow(t, "the message batch did not end", "%s: %s", id, b.ProcessingStatus)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	done := wait(created.ID)
	require.Equal(t, anthropic.MessageBatchRequestCounts{Succeeded: 2, Errored: 1},
		anthropic.MessageBatchRequestCounts{Succeeded: done.RequestCounts.Succeeded, Errored: done.RequestCounts.Errored,
			Canceled: done.RequestCounts.Canceled, Expired: done.RequestCounts.Expired, Processing: done.RequestCounts.Processing})
	require.False(t, done.EndedAt.IsZero())
	require.Equal(t, st.APIURL+"/v1/messages/batches/"+created.ID+"/results", done.ResultsURL)

	// The results, through the SDK's JSONL stream: each request once, by custom_id.
	results := map[string]anthropic.MessageBatchResultUnion{}
	stream := client.Messages.Batches.ResultsStreaming(ctx, created.ID, anthropic.MessageBatchResultsParams{})
	for stream.Next() {
		r := stream.Current()
		require.NotContains(t, results, r.CustomID, "one line per request")
		results[r.CustomID] = r.Result
	}
	require.NoError(t, stream.Err())
	require.NoError(t, stream.Close())
	require.Len(t, results, 3)
	for _, id := range []string{"ok-1", "ok-2"} {
		require.Equal(t, "succeeded", results[id].Type, id)
		msg := results[id].Message
		require.Equal(t, anthropic.Model("claude-go"), msg.Model, id)
		require.Equal(t, "assistant", string(msg.Role), id)
		require.NotEmpty(t, msg.Content, id)
		require.Equal(t, "text", msg.Content[0].Type, id)
		require.NotEmpty(t, msg.Content[0].Text, id)
		require.Positive(t, msg.Usage.OutputTokens, id)
	}
	require.Equal(t, "errored", results["refused"].Type)
	require.Equal(t, "invalid_request_error", results["refused"].Error.Error.Type)
	require.NotEmpty(t, results["refused"].Error.Error.Message)

	// A batch that cannot run (its model has no slots) is cancelled: canceling, then ended with
	// canceled results.
	parked, err := client.Messages.Batches.New(ctx, anthropic.MessageBatchNewParams{Requests: []anthropic.MessageBatchNewParamsRequest{
		request("p-1", "claude-parked", "wait", nil), request("p-2", "claude-parked", "wait", nil),
	}})
	require.NoError(t, err)
	cancelled, err := client.Messages.Batches.Cancel(ctx, parked.ID, anthropic.MessageBatchCancelParams{})
	require.NoError(t, err)
	require.Contains(t, []anthropic.MessageBatchProcessingStatus{anthropic.MessageBatchProcessingStatusCanceling,
		anthropic.MessageBatchProcessingStatusEnded}, cancelled.ProcessingStatus)
	require.False(t, cancelled.CancelInitiatedAt.IsZero())
	ended := wait(parked.ID)
	require.EqualValues(t, 2, ended.RequestCounts.Canceled)
	stream = client.Messages.Batches.ResultsStreaming(ctx, parked.ID, anthropic.MessageBatchResultsParams{})
	var canceled int
	for stream.Next() {
		require.Equal(t, "canceled", stream.Current().Result.Type)
		canceled++
	}
	require.NoError(t, stream.Err())
	require.Equal(t, 2, canceled)

	// The list pages newest first, one at a time, with after_id.
	first, err := client.Messages.Batches.List(ctx, anthropic.MessageBatchListParams{Limit: anthropic.Int(1)})
	require.NoError(t, err)
	require.Len(t, first.Data, 1)
	require.Equal(t, parked.ID, first.Data[0].ID)
	require.True(t, first.HasMore)
	second, err := client.Messages.Batches.List(ctx, anthropic.MessageBatchListParams{Limit: anthropic.Int(1), AfterID: anthropic.String(first.LastID)})
	require.NoError(t, err)
	require.Len(t, second.Data, 1)
	require.Equal(t, created.ID, second.Data[0].ID)
	require.False(t, second.HasMore)
	var all []string
	for it := client.Messages.Batches.ListAutoPaging(ctx, anthropic.MessageBatchListParams{Limit: anthropic.Int(1)}); it.Next(); {
		all = append(all, it.Current().ID)
	}
	require.Equal(t, []string{parked.ID, created.ID}, all, "the auto-pager walks both pages")

	// Delete an ended batch; it is gone, and a missing batch is the SDK's 404 error.
	deleted, err := client.Messages.Batches.Delete(ctx, created.ID, anthropic.MessageBatchDeleteParams{})
	require.NoError(t, err)
	require.Equal(t, created.ID, deleted.ID)
	_, err = client.Messages.Batches.Get(ctx, created.ID, anthropic.MessageBatchGetParams{})
	var apiErr *anthropic.Error
	require.True(t, errors.As(err, &apiErr), "%v", err)
	require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	require.Equal(t, "not_found_error", string(apiErr.Type()))
}

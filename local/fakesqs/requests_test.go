package fakesqs_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/fakesqs"
)

// The benchmark prices SQS from these counts: one billed request per call of up to 64 KiB (a
// batch of ten small messages is one), one more per further 64 KiB, empty receives included.
func TestRequestsAreCountedByActionInBilledUnits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.createQueue("billing", nil)
	before := e.srv.Requests()
	require.Equal(t, int64(1), before["CreateQueue"].Calls)

	entries := make([]types.SendMessageBatchRequestEntry, 10)
	for i := range entries {
		entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String("small")}
	}
	_, err := e.client.SendMessageBatch(e.ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
	require.NoError(t, err)
	big := strings.Repeat("x", fakesqs.BilledChunk+1) // one byte over a chunk, before any JSON around it
	_, err = e.client.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(big)})
	require.NoError(t, err)
	got := e.receive(url, 10, 0)
	require.Len(t, got, 10)
	del := make([]types.DeleteMessageBatchRequestEntry, len(got))
	for i, m := range got {
		del[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
	}
	_, err = e.client.DeleteMessageBatch(e.ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: del})
	require.NoError(t, err)
	e.receiveOne(url)                       // the big one (its answer is large; only the request is metered)
	require.Empty(t, e.receive(url, 10, 0)) // an empty receive is billed too
	_, err = e.client.ReceiveMessage(e.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String("http://x/000000000000/nope")})
	require.Error(t, err, "a failed call is still a call")

	require.Equal(t, map[string]fakesqs.RequestCount{
		"CreateQueue":        {Calls: 1, Billed: 1},
		"SendMessageBatch":   {Calls: 1, Billed: 1},
		"SendMessage":        {Calls: 1, Billed: 2},
		"ReceiveMessage":     {Calls: 4, Billed: 4, Empty: 1},
		"DeleteMessageBatch": {Calls: 1, Billed: 1},
	}, e.srv.Requests())
}

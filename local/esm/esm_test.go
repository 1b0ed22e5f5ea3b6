package esm

import (
	"context"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/fakesqs"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type queue struct {
	t      *testing.T
	client *sqs.Client
	url    string
}

// newQueue starts an emulator (on clk when it is not nil) with one queue whose visibility
// timeout is an hour, so that only the source's own handling makes a message visible again.
func newQueue(t *testing.T, clk *clock) *queue {
	t.Helper()
	var opts []fakesqs.Option
	if clk != nil {
		opts = append(opts, fakesqs.WithClock(clk.now))
	}
	ts := httptest.NewServer(fakesqs.New(opts...))
	t.Cleanup(ts.Close)
	client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(ts.URL),
		Credentials: credentials.NewStaticCredentialsProvider("x", "y", "")})
	out, err := client.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String("q"),
		Attributes: map[string]string{"VisibilityTimeout": "3600"}})
	require.NoError(t, err)
	return &queue{t: t, client: client, url: aws.ToString(out.QueueUrl)}
}

func (q *queue) send(bodies ...string) {
	q.t.Helper()
	for _, b := range bodies {
		_, err := q.client.SendMessage(q.t.Context(), &sqs.SendMessageInput{QueueUrl: &q.url, MessageBody: aws.String(b)})
		require.NoError(q.t, err)
	}
}

func (q *queue) receive(max int32) []types.Message {
	q.t.Helper()
	out, err := q.client.ReceiveMessage(q.t.Context(), &sqs.ReceiveMessageInput{QueueUrl: &q.url, MaxNumberOfMessages: max})
	require.NoError(q.t, err)
	return out.Messages
}

// counts is ApproximateNumberOfMessages and ApproximateNumberOfMessagesNotVisible.
func (q *queue) counts() [2]int {
	q.t.Helper()
	out, err := q.client.GetQueueAttributes(q.t.Context(), &sqs.GetQueueAttributesInput{QueueUrl: &q.url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	require.NoError(q.t, err)
	var n [2]int
	for i, k := range []string{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"} {
		n[i], err = strconv.Atoi(out.Attributes[k])
		require.NoError(q.t, err)
	}
	return n
}

// failing is a handler that reports the records with the given bodies as failed.
func failing(bodies ...string) Handler {
	return func(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		var resp events.SQSEventResponse
		for _, r := range ev.Records {
			for _, b := range bodies {
				if r.Body == b {
					resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
				}
			}
		}
		return resp, nil
	}
}

func TestReportedFailuresStayAndComeBackAfterRetryFailedAfter(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	q := newQueue(t, clk)
	q.send("ok", "bad")
	src := &SQSSource{Client: q.client, QueueURL: q.url, Handler: failing("bad"), ReportBatchItemFailures: true,
		RetryFailedAfter: time.Second, Timeout: time.Minute}
	src.invoke(t.Context(), q.receive(10))
	require.Equal(t, [2]int{0, 1}, q.counts(), "the success is deleted, the failure held")
	clk.advance(time.Second)
	msgs := q.receive(10)
	require.Len(t, msgs, 1, "the failure is back after RetryFailedAfter, long before the visibility timeout")
	require.Equal(t, "bad", aws.ToString(msgs[0].Body))
}

func TestReportedFailuresWaitForTheVisibilityTimeoutByDefault(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	q := newQueue(t, clk)
	q.send("ok", "bad")
	src := &SQSSource{Client: q.client, QueueURL: q.url, Handler: failing("bad"), ReportBatchItemFailures: true, Timeout: time.Minute}
	src.invoke(t.Context(), q.receive(10))
	clk.advance(59 * time.Minute)
	require.Equal(t, [2]int{0, 1}, q.counts(), "held for the queue's visibility timeout, as Lambda does")
	clk.advance(time.Minute)
	require.Equal(t, [2]int{1, 0}, q.counts())
}

func TestWithoutReportBatchItemFailuresASuccessDeletesTheWholeBatch(t *testing.T) {
	t.Parallel()
	q := newQueue(t, nil)
	q.send("ok", "bad")
	src := &SQSSource{Client: q.client, QueueURL: q.url, Handler: failing("bad"), RetryFailedAfter: time.Second, Timeout: time.Minute}
	src.invoke(t.Context(), q.receive(10))
	require.Equal(t, [2]int{0, 0}, q.counts(), "Lambda ignores batchItemFailures unless the mapping reports them")
}

func TestBatchingWindowFillsABatch(t *testing.T) {
	t.Parallel()
	q := newQueue(t, nil)
	q.send("a", "b", "c")
	first := q.receive(1)
	require.Len(t, first, 1)

	none := &SQSSource{Client: q.client, QueueURL: q.url, BatchSize: 3}
	require.Len(t, none.fill(t.Context(), first), 1, "without a window the batch is handed over at once")

	window := &SQSSource{Client: q.client, QueueURL: q.url, BatchSize: 3, BatchingWindow: time.Hour}
	require.Len(t, window.fill(t.Context(), first), 3, "a full batch is handed over without waiting out the window")

	q.send("d")
	start := time.Now()
	short := &SQSSource{Client: q.client, QueueURL: q.url, BatchSize: 10, BatchingWindow: time.Second}
	got := short.fill(t.Context(), q.receive(1))
	require.Len(t, got, 1, "nothing more arrived")
	require.GreaterOrEqual(t, time.Since(start), time.Second, "the poller waited out the window")
}

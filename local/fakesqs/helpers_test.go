package fakesqs_test

import (
	"context"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/fakesqs"
)

// fakeClock is a settable clock for WithClock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t      testing.TB
	srv    *fakesqs.Server
	ts     *httptest.Server
	client *sqs.Client
	ctx    context.Context
}

// newEnv starts an emulator behind httptest and returns a real SDK client
// pointed at it.
func newEnv(t testing.TB, opts ...fakesqs.Option) *env {
	t.Helper()
	srv := fakesqs.New(opts...)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	client := sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(ts.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("x", "y", ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return &env{t: t, srv: srv, ts: ts, client: client, ctx: ctx}
}

func (e *env) createQueue(name string, attrs map[string]string) string {
	e.t.Helper()
	out, err := e.client.CreateQueue(e.ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	require.NoError(e.t, err)
	return aws.ToString(out.QueueUrl)
}

func (e *env) send(url, body string) string {
	e.t.Helper()
	out, err := e.client.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body)})
	require.NoError(e.t, err)
	return aws.ToString(out.MessageId)
}

func (e *env) receive(url string, max int32, wait int32) []types.Message {
	e.t.Helper()
	out, err := e.client.ReceiveMessage(e.ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(url),
		MaxNumberOfMessages:         max,
		WaitTimeSeconds:             wait,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	require.NoError(e.t, err)
	return out.Messages
}

func (e *env) receiveOne(url string) types.Message {
	e.t.Helper()
	msgs := e.receive(url, 1, 0)
	require.Len(e.t, msgs, 1)
	return msgs[0]
}

// counts returns ApproximateNumberOfMessages, ...NotVisible and ...Delayed.
func (e *env) counts(url string) (visible, notVisible, delayed int) {
	e.t.Helper()
	out, err := e.client.GetQueueAttributes(e.ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	require.NoError(e.t, err)
	atoi := func(k string) int {
		n, err := strconv.Atoi(out.Attributes[k])
		require.NoError(e.t, err, k)
		return n
	}
	return atoi("ApproximateNumberOfMessages"), atoi("ApproximateNumberOfMessagesNotVisible"), atoi("ApproximateNumberOfMessagesDelayed")
}

func (e *env) requireCounts(url string, visible, notVisible, delayed int) {
	e.t.Helper()
	v, n, d := e.counts(url)
	require.Equal(e.t, [3]int{visible, notVisible, delayed}, [3]int{v, n, d}, "visible, not visible, delayed")
}

// waitForPoller blocks until n receives are long polling on queue name.
func (e *env) waitForPoller(name string, n int) {
	e.t.Helper()
	require.Eventually(e.t, func() bool { return e.srv.Waiters(name) >= n }, 5*time.Second, time.Millisecond)
}

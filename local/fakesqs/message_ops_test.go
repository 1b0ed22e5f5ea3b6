package fakesqs_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/fakesqs"
)

func TestSendReceiveWithAttributes(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	e := newEnv(t, fakesqs.WithClock(clock.Now))
	url := e.createQueue("jobs", nil)

	sent, err := e.client.SendMessage(e.ctx, &sqs.SendMessageInput{
		QueueUrl:    aws.String(url),
		MessageBody: aws.String(`{"custom_id":"req-1"}`),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"batch_id":    {DataType: aws.String("String"), StringValue: aws.String("batch_123")},
			"attempt":     {DataType: aws.String("Number"), StringValue: aws.String("2")},
			"blob.raw":    {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2, 255}},
			"blob.filter": {DataType: aws.String("String.label"), StringValue: aws.String("x")},
		},
		MessageSystemAttributes: map[string]types.MessageSystemAttributeValue{
			"AWSTraceHeader": {DataType: aws.String("String"), StringValue: aws.String("Root=1-abc")},
		},
	})
	require.NoError(t, err) // the SDK has verified MD5OfMessageBody
	require.NotEmpty(t, aws.ToString(sent.MD5OfMessageAttributes))
	require.NotEmpty(t, aws.ToString(sent.MD5OfMessageSystemAttributes))

	clock.Advance(2 * time.Second)
	m := e.receiveOne(url)
	assert.Equal(t, aws.ToString(sent.MessageId), aws.ToString(m.MessageId))
	assert.Equal(t, `{"custom_id":"req-1"}`, aws.ToString(m.Body))
	assert.Equal(t, aws.ToString(sent.MD5OfMessageAttributes), aws.ToString(m.MD5OfMessageAttributes))
	assert.Equal(t, "batch_123", aws.ToString(m.MessageAttributes["batch_id"].StringValue))
	assert.Equal(t, "Number", aws.ToString(m.MessageAttributes["attempt"].DataType))
	assert.Equal(t, []byte{0, 1, 2, 255}, m.MessageAttributes["blob.raw"].BinaryValue)
	assert.Equal(t, "1", m.Attributes["ApproximateReceiveCount"])
	assert.Equal(t, strconv.FormatInt(clock.Now().Add(-2*time.Second).UnixMilli(), 10), m.Attributes["SentTimestamp"])
	assert.Equal(t, strconv.FormatInt(clock.Now().UnixMilli(), 10), m.Attributes["ApproximateFirstReceiveTimestamp"])
	assert.Equal(t, "000000000000", m.Attributes["SenderId"])
	assert.Equal(t, "Root=1-abc", m.Attributes["AWSTraceHeader"])

	// Selecting attributes: by name and by prefix; the checksum follows the
	// returned subset.
	_, err = e.client.ChangeMessageVisibility(e.ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0,
	})
	require.NoError(t, err)
	out, err := e.client.ReceiveMessage(e.ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(url),
		MessageAttributeNames:       []string{"attempt", "blob.*"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
	})
	require.NoError(t, err)
	require.Len(t, out.Messages, 1)
	m = out.Messages[0]
	assert.Len(t, m.MessageAttributes, 3)
	assert.NotContains(t, m.MessageAttributes, "batch_id")
	assert.NotEqual(t, aws.ToString(sent.MD5OfMessageAttributes), aws.ToString(m.MD5OfMessageAttributes))
	assert.Equal(t, map[string]string{"ApproximateReceiveCount": "2"}, m.Attributes)

	// Nothing requested: nothing returned.
	_, err = e.client.ChangeMessageVisibility(e.ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0,
	})
	require.NoError(t, err)
	out, err = e.client.ReceiveMessage(e.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url)})
	require.NoError(t, err)
	require.Len(t, out.Messages, 1)
	assert.Empty(t, out.Messages[0].MessageAttributes)
	assert.Empty(t, out.Messages[0].Attributes)
	assert.Nil(t, out.Messages[0].MD5OfMessageAttributes)
}

func TestSendMessageValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.createQueue("small", map[string]string{"MaximumMessageSize": "1024"})

	_, err := e.client.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(strings.Repeat("x", 1025))})
	assert.Equal(t, "InvalidParameterValue", apiCode(t, err))
	_, err = e.client.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(strings.Repeat("x", 1024))})
	require.NoError(t, err)

	_, err = e.client.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("")})
	assert.Equal(t, "MissingParameter", apiCode(t, err))

	_, err = e.client.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("bad\x00")})
	var contents *types.InvalidMessageContents
	require.ErrorAs(t, err, &contents)

	_, err = e.client.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x"), DelaySeconds: 901})
	assert.Equal(t, "InvalidParameterValue", apiCode(t, err))

	_, err = e.client.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x"),
		MessageDeduplicationId: aws.String("d")})
	assert.Equal(t, "InvalidParameterValue", apiCode(t, err))

	_, err = e.client.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x"),
		MessageAttributes: map[string]types.MessageAttributeValue{"n": {DataType: aws.String("Number"), StringValue: aws.String("one")}}})
	assert.Equal(t, "InvalidParameterValue", apiCode(t, err))
}

func TestSendMessageBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.createQueue("jobs", nil)

	entries := make([]types.SendMessageBatchRequestEntry, 10)
	for i := range entries {
		entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String("e" + strconv.Itoa(i)), MessageBody: aws.String("body " + strconv.Itoa(i))}
	}
	out, err := e.client.SendMessageBatch(e.ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
	require.NoError(t, err) // the SDK has verified every MD5OfMessageBody
	assert.Len(t, out.Successful, 10)
	assert.Empty(t, out.Failed)
	ids := map[string]bool{}
	for _, s := range out.Successful {
		ids[aws.ToString(s.MessageId)] = true
	}
	assert.Len(t, ids, 10)
	e.requireCounts(url, 10, 0, 0)

	// Entry-level failures leave the other entries alone.
	out, err = e.client.SendMessageBatch(e.ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("ok"), MessageBody: aws.String("fine")},
		{Id: aws.String("empty"), MessageBody: aws.String("")},
		{Id: aws.String("delayed"), MessageBody: aws.String("later"), DelaySeconds: 30},
		{Id: aws.String("toolong"), MessageBody: aws.String("x"), DelaySeconds: 901},
	}})
	require.NoError(t, err)
	require.Len(t, out.Successful, 2)
	require.Len(t, out.Failed, 2)
	failed := map[string]types.BatchResultErrorEntry{}
	for _, f := range out.Failed {
		failed[aws.ToString(f.Id)] = f
	}
	assert.Equal(t, "MissingParameter", aws.ToString(failed["empty"].Code))
	assert.True(t, failed["empty"].SenderFault)
	assert.Equal(t, "InvalidParameterValue", aws.ToString(failed["toolong"].Code))
	e.requireCounts(url, 11, 0, 1)

	// Request-level failures.
	eleven := append(entries, types.SendMessageBatchRequestEntry{Id: aws.String("e10"), MessageBody: aws.String("x")})
	_, err = e.client.SendMessageBatch(e.ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: eleven})
	var tooMany *types.TooManyEntriesInBatchRequest
	require.ErrorAs(t, err, &tooMany)

	_, err = e.client.SendMessageBatch(e.ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String("x")}, {Id: aws.String("a"), MessageBody: aws.String("y")},
	}})
	var notDistinct *types.BatchEntryIdsNotDistinct
	require.ErrorAs(t, err, &notDistinct)

	_, err = e.client.SendMessageBatch(e.ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.SendMessageBatchRequestEntry{}})
	var empty *types.EmptyBatchRequest
	require.ErrorAs(t, err, &empty)

	_, err = e.client.SendMessageBatch(e.ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("bad id!"), MessageBody: aws.String("x")},
	}})
	var badID *types.InvalidBatchEntryId
	require.ErrorAs(t, err, &badID)

	big := strings.Repeat("x", 200*1024)
	var bigEntries []types.SendMessageBatchRequestEntry
	for i := range 6 {
		bigEntries = append(bigEntries, types.SendMessageBatchRequestEntry{Id: aws.String("b" + strconv.Itoa(i)), MessageBody: aws.String(big)})
	}
	_, err = e.client.SendMessageBatch(e.ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: bigEntries})
	var tooLong *types.BatchRequestTooLong
	require.ErrorAs(t, err, &tooLong)
	e.requireCounts(url, 11, 0, 1)
}

func TestReceiveUpToTen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.createQueue("jobs", nil)
	for i := range 25 {
		e.send(url, "m"+strconv.Itoa(i))
	}
	seen := map[string]bool{}
	for _, want := range []int{10, 10, 5, 0} {
		msgs := e.receive(url, 10, 0)
		require.Len(t, msgs, want)
		for _, m := range msgs {
			require.False(t, seen[aws.ToString(m.MessageId)], "delivered twice")
			seen[aws.ToString(m.MessageId)] = true
		}
	}
	assert.Len(t, seen, 25)

	// Default is one message.
	url2 := e.createQueue("two", nil)
	e.send(url2, "a")
	e.send(url2, "b")
	out, err := e.client.ReceiveMessage(e.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url2)})
	require.NoError(t, err)
	assert.Len(t, out.Messages, 1)
	assert.Equal(t, "a", aws.ToString(out.Messages[0].Body), "delivery follows send order")

	for _, in := range []*sqs.ReceiveMessageInput{
		{QueueUrl: aws.String(url), MaxNumberOfMessages: 11},
		{QueueUrl: aws.String(url), WaitTimeSeconds: 21},
		{QueueUrl: aws.String(url), VisibilityTimeout: 43201},
		{QueueUrl: aws.String(url), MaxNumberOfMessages: -1},
	} {
		_, err := e.client.ReceiveMessage(e.ctx, in)
		assert.Equal(t, "InvalidParameterValue", apiCode(t, err))
	}
}

func TestLongPollReturnsWhenMessageArrives(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.createQueue("jobs", nil)

	type result struct {
		msgs []types.Message
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		out, err := e.client.ReceiveMessage(e.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 20})
		r := result{err: err, took: time.Since(start)}
		if out != nil {
			r.msgs = out.Messages
		}
		done <- r
	}()
	e.waitForPoller("jobs", 1)
	id := e.send(url, "wake up")

	select {
	case r := <-done:
		require.NoError(t, r.err)
		require.Len(t, r.msgs, 1)
		assert.Equal(t, id, aws.ToString(r.msgs[0].MessageId))
		assert.Less(t, r.took, 5*time.Second)
	case <-time.After(5 * time.Second):
		require.Fail(t, "long poll did not return after a message was sent")
	}
}

func TestLongPollQueueDefaultWaitTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.createQueue("jobs", map[string]string{"ReceiveMessageWaitTimeSeconds": "20"})
	done := make(chan []types.Message, 1)
	go func() {
		// No WaitTimeSeconds: the queue attribute makes this a long poll.
		out, err := e.client.ReceiveMessage(e.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url)})
		assert.NoError(t, err)
		if out != nil {
			done <- out.Messages
		} else {
			done <- nil
		}
	}()
	e.waitForPoller("jobs", 1)
	e.send(url, "x")
	select {
	case msgs := <-done:
		assert.Len(t, msgs, 1)
	case <-time.After(5 * time.Second):
		require.Fail(t, "long poll did not return")
	}
}

func TestLongPollTimesOutEmpty(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.createQueue("jobs", nil)
	start := time.Now()
	msgs := e.receive(url, 10, 1)
	took := time.Since(start)
	assert.Empty(t, msgs)
	assert.GreaterOrEqual(t, took, 900*time.Millisecond)
	assert.Less(t, took, 3*time.Second)
}

func TestLongPollWakesOnVisibilityExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // real clock: the poller must wake when the deadline passes
	url := e.createQueue("jobs", map[string]string{"VisibilityTimeout": "1"})
	id := e.send(url, "x")
	e.receiveOne(url)

	start := time.Now()
	msgs := e.receive(url, 1, 10)
	took := time.Since(start)
	require.Len(t, msgs, 1)
	assert.Equal(t, id, aws.ToString(msgs[0].MessageId))
	assert.Equal(t, "2", msgs[0].Attributes["ApproximateReceiveCount"])
	assert.Less(t, took, 3*time.Second)
}

func TestLongPollWakesOnInjectedClock(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	e := newEnv(t, fakesqs.WithClock(clock.Now))
	url := e.createQueue("jobs", nil)
	_, err := e.client.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x"), DelaySeconds: 600})
	require.NoError(t, err)

	done := make(chan []types.Message, 1)
	go func() {
		out, err := e.client.ReceiveMessage(e.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 20})
		assert.NoError(t, err)
		if out != nil {
			done <- out.Messages
		} else {
			done <- nil
		}
	}()
	e.waitForPoller("jobs", 1)
	clock.Advance(10 * time.Minute)
	select {
	case msgs := <-done:
		assert.Len(t, msgs, 1)
	case <-time.After(5 * time.Second):
		require.Fail(t, "long poll did not notice the delay expiring on the injected clock")
	}
}

func TestLongPollManyWaitersEachGetOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.createQueue("jobs", nil)
	const pollers = 8
	got := make(chan string, pollers)
	for range pollers {
		go func() {
			out, err := e.client.ReceiveMessage(e.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 20})
			if assert.NoError(t, err) && assert.Len(t, out.Messages, 1) {
				got <- aws.ToString(out.Messages[0].Body)
			}
		}()
	}
	e.waitForPoller("jobs", pollers)
	entries := make([]types.SendMessageBatchRequestEntry, pollers)
	for i := range entries {
		entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(strconv.Itoa(i))}
	}
	_, err := e.client.SendMessageBatch(e.ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
	require.NoError(t, err)
	seen := map[string]bool{}
	for range pollers {
		select {
		case b := <-got:
			assert.False(t, seen[b])
			seen[b] = true
		case <-time.After(5 * time.Second):
			require.Failf(t, "not every poller received a message", "only %d of %d did", len(seen), pollers)
		}
	}
}

func TestLongPollCancelledByClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.createQueue("jobs", nil)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() {
		_, err := e.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 20})
		done <- err
	}()
	e.waitForPoller("jobs", 1)
	cancel()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		require.Fail(t, "cancelled receive did not return")
	}
	// The server notices the disconnect and stops waiting.
	require.Eventually(t, func() bool { return e.srv.Waiters("jobs") == 0 }, 5*time.Second, time.Millisecond)
	// Nothing was taken on behalf of the departed client.
	e.send(url, "x")
	e.requireCounts(url, 1, 0, 0)
}

func TestDeleteQueueEndsLongPolls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.createQueue("jobs", nil)
	done := make(chan error, 1)
	go func() {
		_, err := e.client.ReceiveMessage(e.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 20})
		done <- err
	}()
	e.waitForPoller("jobs", 1)
	_, err := e.client.DeleteQueue(e.ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)})
	require.NoError(t, err)
	select {
	case err := <-done:
		var missing *types.QueueDoesNotExist
		assert.ErrorAs(t, err, &missing)
	case <-time.After(5 * time.Second):
		require.Fail(t, "long poll survived queue deletion")
	}
}

func TestVisibilityTimeout(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	e := newEnv(t, fakesqs.WithClock(clock.Now))
	url := e.createQueue("jobs", map[string]string{"VisibilityTimeout": "30"})
	id := e.send(url, "x")

	m := e.receiveOne(url)
	assert.Equal(t, id, aws.ToString(m.MessageId))
	assert.Empty(t, e.receive(url, 10, 0))
	e.requireCounts(url, 0, 1, 0)

	clock.Advance(29 * time.Second)
	assert.Empty(t, e.receive(url, 10, 0))
	clock.Advance(time.Second)
	e.requireCounts(url, 1, 0, 0)
	m2 := e.receiveOne(url)
	assert.Equal(t, id, aws.ToString(m2.MessageId))
	assert.Equal(t, "2", m2.Attributes["ApproximateReceiveCount"])
	assert.NotEqual(t, aws.ToString(m.ReceiptHandle), aws.ToString(m2.ReceiptHandle), "every receive issues a new handle")

	// ChangeMessageVisibility(0) makes it visible at once.
	_, err := e.client.ChangeMessageVisibility(e.ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: m2.ReceiptHandle, VisibilityTimeout: 0,
	})
	require.NoError(t, err)
	m3 := e.receiveOne(url)
	assert.Equal(t, "3", m3.Attributes["ApproximateReceiveCount"])

	// Extending keeps it hidden past the queue's timeout.
	_, err = e.client.ChangeMessageVisibility(e.ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: m3.ReceiptHandle, VisibilityTimeout: 100,
	})
	require.NoError(t, err)
	clock.Advance(99 * time.Second)
	assert.Empty(t, e.receive(url, 1, 0))
	clock.Advance(time.Second)
	m4 := e.receiveOne(url)

	// A per-receive override replaces the queue timeout for that receive.
	_, err = e.client.ChangeMessageVisibility(e.ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: m4.ReceiptHandle, VisibilityTimeout: 0,
	})
	require.NoError(t, err)
	out, err := e.client.ReceiveMessage(e.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), VisibilityTimeout: 5})
	require.NoError(t, err)
	require.Len(t, out.Messages, 1)
	clock.Advance(5 * time.Second)
	m5 := e.receiveOne(url)

	// The total may not exceed 12 hours from the receive.
	_, err = e.client.ChangeMessageVisibility(e.ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: m5.ReceiptHandle, VisibilityTimeout: 43200,
	})
	require.NoError(t, err)
	clock.Advance(time.Hour)
	_, err = e.client.ChangeMessageVisibility(e.ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: m5.ReceiptHandle, VisibilityTimeout: 43200,
	})
	assert.Equal(t, "InvalidParameterValue", apiCode(t, err))
	_, err = e.client.ChangeMessageVisibility(e.ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: m5.ReceiptHandle, VisibilityTimeout: 43201,
	})
	assert.Equal(t, "InvalidParameterValue", apiCode(t, err))
}

func TestChangeMessageVisibilityBatch(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	e := newEnv(t, fakesqs.WithClock(clock.Now))
	url := e.createQueue("jobs", nil)
	e.send(url, "a")
	e.send(url, "b")
	msgs := e.receive(url, 10, 0)
	require.Len(t, msgs, 2)
	out, err := e.client.ChangeMessageVisibilityBatch(e.ctx, &sqs.ChangeMessageVisibilityBatchInput{
		QueueUrl: aws.String(url),
		Entries: []types.ChangeMessageVisibilityBatchRequestEntry{
			{Id: aws.String("a"), ReceiptHandle: msgs[0].ReceiptHandle, VisibilityTimeout: 0},
			{Id: aws.String("b"), ReceiptHandle: msgs[1].ReceiptHandle, VisibilityTimeout: 300},
			{Id: aws.String("bogus"), ReceiptHandle: aws.String("bogus"), VisibilityTimeout: 0},
		},
	})
	require.NoError(t, err)
	assert.Len(t, out.Successful, 2)
	require.Len(t, out.Failed, 1)
	assert.Equal(t, "bogus", aws.ToString(out.Failed[0].Id))
	assert.Equal(t, "ReceiptHandleIsInvalid", aws.ToString(out.Failed[0].Code))
	e.requireCounts(url, 1, 1, 0)
	clock.Advance(299 * time.Second)
	e.requireCounts(url, 1, 1, 0)
	clock.Advance(time.Second)
	e.requireCounts(url, 2, 0, 0)
}

func TestDeleteMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.createQueue("jobs", nil)
	e.send(url, "x")
	m := e.receiveOne(url)
	_, err := e.client.DeleteMessage(e.ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
	require.NoError(t, err)
	e.requireCounts(url, 0, 0, 0)
	// Deleting again is harmless.
	_, err = e.client.DeleteMessage(e.ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
	require.NoError(t, err)

	// Changing the visibility of a deleted message is an error.
	_, err = e.client.ChangeMessageVisibility(e.ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 10,
	})
	assert.Equal(t, "InvalidParameterValue", apiCode(t, err))

	// Malformed handles and handles of another queue are invalid.
	var invalid *types.ReceiptHandleIsInvalid
	_, err = e.client.DeleteMessage(e.ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: aws.String("garbage")})
	require.ErrorAs(t, err, &invalid)
	_, err = e.client.ChangeMessageVisibility(e.ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: aws.String("garbage"), VisibilityTimeout: 10,
	})
	require.ErrorAs(t, err, &invalid)
	other := e.createQueue("other", nil)
	e.send(other, "y")
	om := e.receiveOne(other)
	_, err = e.client.DeleteMessage(e.ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: om.ReceiptHandle})
	require.ErrorAs(t, err, &invalid)
}

func TestDeleteMessageBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.createQueue("jobs", nil)
	for i := range 5 {
		e.send(url, strconv.Itoa(i))
	}
	msgs := e.receive(url, 10, 0)
	require.Len(t, msgs, 5)
	entries := []types.DeleteMessageBatchRequestEntry{}
	for i, m := range msgs[:4] {
		entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: aws.String("d" + strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
	}
	entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: aws.String("bad"), ReceiptHandle: aws.String("nope")})
	out, err := e.client.DeleteMessageBatch(e.ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
	require.NoError(t, err)
	assert.Len(t, out.Successful, 4)
	require.Len(t, out.Failed, 1)
	assert.Equal(t, "bad", aws.ToString(out.Failed[0].Id))
	assert.Equal(t, "ReceiptHandleIsInvalid", aws.ToString(out.Failed[0].Code))
	assert.True(t, out.Failed[0].SenderFault)
	e.requireCounts(url, 0, 1, 0)

	_, err = e.client.DeleteMessageBatch(e.ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.DeleteMessageBatchRequestEntry{
		{Id: aws.String("x"), ReceiptHandle: msgs[4].ReceiptHandle}, {Id: aws.String("x"), ReceiptHandle: msgs[4].ReceiptHandle},
	}})
	var notDistinct *types.BatchEntryIdsNotDistinct
	require.ErrorAs(t, err, &notDistinct)
}

func TestStaleReceiptHandle(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	e := newEnv(t, fakesqs.WithClock(clock.Now))
	url := e.createQueue("jobs", map[string]string{"VisibilityTimeout": "10"})
	e.send(url, "x")
	first := e.receiveOne(url)
	clock.Advance(10 * time.Second)
	second := e.receiveOne(url)
	require.NotEqual(t, aws.ToString(first.ReceiptHandle), aws.ToString(second.ReceiptHandle))

	// The old handle is accepted but has no effect.
	_, err := e.client.ChangeMessageVisibility(e.ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: first.ReceiptHandle, VisibilityTimeout: 0,
	})
	require.NoError(t, err)
	e.requireCounts(url, 0, 1, 0)
	_, err = e.client.DeleteMessage(e.ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: first.ReceiptHandle})
	require.NoError(t, err)
	e.requireCounts(url, 0, 1, 0)

	// The current handle works.
	_, err = e.client.DeleteMessage(e.ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: second.ReceiptHandle})
	require.NoError(t, err)
	e.requireCounts(url, 0, 0, 0)
}

func TestDeleteAfterVisibilityExpired(t *testing.T) {
	t.Parallel()
	// The latest handle still deletes a message whose visibility timeout ran
	// out, as long as nobody received it again.
	clock := newFakeClock()
	e := newEnv(t, fakesqs.WithClock(clock.Now))
	url := e.createQueue("jobs", map[string]string{"VisibilityTimeout": "10"})
	e.send(url, "x")
	m := e.receiveOne(url)
	clock.Advance(time.Minute)
	e.requireCounts(url, 1, 0, 0)
	_, err := e.client.DeleteMessage(e.ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
	require.NoError(t, err)
	e.requireCounts(url, 0, 0, 0)

	// But its visibility can no longer be changed.
	e.send(url, "y")
	m = e.receiveOne(url)
	clock.Advance(time.Minute)
	_, err = e.client.ChangeMessageVisibility(e.ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 30,
	})
	assert.Equal(t, "InvalidParameterValue", apiCode(t, err))
}

func TestRedriveToDeadLetterQueue(t *testing.T) {
	t.Parallel()
	for _, count := range []string{`2`, `"2"`} {
		t.Run("maxReceiveCount="+count, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			e := newEnv(t, fakesqs.WithClock(clock.Now))
			dlqURL := e.createQueue("jobs-dlq", nil)
			attrs, err := e.client.GetQueueAttributes(e.ctx, &sqs.GetQueueAttributesInput{
				QueueUrl: aws.String(dlqURL), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
			})
			require.NoError(t, err)
			dlqARN := attrs.Attributes["QueueArn"]
			policy := `{"deadLetterTargetArn":"` + dlqARN + `","maxReceiveCount":` + count + `}`
			url := e.createQueue("jobs", map[string]string{"VisibilityTimeout": "30", "RedrivePolicy": policy})

			got, err := e.client.GetQueueAttributes(e.ctx, &sqs.GetQueueAttributesInput{
				QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy},
			})
			require.NoError(t, err)
			assert.JSONEq(t, `{"deadLetterTargetArn":"`+dlqARN+`","maxReceiveCount":2}`, got.Attributes["RedrivePolicy"])

			id := e.send(url, "poison")
			keep := e.send(url, "fine")
			for attempt, want := range []int{2, 1} { // "fine" is deleted after the first
				msgs := e.receive(url, 10, 0)
				require.Len(t, msgs, want, "attempt %d", attempt+1)
				for _, m := range msgs {
					if aws.ToString(m.MessageId) == keep {
						_, err := e.client.DeleteMessage(e.ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
						require.NoError(t, err)
						keep = ""
					}
				}
				clock.Advance(30 * time.Second)
			}
			// Received twice already: the next receive moves it instead.
			assert.Empty(t, e.receive(url, 10, 0))
			e.requireCounts(url, 0, 0, 0)
			e.requireCounts(dlqURL, 1, 0, 0)

			m := e.receiveOne(dlqURL)
			assert.Equal(t, id, aws.ToString(m.MessageId))
			assert.Equal(t, "poison", aws.ToString(m.Body))
			assert.Equal(t, "3", m.Attributes["ApproximateReceiveCount"])
			assert.Equal(t, "arn:aws:sqs:us-east-1:000000000000:jobs", m.Attributes["DeadLetterQueueSourceArn"])

			src, err := e.client.ListDeadLetterSourceQueues(e.ctx, &sqs.ListDeadLetterSourceQueuesInput{QueueUrl: aws.String(dlqURL)})
			require.NoError(t, err)
			assert.Equal(t, []string{url}, src.QueueUrls)

			// Removing the policy stops redrive.
			_, err = e.client.SetQueueAttributes(e.ctx, &sqs.SetQueueAttributesInput{
				QueueUrl: aws.String(url), Attributes: map[string]string{"RedrivePolicy": ""},
			})
			require.NoError(t, err)
			src, err = e.client.ListDeadLetterSourceQueues(e.ctx, &sqs.ListDeadLetterSourceQueuesInput{QueueUrl: aws.String(dlqURL)})
			require.NoError(t, err)
			assert.Empty(t, src.QueueUrls)
		})
	}
}

func TestRedriveDuringLongPoll(t *testing.T) {
	t.Parallel()
	// A long-polling receive that only finds messages due for the DLQ moves
	// them and keeps waiting rather than returning them.
	e := newEnv(t)
	e.createQueue("dlq", nil)
	url := e.createQueue("jobs", map[string]string{
		"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":1}`,
	})
	e.send(url, "x")
	m := e.receiveOne(url)
	_, err := e.client.ChangeMessageVisibility(e.ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0,
	})
	require.NoError(t, err)
	start := time.Now()
	assert.Empty(t, e.receive(url, 10, 1))
	assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond)
	e.requireCounts(e.ts.URL+"/000000000000/dlq", 1, 0, 0)
}

func TestApproximateCounts(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	e := newEnv(t, fakesqs.WithClock(clock.Now))
	url := e.createQueue("jobs", map[string]string{"VisibilityTimeout": "30"})
	for range 3 {
		e.send(url, "now")
	}
	for range 2 {
		_, err := e.client.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("later"), DelaySeconds: 60})
		require.NoError(t, err)
	}
	e.requireCounts(url, 3, 0, 2)
	e.receiveOne(url)
	e.requireCounts(url, 2, 1, 2)
	clock.Advance(30 * time.Second)
	e.requireCounts(url, 3, 0, 2)
	clock.Advance(30 * time.Second)
	e.requireCounts(url, 5, 0, 0)

	// The queue's DelaySeconds applies when the message does not set one.
	_, err := e.client.SetQueueAttributes(e.ctx, &sqs.SetQueueAttributesInput{
		QueueUrl: aws.String(url), Attributes: map[string]string{"DelaySeconds": "10"},
	})
	require.NoError(t, err)
	e.send(url, "queue delay")
	e.requireCounts(url, 5, 0, 1)
	clock.Advance(10 * time.Second)
	e.requireCounts(url, 6, 0, 0)
}

func TestMessageRetention(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	e := newEnv(t, fakesqs.WithClock(clock.Now))
	url := e.createQueue("jobs", map[string]string{"MessageRetentionPeriod": "60", "VisibilityTimeout": "10"})
	e.send(url, "old")
	e.receiveOne(url) // in flight when it expires
	clock.Advance(30 * time.Second)
	e.send(url, "young")
	e.send(url, "young")
	clock.Advance(30 * time.Second)
	e.requireCounts(url, 2, 0, 0)
	clock.Advance(30 * time.Second)
	e.requireCounts(url, 0, 0, 0)
}

func TestConcurrentSendersAndReceivers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.createQueue("load", map[string]string{"VisibilityTimeout": "600"})
	const (
		senders   = 4
		receivers = 8
		perSender = 1250 // 5,000 messages in all
		total     = senders * perSender
	)

	seen := make(chan string, total*2)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()

	sendErr := make(chan error, senders)
	for s := range senders {
		go func() {
			for i := 0; i < perSender; i += 10 {
				entries := make([]types.SendMessageBatchRequestEntry, 0, 10)
				for j := i; j < i+10 && j < perSender; j++ {
					entries = append(entries, types.SendMessageBatchRequestEntry{
						Id:          aws.String(strconv.Itoa(j)),
						MessageBody: aws.String(strconv.Itoa(s) + "-" + strconv.Itoa(j)),
					})
				}
				out, err := e.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
				if err == nil && len(out.Failed) > 0 {
					err = errors.New(aws.ToString(out.Failed[0].Message))
				}
				if err != nil {
					sendErr <- err
					return
				}
			}
			sendErr <- nil
		}()
	}

	recvDone := make(chan error, receivers)
	for range receivers {
		go func() {
			for {
				out, err := e.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
					QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
				})
				if ctx.Err() != nil {
					recvDone <- nil
					return
				}
				if err != nil {
					recvDone <- err
					return
				}
				if len(out.Messages) == 0 {
					continue
				}
				entries := make([]types.DeleteMessageBatchRequestEntry, len(out.Messages))
				for i, m := range out.Messages {
					entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
				}
				del, err := e.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
				if err == nil && len(del.Failed) > 0 {
					err = errors.New(aws.ToString(del.Failed[0].Message))
				}
				if err != nil {
					recvDone <- err
					return
				}
				// Reported only once deleted, so that when every message
				// has been seen the queue must be empty.
				for _, m := range out.Messages {
					seen <- aws.ToString(m.Body)
				}
			}
		}()
	}

	for range senders {
		require.NoError(t, <-sendErr)
	}
	counts := make(map[string]int, total)
	deadline := time.After(60 * time.Second)
	for len(counts) < total {
		select {
		case b := <-seen:
			counts[b]++
			require.Equal(t, 1, counts[b], "message %s delivered twice", b)
		case err := <-recvDone:
			require.Failf(t, "receiver stopped early", "%v", err)
		case <-deadline:
			require.Failf(t, "not every message was received", "received %d of %d", len(counts), total)
		}
	}
	cancel()
	for range receivers {
		require.NoError(t, <-recvDone)
	}
	close(seen)
	for b := range seen {
		counts[b]++
		require.Equal(t, 1, counts[b], "message %s delivered twice", b)
	}
	for s := range senders {
		for j := range perSender {
			require.Equal(t, 1, counts[strconv.Itoa(s)+"-"+strconv.Itoa(j)])
		}
	}
	e.requireCounts(url, 0, 0, 0)
}

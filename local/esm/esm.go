// Package esm is the local stand-in for Lambda's event source mappings and EventBridge
// schedules: it long-polls an SQS queue (the in-repo emulator, through the real SDK client),
// hands batches to an SQS handler with Lambda's semantics (batch size, batching window,
// ReportBatchItemFailures, function timeout), and calls scheduled handlers on a timer.
// Invocations run in-process and concurrently up to a maximum, the local analogue of a
// function's reserved concurrency / ScalingConfig.MaximumConcurrency. The local stack takes these
// settings from template.yaml.
package esm

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Handler is an SQS-triggered function.
type Handler func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error)

// SQSSource feeds one queue to one handler.
type SQSSource struct {
	Client   *sqs.Client
	QueueURL string
	QueueARN string
	Handler  Handler
	// BatchSize is the most records per invocation; default 10 (SQS's receive maximum).
	BatchSize int
	// MaxConcurrency caps concurrent invocations; default 10.
	MaxConcurrency int
	// BatchingWindow is how long a poller waits to fill a batch once it has received something
	// (MaximumBatchingWindowInSeconds); default 0, hand over at once.
	BatchingWindow time.Duration
	// ReportBatchItemFailures: the handler's batchItemFailures are honoured, so only they come
	// back. Without it, as on Lambda, a successful invocation deletes the whole batch.
	ReportBatchItemFailures bool
	// RetryFailedAfter makes failed items visible again after this long instead of after the
	// queue's visibility timeout (which is what Lambda does, and what 0 means).
	RetryFailedAfter time.Duration
	// Timeout bounds each invocation like a function timeout; default 900s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Run polls until ctx ends. Each poller holds one invocation slot while it waits, so that a
// received batch is always handed to an invocation at once (a poller never receives messages it
// cannot run).
func (s *SQSSource) Run(ctx context.Context) {
	if s.BatchSize <= 0 || s.BatchSize > 10 {
		s.BatchSize = 10
	}
	if s.MaxConcurrency <= 0 {
		s.MaxConcurrency = 10
	}
	if s.Timeout <= 0 {
		s.Timeout = 900 * time.Second
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	var wg sync.WaitGroup
	for range s.MaxConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.poll(ctx)
		}()
	}
	wg.Wait()
}

// pollWaitSeconds is each poller's long-poll wait, the 20 s SQS allows at most, as Lambda's own
// pollers use: a message wakes a waiting receive at once, so a longer wait costs no latency and
// makes far fewer empty (billed) receives while the queue is idle. Stopping cancels the wait.
const pollWaitSeconds = 20

func (s *SQSSource) poll(ctx context.Context) {
	for ctx.Err() == nil {
		out, err := s.Client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    &s.QueueURL,
			MaxNumberOfMessages:         int32(s.BatchSize),
			WaitTimeSeconds:             pollWaitSeconds,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.Logger.Warn("esm: receive", "queue", s.QueueURL, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		if len(out.Messages) > 0 {
			s.invoke(ctx, s.fill(ctx, out.Messages))
		}
	}
}

// fill receives more messages into a short batch until it is full or the batching window,
// counted from the first receive, has passed. SQS waits in whole seconds, so the window may be
// overrun by under a second, which Lambda's does too.
func (s *SQSSource) fill(ctx context.Context, msgs []types.Message) []types.Message {
	end := time.Now().Add(s.BatchingWindow)
	for len(msgs) < s.BatchSize && ctx.Err() == nil {
		left := time.Until(end)
		if left <= 0 {
			break
		}
		out, err := s.Client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    &s.QueueURL,
			MaxNumberOfMessages:         int32(s.BatchSize - len(msgs)),
			WaitTimeSeconds:             min(int32((left+time.Second-1)/time.Second), 20),
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		})
		if err != nil {
			break // hand over what there is; the poll loop reports a failing queue
		}
		msgs = append(msgs, out.Messages...)
	}
	return msgs
}

func (s *SQSSource) invoke(ctx context.Context, msgs []types.Message) {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(msgs))}
	for i, m := range msgs {
		attrs := map[string]string{}
		for k, v := range m.Attributes {
			attrs[k] = v
		}
		ev.Records[i] = events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
			Body: aws.ToString(m.Body), Md5OfBody: aws.ToString(m.MD5OfBody), Attributes: attrs, EventSource: "aws:sqs",
			EventSourceARN: s.QueueARN, AWSRegion: "us-east-1"}
	}
	ictx, cancel := context.WithTimeout(ctx, s.Timeout)
	resp, err := s.safeCall(ictx, ev)
	cancel()
	if err != nil {
		// A failed invocation leaves every message to reappear after its visibility timeout, as
		// Lambda does.
		s.Logger.Warn("esm: invocation failed", "queue", s.QueueURL, "err", err)
		return
	}
	failed := map[string]bool{}
	if s.ReportBatchItemFailures {
		for _, f := range resp.BatchItemFailures {
			failed[f.ItemIdentifier] = true
		}
	}
	var entries []types.DeleteMessageBatchRequestEntry
	var retry []types.ChangeMessageVisibilityBatchRequestEntry
	for i, m := range msgs {
		if failed[aws.ToString(m.MessageId)] {
			if s.RetryFailedAfter > 0 {
				retry = append(retry, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)),
					ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: int32((s.RetryFailedAfter + time.Second - 1) / time.Second)})
			}
			continue
		}
		entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
	}
	dctx := context.WithoutCancel(ctx)
	if len(entries) > 0 {
		if _, err := s.Client.DeleteMessageBatch(dctx, &sqs.DeleteMessageBatchInput{QueueUrl: &s.QueueURL, Entries: entries}); err != nil {
			s.Logger.Warn("esm: delete", "queue", s.QueueURL, "err", err)
		}
	}
	if len(retry) > 0 {
		if _, err := s.Client.ChangeMessageVisibilityBatch(dctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &s.QueueURL, Entries: retry}); err != nil {
			s.Logger.Warn("esm: change visibility", "queue", s.QueueURL, "err", err)
		}
	}
}

// safeCall turns a handler panic into a failed invocation, as the Lambda runtime does.
func (s *SQSSource) safeCall(ctx context.Context, ev events.SQSEvent) (resp events.SQSEventResponse, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = errors.New("handler panicked")
			s.Logger.Error("esm: handler panic", "panic", v)
		}
	}()
	return s.Handler(ctx, ev)
}

// Schedule calls fn every interval (and once at start) until ctx ends, never overlapping itself.
func Schedule(ctx context.Context, every time.Duration, name string, log *slog.Logger, fn func(ctx context.Context) error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			log.Warn("scheduled invocation failed", "function", name, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

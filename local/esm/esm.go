// Package esm is the local stand-in for Lambda's event source mappings and EventBridge
// schedules: it long-polls an SQS queue (the in-repo emulator, through the real SDK client),
// hands batches to an SQS handler with ReportBatchItemFailures semantics, and calls scheduled
// handlers on a timer. Invocations run in-process and concurrently up to a maximum, the local
// analogue of a function's reserved concurrency / ScalingConfig.MaximumConcurrency.
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

func (s *SQSSource) poll(ctx context.Context) {
	for ctx.Err() == nil {
		out, err := s.Client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    &s.QueueURL,
			MaxNumberOfMessages:         int32(s.BatchSize),
			WaitTimeSeconds:             2,
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
			s.invoke(ctx, out.Messages)
		}
	}
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
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	var entries []types.DeleteMessageBatchRequestEntry
	var retry []types.ChangeMessageVisibilityBatchRequestEntry
	for i, m := range msgs {
		if failed[aws.ToString(m.MessageId)] {
			// Lambda leaves failed items for the visibility timeout; locally we bring them back
			// after a short pause so tests and demos do not wait minutes.
			retry = append(retry, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)),
				ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 1})
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

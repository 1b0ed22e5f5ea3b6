// Package sqsqueue sends fusillade's messages to SQS. Work messages carry only (request id,
// attempt), never a request body: the worker reads the body from Postgres after its guarded
// claimed → processing write, so a duplicate message cannot run anything twice.
package sqsqueue

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/fusillade/fusillade/shared/domain"
)

// maxBatch is SQS's limit on entries per SendMessageBatch.
const maxBatch = 10

// NewClient builds an SQS client; endpoint is for local emulators only.
func NewClient(cfg aws.Config, endpoint string) *sqs.Client {
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
}

// Queue is one SQS queue.
type Queue struct {
	client *sqs.Client
	url    string
}

// New returns a queue for url.
func New(client *sqs.Client, url string) *Queue { return &Queue{client: client, url: url} }

// SendWork enqueues work in batches of ten, the batches concurrently. It returns the entries that
// SQS did not accept (so the caller can give their claims back) and an error only when nothing
// could be attempted.
func (q *Queue) SendWork(ctx context.Context, work []domain.Work) (failed []domain.Work, err error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	for start := 0; start < len(work); start += maxBatch {
		chunk := work[start:min(start+maxBatch, len(work))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			bad, err := q.sendBatch(ctx, chunk)
			mu.Lock()
			defer mu.Unlock()
			failed = append(failed, bad...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	if len(failed) == len(work) && firstErr != nil {
		return failed, firstErr
	}
	return failed, nil
}

func (q *Queue) sendBatch(ctx context.Context, work []domain.Work) ([]domain.Work, error) {
	entries := make([]types.SendMessageBatchRequestEntry, len(work))
	for i, w := range work {
		body, _ := json.Marshal(message{RequestID: w.RequestID, Attempt: w.Attempt})
		entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(string(body))}
	}
	out, err := q.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &q.url, Entries: entries})
	if err != nil {
		return work, fmt.Errorf("sqs: send batch: %w", err)
	}
	var bad []domain.Work
	for _, f := range out.Failed {
		i, err := strconv.Atoi(aws.ToString(f.Id))
		if err == nil && i >= 0 && i < len(work) {
			bad = append(bad, work[i])
		}
	}
	return bad, nil
}

// Send enqueues one JSON message.
func (q *Queue) Send(ctx context.Context, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &q.url, MessageBody: aws.String(string(body))}); err != nil {
		return fmt.Errorf("sqs: send: %w", err)
	}
	return nil
}

// SendDispatch enqueues a "dispatch model" message that comes due after delay. Workers send one when
// they schedule a retry, so the request is claimed when its back-off ends rather than at the next
// scheduled dispatch.
//
// SQS delays are whole seconds (at most 15 minutes) while back-offs are jittered fractions. The
// delay is rounded down and the message carries the exact time it is due, which the receiver
// waits for (see domain.Dispatch.Wait): rounding to the nearest second delivered half of them before the
// back-off ended, when the claim found nothing to take and the retry sat until the next dispatch;
// rounding up would start retries up to a second late.
func (q *Queue) SendDispatch(ctx context.Context, model string, delay time.Duration) error {
	delay = max(delay, 0)
	body, _ := json.Marshal(message{Dispatch: model, Due: time.Now().Add(delay).UnixNano()})
	secs := int32(min(delay/time.Second, 900))
	_, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &q.url, MessageBody: aws.String(string(body)), DelaySeconds: secs})
	if err != nil {
		return fmt.Errorf("sqs: send dispatch: %w", err)
	}
	return nil
}

// message is the wire form of a work-queue message: either a claimed request or a due dispatch of a model.
type message struct {
	RequestID string `json:"r,omitempty"`
	Attempt   int    `json:"a,omitempty"`
	Dispatch  string `json:"k,omitempty"` // the model to dispatch (the key predates the name)
	Due       int64  `json:"t,omitempty"` // a dispatch's due time, Unix nanoseconds; 0 = now
}

// ParseMessage decodes a work-queue message body into a claimed request or, for a dispatch message, the
// model to refill and when.
func ParseMessage(body string) (w domain.Work, due domain.Dispatch, err error) {
	var m message
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return w, due, fmt.Errorf("sqs: malformed work message: %w", err)
	}
	if m.Dispatch != "" {
		due.Model = m.Dispatch
		if m.Due != 0 {
			due.Due = time.Unix(0, m.Due)
		}
		return w, due, nil
	}
	if m.RequestID == "" || m.Attempt <= 0 {
		return w, due, fmt.Errorf("sqs: malformed work message: no request id or attempt")
	}
	return domain.Work{RequestID: m.RequestID, Attempt: m.Attempt}, due, nil
}

// PopulateMessage asks the populate function to expand a batch's input file.
type PopulateMessage struct {
	BatchID string `json:"batch_id"`
}

// SendPopulate asks the populate function to expand batchID's input file.
func (q *Queue) SendPopulate(ctx context.Context, batchID string) error {
	return q.Send(ctx, PopulateMessage{BatchID: batchID})
}

// ParsePopulate decodes a populate-queue message body into the batch to expand.
func ParsePopulate(body string) (batchID string, err error) {
	var m PopulateMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return "", fmt.Errorf("sqs: malformed populate message: %w", err)
	}
	if m.BatchID == "" {
		return "", fmt.Errorf("sqs: malformed populate message: no batch id")
	}
	return m.BatchID, nil
}

// Reachable reports whether the queue answers: one GetQueueAttributes of a single attribute
// (the readiness check; the API's role is granted sqs:GetQueueAttributes on the work queue).
func (q *Queue) Reachable(ctx context.Context) error {
	_, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &q.url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		return fmt.Errorf("queue attributes: %w", err)
	}
	return nil
}

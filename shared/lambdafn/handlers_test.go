package lambdafn_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/lambdafn"
)

var discard = slog.New(slog.DiscardHandler)

// processor is a function-field fake of lambdafn.Processor; an unset field fails the test.
type processor struct {
	t          *testing.T
	ProcessFn  func(ctx context.Context, work []domain.Work) []error
	DispatchFn func(ctx context.Context, models ...string) error
}

func (p *processor) Process(ctx context.Context, work []domain.Work) []error {
	if p.ProcessFn == nil {
		assert.Fail(p.t, "unexpected call to Process")
		return make([]error, len(work))
	}
	return p.ProcessFn(ctx, work)
}

func (p *processor) Dispatch(ctx context.Context, models ...string) error {
	if p.DispatchFn == nil {
		assert.Fail(p.t, "unexpected call to Dispatch")
		return nil
	}
	return p.DispatchFn(ctx, models...)
}

type populator struct {
	t          *testing.T
	PopulateFn func(ctx context.Context, batchID string) error
}

func (p *populator) Populate(ctx context.Context, batchID string) error {
	if p.PopulateFn == nil {
		assert.Fail(p.t, "unexpected call to Populate")
		return nil
	}
	return p.PopulateFn(ctx, batchID)
}

type dispatcher struct {
	DispatchFn func(ctx context.Context) (engine.DispatchStats, error)
}

func (d dispatcher) DispatchAll(ctx context.Context) (engine.DispatchStats, error) {
	return d.DispatchFn(ctx)
}

type maintainer struct {
	MaintainFn func(ctx context.Context) (engine.MaintenanceStats, error)
}

func (s maintainer) Maintain(ctx context.Context) (engine.MaintenanceStats, error) {
	return s.MaintainFn(ctx)
}

// decodeWork reads the test's message bodies: "work <request id>", "kick <model> <due, unix
// seconds>"; anything else is malformed.
func decodeWork(body string) (domain.Work, domain.Dispatch, error) {
	f := strings.Fields(body)
	switch {
	case len(f) == 2 && f[0] == "work":
		return domain.Work{RequestID: f[1], Attempt: 1}, domain.Dispatch{}, nil
	case len(f) == 3 && f[0] == "kick":
		due, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return domain.Work{}, domain.Dispatch{}, err
		}
		return domain.Work{}, domain.Dispatch{Model: f[1], Due: time.Unix(due, 0)}, nil
	}
	return domain.Work{}, domain.Dispatch{}, fmt.Errorf("malformed message %q", body)
}

// sqsEvent builds an event of records "m1", "m2", ... with these bodies.
func sqsEvent(bodies ...string) events.SQSEvent {
	var ev events.SQSEvent
	for i, b := range bodies {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprintf("m%d", i+1), Body: b})
	}
	return ev
}

func failures(resp events.SQSEventResponse) []string {
	ids := []string{}
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

func TestWorkerReportsOnlyTheItemsWhoseProcessingFailed(t *testing.T) {
	t.Parallel()
	var got []string
	p := &processor{t: t, ProcessFn: func(_ context.Context, work []domain.Work) []error {
		errs := make([]error, len(work))
		for i, w := range work {
			got = append(got, w.RequestID)
			if w.RequestID == "r3" {
				errs[i] = errors.New("store down")
			}
		}
		return errs
	}}
	resp, err := lambdafn.Worker(p, decodeWork, discard, nil)(context.Background(),
		sqsEvent("work r1", "garbage", "work r3", "work r4"))
	require.NoError(t, err)
	assert.Equal(t, []string{"r1", "r3", "r4"}, got, "the malformed message dropped")
	// m2 is malformed: redelivering it cannot help, so it is not reported.
	assert.Equal(t, []string{"m3"}, failures(resp), "batchItemFailures")
}

func TestWorkerWaitsForItsDueDispatchesBeforeReturning(t *testing.T) {
	t.Parallel()
	processed := make(chan struct{})
	var mu sync.Mutex
	var kicked []string
	past := time.Now().Add(-time.Hour).Unix()
	p := &processor{t: t,
		ProcessFn: func(_ context.Context, work []domain.Work) []error {
			close(processed)
			return make([]error, len(work))
		},
		DispatchFn: func(_ context.Context, models ...string) error {
			<-processed // the kicks end after the work, so that returning early would miss them
			mu.Lock()
			defer mu.Unlock()
			kicked = append(kicked, models...)
			return errors.New("a failed kick is left to the scheduled dispatch")
		},
	}
	ev := sqsEvent(fmt.Sprintf("kick a %d", past+2), "work r1", fmt.Sprintf("kick b %d", past),
		fmt.Sprintf("kick a %d", past+2)) // a duplicate of the first kick
	resp, err := lambdafn.Worker(p, decodeWork, discard, nil)(context.Background(), ev)
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	// In due order, the duplicate run once, all of them before the handler returned.
	assert.Equal(t, []string{"b", "a"}, kicked, "kicked by the time the handler returned")
	assert.Empty(t, resp.BatchItemFailures, "a kick is never an item failure")
}

func TestPopulateReportsFailedBatchesAndDropsMalformedMessages(t *testing.T) {
	t.Parallel()
	var got []string
	p := &populator{t: t, PopulateFn: func(_ context.Context, id string) error {
		got = append(got, id)
		if id == "b3" {
			return errors.New("database unavailable")
		}
		return nil
	}}
	decode := func(body string) (string, error) {
		id, ok := strings.CutPrefix(body, "populate ")
		if !ok {
			return "", errors.New("malformed")
		}
		return id, nil
	}
	resp, err := lambdafn.Populate(p, decode, discard)(context.Background(),
		sqsEvent("populate b1", "{}", "populate b3", "populate b4"))
	require.NoError(t, err)
	assert.Equal(t, []string{"b1", "b3", "b4"}, got, "populated")
	assert.Equal(t, []string{"m3"}, failures(resp), "batchItemFailures")
}

func TestScheduleHandlersIgnoreTheEventAndReturnTheRunsOutcome(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// EventBridge rules send their envelope, Scheduler whatever Input was configured.
	inputs := []json.RawMessage{nil, json.RawMessage(`null`), json.RawMessage(`{"source":"aws.events","detail":{}}`), json.RawMessage(`"tick"`)}
	for _, in := range inputs {
		runs := 0
		d := lambdafn.Dispatch(dispatcher{func(context.Context) (engine.DispatchStats, error) {
			runs++
			return engine.DispatchStats{Claimed: 3, Enqueued: 2, Returned: 1}, nil
		}})
		st, err := d(ctx, in)
		assert.NoError(t, err, "dispatch on %s", in)
		assert.Equal(t, engine.DispatchStats{Claimed: 3, Enqueued: 2, Returned: 1}, st, "dispatch on %s: the run's stats", in)
		assert.Equal(t, 1, runs, "dispatch on %s", in)
		s := lambdafn.Maintenance(maintainer{func(context.Context) (engine.MaintenanceStats, error) {
			runs++
			return engine.MaintenanceStats{Rescued: 4, Finalized: 1}, nil
		}})
		sst, err := s(ctx, in)
		assert.NoError(t, err, "purge on %s", in)
		assert.Equal(t, engine.MaintenanceStats{Rescued: 4, Finalized: 1}, sst, "purge on %s: the sweep's stats", in)
		assert.Equal(t, 2, runs, "purge on %s", in)
	}
	boom := errors.New("database unavailable")
	_, err := lambdafn.Dispatch(dispatcher{func(context.Context) (engine.DispatchStats, error) {
		return engine.DispatchStats{}, boom
	}})(ctx, nil)
	assert.ErrorIs(t, err, boom, "the run's error: the invocation fails and is retried")
	_, err = lambdafn.Maintenance(maintainer{func(context.Context) (engine.MaintenanceStats, error) {
		return engine.MaintenanceStats{}, boom
	}})(ctx, nil)
	assert.ErrorIs(t, err, boom, "the sweep's error")
}

// ages records the queue ages a handler reports.
type ages struct {
	engine.NopMetrics
	mu  sync.Mutex
	got []time.Duration
}

func (a *ages) QueueAge(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, d)
}

// Each work message's wait in the queue (from its SentTimestamp) is reported; a dispatch message,
// whose wait is its delay, and a record without the attribute are not.
func TestWorkerReportsTheQueueAgeOfEachWorkMessage(t *testing.T) {
	t.Parallel()
	p := &processor{t: t, ProcessFn: func(_ context.Context, work []domain.Work) []error { return make([]error, len(work)) },
		DispatchFn: func(context.Context, ...string) error { return nil }}
	ev := sqsEvent("work r1", fmt.Sprintf("kick a %d", time.Now().Unix()), "work r2", "work r3")
	sent := time.Now().Add(-3 * time.Second)
	for i := range 3 {
		ev.Records[i].Attributes = map[string]string{"SentTimestamp": strconv.FormatInt(sent.UnixMilli(), 10)}
	}
	m := &ages{}
	_, err := lambdafn.Worker(p, decodeWork, discard, m)(context.Background(), ev)
	require.NoError(t, err)
	require.Len(t, m.got, 2, "r1 and r2; not the dispatch, not r3 without a timestamp")
	for _, d := range m.got {
		assert.GreaterOrEqual(t, d, 3*time.Second)
		assert.Less(t, d, time.Minute)
	}
}

package webhooks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

type recorded struct {
	id    string
	a     domain.WebhookAttempt
	state string
	next  time.Time
}

// fakeStore hands out its deliveries once and records what the sender writes.
type fakeStore struct {
	mu    sync.Mutex
	due   []domain.WebhookDelivery
	wrote []recorded
	// running are the deadline-risk candidates, samples their oldest progress samples, risks what
	// the sender enqueued.
	running []domain.Batch
	samples map[string]domain.ProgressSample
	risks   []domain.DeadlineRisk
}

func (f *fakeStore) DeadlineRiskCandidates(context.Context, int) ([]domain.Batch, error) {
	return f.running, nil
}

func (f *fakeStore) ProgressSince(_ context.Context, ids []string, since time.Time) (map[string]domain.ProgressSample, error) {
	out := map[string]domain.ProgressSample{}
	for _, id := range ids {
		if p, ok := f.samples[id]; ok && !p.At.Before(since) {
			out[id] = p
		}
	}
	return out, nil
}

func (f *fakeStore) EnqueueDeadlineRisk(_ context.Context, _ time.Time, risks []domain.DeadlineRisk) (int, error) {
	f.risks = append(f.risks, risks...)
	return len(risks), nil
}

func (f *fakeStore) ClaimWebhookDeliveries(_ context.Context, _, _ time.Time, max int) ([]domain.WebhookDelivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := min(max, len(f.due))
	out := f.due[:n]
	f.due = f.due[n:]
	return out, nil
}

func (f *fakeStore) RecordWebhookAttempt(_ context.Context, id string, a domain.WebhookAttempt, state string, next time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wrote = append(f.wrote, recorded{id, a, state, next})
	return true, nil
}

func (f *fakeStore) PurgeWebhookDeliveries(context.Context, time.Time, int) (int, error) {
	return 0, nil
}

func (f *fakeStore) EnqueueWebhookProgress(context.Context, time.Time, int) (int, error) {
	return 0, nil
}

// Each answer's next state: 2xx delivered, 410 failed at once, anything else retried after the
// schedule's wait for that attempt, and failed once the schedule is used up. The request is
// signed for the attempt's own timestamp.
func TestSenderOutcomes(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_767_225_600, 0)
	for _, c := range []struct {
		name    string
		status  int
		attempt int
		state   string
		wait    time.Duration
	}{
		{"2xx delivers", 204, 1, domain.DeliveryDelivered, 0},
		{"a 5xx is retried after the first wait", 500, 1, domain.DeliveryPending, time.Second},
		{"the second wait follows the second attempt", 429, 2, domain.DeliveryPending, time.Minute},
		{"a redirect is a failure", 302, 1, domain.DeliveryPending, time.Second},
		{"410 stops", 410, 1, domain.DeliveryFailed, 0},
		{"the last attempt fails for good", 500, 3, domain.DeliveryFailed, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			secret := NewSecret()
			var got *http.Request
			var body []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r
				body = make([]byte, r.ContentLength)
				_, _ = r.Body.Read(body)
				if c.status == 302 {
					w.Header().Set("Location", "http://169.254.169.254/")
				}
				w.WriteHeader(c.status)
			}))
			t.Cleanup(srv.Close)
			st := &fakeStore{due: []domain.WebhookDelivery{{ID: "evt_1", EventType: domain.EventBatchCompleted, BatchID: "batch_1",
				Data: []byte(`{"id":"batch_1"}`), CreatedAt: 1, Attempts: c.attempt, URL: srv.URL, Secret: secret}}}
			s := NewSender(Config{Policy: Policy{AllowPrivate: true}, Schedule: []time.Duration{time.Second, time.Minute}}, st, nil,
				func() time.Time { return now })
			n, err := s.Deliver(context.Background())
			require.NoError(t, err)
			require.Equal(t, 1, n)
			require.Len(t, st.wrote, 1)
			w := st.wrote[0]
			assert.Equal(t, c.state, w.state)
			assert.Equal(t, c.status, w.a.StatusCode)
			assert.Equal(t, c.attempt, w.a.Attempt)
			if c.state == domain.DeliveryPending {
				assert.Equal(t, now.Add(c.wait), w.next)
				assert.Equal(t, "HTTP "+strconv.Itoa(c.status), w.a.Error)
			}
			require.NotNil(t, got)
			assert.Equal(t, `{"id":"evt_1","object":"event","created_at":1,"type":"batch.completed","data":{"id":"batch_1"}}`, string(body))
			assert.Equal(t, "evt_1", got.Header.Get("webhook-id"))
			assert.Equal(t, strconv.FormatInt(now.Unix(), 10), got.Header.Get("webhook-timestamp"))
			assert.True(t, Verify(secret, "evt_1", now.Unix(), body, got.Header.Get("webhook-signature")))
			assert.Empty(t, got.Header.Get("Authorization"))
		})
	}
}

// Each pass warns about exactly the running batches whose pace over the window misses their
// deadline: with the estimate, or with none when nothing finished over a whole window.
func TestSenderWarnsAboutTheBatchesWhosePaceMissesTheirDeadline(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_767_225_600, 0)
	running := func(id string, startedAgo, deadlineIn time.Duration, total, done int) domain.Batch {
		start := now.Add(-startedAgo)
		return domain.Batch{ID: id, Status: domain.BatchInProgress, InProgressAt: &start, ExpiresAt: now.Add(deadlineIn),
			Counts: domain.Counts{Total: total, Completed: done}}
	}
	st := &fakeStore{
		running: []domain.Batch{
			running("on_pace", 10*time.Minute, time.Hour, 100, 50),        // 5 a minute: 10 more minutes
			running("late", 10*time.Minute, 5*time.Minute, 100, 50),       // the same pace, 5 minutes left
			running("stalled", 20*time.Minute, time.Hour, 100, 10),        // nothing over the window
			running("too_young", 100*time.Millisecond, time.Second, 9, 0), // no pace yet
		},
		samples: map[string]domain.ProgressSample{"stalled": {At: now.Add(-domain.ProgressWindow), Done: 10}},
	}
	_, err := NewSender(Config{}, st, nil, func() time.Time { return now }).Deliver(context.Background())
	require.NoError(t, err)
	require.Len(t, st.risks, 2, "%+v", st.risks)
	assert.Equal(t, domain.DeadlineRisk{BatchID: "late", ExpiresAt: now.Add(5 * time.Minute), EstimatedCompletion: now.Add(10 * time.Minute)}, st.risks[0])
	assert.Equal(t, domain.DeadlineRisk{BatchID: "stalled", ExpiresAt: now.Add(time.Hour)}, st.risks[1])
}

// A receiver on a blocked address is never called; the attempt is recorded with a reason that
// names no address, and retried.
func TestSenderRecordsABlockedDestinationWithoutCallingIt(t *testing.T) {
	t.Parallel()
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	t.Cleanup(srv.Close)
	st := &fakeStore{due: []domain.WebhookDelivery{{ID: "evt_1", Attempts: 1, URL: "https://" + srv.Listener.Addr().String(), Secret: NewSecret(),
		Data: []byte(`{}`)}}}
	_, err := NewSender(Config{}, st, nil, nil).Deliver(context.Background())
	require.NoError(t, err)
	require.Len(t, st.wrote, 1)
	assert.False(t, hit)
	assert.Equal(t, domain.DeliveryPending, st.wrote[0].state)
	assert.Equal(t, 0, st.wrote[0].a.StatusCode)
	assert.Equal(t, "destination address not allowed", st.wrote[0].a.Error)
}

package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
)

// Store is the outbox the sender drains (shared/postgres implements it).
type Store interface {
	ClaimWebhookDeliveries(ctx context.Context, now, leaseUntil time.Time, max int) ([]domain.WebhookDelivery, error)
	RecordWebhookAttempt(ctx context.Context, id string, a domain.WebhookAttempt, state string, next time.Time) (bool, error)
	EnqueueWebhookProgress(ctx context.Context, now time.Time, max int) (int, error)
	DeadlineRiskCandidates(ctx context.Context, max int) ([]domain.Batch, error)
	ProgressSince(ctx context.Context, batchIDs []string, since time.Time) (map[string]domain.ProgressSample, error)
	EnqueueDeadlineRisk(ctx context.Context, now time.Time, risks []domain.DeadlineRisk) (int, error)
	PurgeWebhookDeliveries(ctx context.Context, before time.Time, max int) (int, error)
}

// KeepDeliveries is how long an ended delivery stays listed (with its attempts): 30 days.
const KeepDeliveries = 30 * 24 * time.Hour

// DefaultSchedule is the wait before each retry (the Standard Webhooks example): an event is
// tried at once, then 5s, 5m, 30m, 2h, 5h, 10h, 14h, 20h and 24h after each failure, 10 attempts
// over about 75 hours, and then marked failed.
var DefaultSchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
	10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour}

// Config tunes the sender; zero fields take the defaults named on each.
type Config struct {
	Policy Policy
	// Schedule is the wait before each retry; default DefaultSchedule. Its length + 1 is the
	// number of attempts.
	Schedule []time.Duration
	// Timeout bounds one attempt (connect, TLS, headers and body); default
	// domain.DefaultWebhookTimeout (10s).
	Timeout time.Duration
	// PerPass caps the attempts of one Deliver, so a backlog never holds up maintenance; default
	// 200. Parallel is how many run at once; default 8.
	PerPass, Parallel int
	// Client replaces the policy's HTTP client (tests); it must apply the same checks.
	Client *http.Client
}

// Sender delivers due events from the outbox.
type Sender struct {
	cfg    Config
	store  Store
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
}

// NewSender builds a sender; now nil is time.Now.
func NewSender(cfg Config, store Store, log *slog.Logger, now func() time.Time) *Sender {
	if len(cfg.Schedule) == 0 {
		cfg.Schedule = DefaultSchedule
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = domain.DefaultWebhookTimeout
	}
	if cfg.PerPass <= 0 {
		cfg.PerPass = 200
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 8
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	c := cfg.Client
	if c == nil {
		c = cfg.Policy.Client(cfg.Timeout)
	}
	return &Sender{cfg: cfg, store: store, client: c, log: log, now: now}
}

// Body is an event's JSON as sent: OpenAI's event shape, the same bytes on every attempt.
func Body(d domain.WebhookDelivery) []byte {
	b, _ := json.Marshal(struct {
		ID        string          `json:"id"`
		Object    string          `json:"object"`
		CreatedAt int64           `json:"created_at"`
		Type      string          `json:"type"`
		Data      json.RawMessage `json:"data"`
	}{d.ID, "event", d.CreatedAt, d.EventType, d.Data})
	return b
}

// Deliver runs one pass: it enqueues the progress and deadline-risk events that are due, drops deliveries ended
// more than KeepDeliveries ago (1,000 at most), then claims and sends
// due deliveries, up to PerPass attempts, each bounded by Timeout. It returns the attempts made.
func (s *Sender) Deliver(ctx context.Context) (int, error) {
	var errs []error
	if _, err := s.store.EnqueueWebhookProgress(ctx, s.now(), s.cfg.PerPass); err != nil {
		errs = append(errs, err)
	}
	if err := s.enqueueDeadlineRisk(ctx); err != nil {
		errs = append(errs, err)
	}
	if _, err := s.store.PurgeWebhookDeliveries(ctx, s.now().Add(-KeepDeliveries), 1000); err != nil {
		errs = append(errs, err)
	}
	made := 0
	for made < s.cfg.PerPass && ctx.Err() == nil {
		now := s.now()
		// The lease outlasts the attempt, so the delivery is not due again while it runs.
		ds, err := s.store.ClaimWebhookDeliveries(ctx, now, now.Add(2*s.cfg.Timeout+time.Minute), min(s.cfg.Parallel, s.cfg.PerPass-made))
		if err != nil {
			errs = append(errs, err)
			break
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, d := range ds {
			wg.Go(func() {
				if err := s.attempt(ctx, d); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		made += len(ds)
		if len(ds) < s.cfg.Parallel {
			break
		}
	}
	return made, errors.Join(errs...)
}

// enqueueDeadlineRisk estimates the running batches an endpoint wants warned about (up to
// PerPass) by the pace the API shows, and enqueues batch.deadline_at_risk for those whose
// estimate passes the deadline.
func (s *Sender) enqueueDeadlineRisk(ctx context.Context) error {
	bs, err := s.store.DeadlineRiskCandidates(ctx, s.cfg.PerPass)
	if err != nil || len(bs) == 0 {
		return err
	}
	now := s.now()
	ids := make([]string, len(bs))
	for i, b := range bs {
		ids[i] = b.ID
	}
	samples, err := s.store.ProgressSince(ctx, ids, now.Add(-domain.ProgressWindow))
	if err != nil {
		return err
	}
	var risks []domain.DeadlineRisk
	for _, b := range bs {
		var since *domain.ProgressSample
		if p, ok := samples[b.ID]; ok {
			since = &p
		}
		if p, ok := domain.EstimateProgress(b, since, now); ok && p.AtRisk {
			// A batch that finished nothing over a whole window is at risk with no estimate.
			r := domain.DeadlineRisk{BatchID: b.ID, ExpiresAt: b.ExpiresAt}
			if p.EstimatedCompletion != nil {
				r.EstimatedCompletion = *p.EstimatedCompletion
			}
			risks = append(risks, r)
		}
	}
	_, err = s.store.EnqueueDeadlineRisk(ctx, now, risks)
	return err
}

// attempt sends one claimed delivery and records the result.
func (s *Sender) attempt(ctx context.Context, d domain.WebhookDelivery) error {
	status, latency, reason := s.send(ctx, d)
	at := s.now()
	state, next := domain.DeliveryPending, at
	switch {
	case status >= 200 && status < 300:
		state = domain.DeliveryDelivered
	case status == http.StatusGone:
		state = domain.DeliveryFailed // the receiver asks for no more
	case d.Attempts > len(s.cfg.Schedule):
		state = domain.DeliveryFailed
	default:
		next = at.Add(s.cfg.Schedule[d.Attempts-1])
	}
	if reason == "" && state != domain.DeliveryDelivered {
		reason = "HTTP " + strconv.Itoa(status)
	}
	ok, err := s.store.RecordWebhookAttempt(context.WithoutCancel(ctx), d.ID, domain.WebhookAttempt{Attempt: d.Attempts,
		At: at.Unix(), StatusCode: status, LatencyMS: latency.Milliseconds(), Error: reason}, state, next)
	if err != nil {
		return err
	}
	if !ok {
		s.log.WarnContext(ctx, "webhook attempt fenced out", "delivery_id", d.ID, "attempt", d.Attempts)
	}
	return nil
}

// send makes the HTTP call, signed just before it leaves (receivers reject timestamps more than
// 5 minutes old). It returns the status (0 when none came back), the latency and, on a transport
// failure, a reason that names no address.
func (s *Sender) send(ctx context.Context, d domain.WebhookDelivery) (int, time.Duration, string) {
	if err := s.cfg.Policy.CheckURL(d.URL); err != nil {
		return 0, 0, describe(ctx, err)
	}
	body := Body(d)
	ts := s.now().Unix()
	sig, err := Sign(d.Secret, d.ID, ts, body)
	if err != nil {
		return 0, 0, "bad signing secret"
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, "bad url"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fusillade-webhooks/1.0")
	req.Header.Set("webhook-id", d.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", sig)
	t0 := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, time.Since(t0), describe(ctx, err)
	}
	// Read a little so the connection can be reused; the body itself is not kept.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	_ = resp.Body.Close()
	return resp.StatusCode, time.Since(t0), ""
}

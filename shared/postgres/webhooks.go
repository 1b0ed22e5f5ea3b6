package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/postgres/internal/pgq"
)

// CreateWebhookEndpoint registers e (its ID, Secret and CreatedAt set by the caller). A tenant
// with domain.MaxWebhookEndpoints live endpoints is refused with EInvalid.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, e domain.WebhookEndpoint) (domain.WebhookEndpoint, error) {
	r, err := s.q.CreateWebhookEndpoint(ctx, pgq.CreateWebhookEndpointParams{ID: e.ID, TenantID: e.TenantID, Url: e.URL,
		EventTypes: e.EventTypes, Secret: e.Secret, ProgressEveryPercent: int32(e.ProgressEveryPercent),
		ProgressEveryMinutes: int32(e.ProgressEveryMinutes), CreatedAt: time.Unix(e.CreatedAt, 0), Max: domain.MaxWebhookEndpoints})
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.WebhookEndpoint{}, &domain.Error{Code: domain.EInvalid, Param: "url",
			Message: fmt.Sprintf("A tenant may register at most %d webhook endpoints.", domain.MaxWebhookEndpoints)}
	}
	if err != nil {
		return domain.WebhookEndpoint{}, fmt.Errorf("create webhook endpoint: %w", err)
	}
	return endpointOf(pgq.ListWebhookEndpointsRow(r)), nil
}

func endpointOf(r pgq.ListWebhookEndpointsRow) domain.WebhookEndpoint {
	return domain.WebhookEndpoint{ID: r.ID, Object: "webhook_endpoint", TenantID: r.TenantID, URL: r.Url, EventTypes: r.EventTypes,
		Secret: r.Secret, ProgressEveryPercent: int(r.ProgressEveryPercent), ProgressEveryMinutes: int(r.ProgressEveryMinutes),
		CreatedAt: r.CreatedAt.Unix()}
}

// ListWebhookEndpoints lists the tenant's live endpoints, oldest first (at most
// domain.MaxWebhookEndpoints).
func (s *Store) ListWebhookEndpoints(ctx context.Context, tenantID string) ([]domain.WebhookEndpoint, error) {
	rows, err := s.q.ListWebhookEndpoints(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	out := make([]domain.WebhookEndpoint, 0, len(rows))
	for _, r := range rows {
		out = append(out, endpointOf(r))
	}
	return out, nil
}

// DeleteWebhookEndpoint deletes a live endpoint of the tenant; its undelivered events are failed.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, tenantID, id string, now time.Time) error {
	_, err := s.q.DeleteWebhookEndpoint(ctx, pgq.DeleteWebhookEndpointParams{Now: &now, ID: id, TenantID: tenantID})
	if errors.Is(err, pgx.ErrNoRows) {
		return webhookNotFound(id)
	}
	if err != nil {
		return fmt.Errorf("delete webhook endpoint: %w", err)
	}
	return nil
}

func webhookNotFound(id string) error {
	return &domain.Error{Code: domain.ENotFound, Param: "id", Message: fmt.Sprintf("No webhook endpoint found with id '%s'.", id)}
}

// ListWebhookDeliveries lists an endpoint's deliveries, newest first, each with every attempt
// made; after (a delivery id) pages on. has_more is whether more follow.
func (s *Store) ListWebhookDeliveries(ctx context.Context, tenantID, endpointID, after string, limit int) ([]domain.WebhookDelivery, bool, error) {
	eps, err := s.ListWebhookEndpoints(ctx, tenantID)
	if err != nil {
		return nil, false, err
	}
	found := false
	for _, e := range eps {
		found = found || e.ID == endpointID
	}
	if !found {
		return nil, false, webhookNotFound(endpointID)
	}
	p := pgq.ListWebhookDeliveriesParams{TenantID: tenantID, EndpointID: endpointID, Max: int32(limit + 1)}
	if after != "" {
		at, err := s.q.WebhookDeliveryCursor(ctx, pgq.WebhookDeliveryCursorParams{ID: after, EndpointID: endpointID})
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, false, &domain.Error{Code: domain.EInvalid, Param: "after", Message: fmt.Sprintf("No delivery found with id '%s'.", after)}
		}
		if err != nil {
			return nil, false, fmt.Errorf("list webhook deliveries: %w", err)
		}
		p.BeforeID, p.BeforeCreatedAt = &after, at
	}
	rows, err := s.q.ListWebhookDeliveries(ctx, p)
	if err != nil {
		return nil, false, fmt.Errorf("list webhook deliveries: %w", err)
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	out := make([]domain.WebhookDelivery, 0, len(rows))
	ids := make([]string, 0, len(rows))
	at := map[string]int{}
	for i, r := range rows {
		d := domain.WebhookDelivery{ID: r.ID, Object: "webhook_delivery", EndpointID: r.EndpointID, EventType: r.EventType,
			BatchID: r.BatchID, State: r.DeliveryState, Attempts: int(r.Attempts), CreatedAt: r.CreatedAt.Unix(), AttemptLog: []domain.WebhookAttempt{}}
		if r.DeliveryState == domain.DeliveryPending {
			n := r.NextAttemptAt.Unix()
			d.NextAt = &n
		}
		out = append(out, d)
		ids = append(ids, r.ID)
		at[r.ID] = i
	}
	atts, err := s.q.ListWebhookAttempts(ctx, ids)
	if err != nil {
		return nil, false, fmt.Errorf("list webhook attempts: %w", err)
	}
	for _, a := range atts {
		d := &out[at[a.DeliveryID]]
		d.AttemptLog = append(d.AttemptLog, domain.WebhookAttempt{Attempt: int(a.Attempt), At: a.At.Unix(),
			StatusCode: int(a.StatusCode), LatencyMS: a.LatencyMs, Error: a.Error})
	}
	return out, more, nil
}

// ClaimWebhookDeliveries claims up to max due deliveries for one attempt each; they are not due
// again before leaseUntil. Each carries its attempt number (Attempts), the fence of
// RecordWebhookAttempt.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, now, leaseUntil time.Time, max int) ([]domain.WebhookDelivery, error) {
	rows, err := s.q.ClaimWebhookDeliveries(ctx, pgq.ClaimWebhookDeliveriesParams{LeaseUntil: leaseUntil, Now: now, Max: int32(max)})
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	out := make([]domain.WebhookDelivery, 0, len(rows))
	for _, r := range rows {
		out = append(out, domain.WebhookDelivery{ID: r.ID, EndpointID: r.EndpointID, EventType: r.EventType, BatchID: r.BatchID,
			Data: r.Data, Created: r.CreatedAt, CreatedAt: r.CreatedAt.Unix(), Attempts: int(r.Attempts), URL: r.Url, Secret: r.Secret})
	}
	return out, nil
}

// RecordWebhookAttempt records the result of attempt a of delivery id and its next state:
// domain.DeliveryPending (tried again at next), DeliveryDelivered or DeliveryFailed. It reports
// false, writing nothing, when that attempt is no longer the delivery's (another sender claimed
// it after this one's lease ran out) or the delivery has ended.
func (s *Store) RecordWebhookAttempt(ctx context.Context, id string, a domain.WebhookAttempt, state string, next time.Time) (bool, error) {
	n, err := s.q.RecordWebhookAttempt(ctx, pgq.RecordWebhookAttemptParams{ID: id, Attempt: int32(a.Attempt), At: time.Unix(a.At, 0),
		StatusCode: int32(a.StatusCode), LatencyMs: a.LatencyMS, Error: a.Error, State: state, NextAttemptAt: next})
	if err != nil {
		return false, fmt.Errorf("record webhook attempt: %w", err)
	}
	return n == 1, nil
}

// EnqueueWebhookProgress enqueues the batch.progress events that are due (at most max) and
// returns how many.
func (s *Store) EnqueueWebhookProgress(ctx context.Context, now time.Time, max int) (int, error) {
	n, err := s.q.EnqueueWebhookProgress(ctx, pgq.EnqueueWebhookProgressParams{Now: now, Max: int32(max)})
	if err != nil {
		return 0, fmt.Errorf("enqueue webhook progress: %w", err)
	}
	return int(n), nil
}

// DeadlineRiskCandidates returns up to max running batches, nearest deadline first, that an
// endpoint subscribed to batch.deadline_at_risk has not been warned about at their current
// deadline.
func (s *Store) DeadlineRiskCandidates(ctx context.Context, max int) ([]domain.Batch, error) {
	rows, err := s.q.DeadlineRiskCandidates(ctx, int32(max))
	if err != nil {
		return nil, fmt.Errorf("deadline risk candidates: %w", err)
	}
	out := make([]domain.Batch, 0, len(rows))
	for _, r := range rows {
		b, err := batchOf(r.BatchRow)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// EnqueueDeadlineRisk enqueues batch.deadline_at_risk for each of the batches that still runs
// at the deadline it was estimated against, once per subscribed endpoint and deadline; it returns
// the events enqueued.
func (s *Store) EnqueueDeadlineRisk(ctx context.Context, now time.Time, risks []domain.DeadlineRisk) (int, error) {
	if len(risks) == 0 {
		return 0, nil
	}
	p := pgq.EnqueueDeadlineRiskParams{Now: now}
	seen := make(map[string]bool, len(risks))
	for _, r := range risks {
		if seen[r.BatchID] {
			continue // one row per batch: the upsert may not touch a mark twice
		}
		seen[r.BatchID] = true
		p.BatchIds = append(p.BatchIds, r.BatchID)
		p.Deadlines = append(p.Deadlines, r.ExpiresAt)
		eta := r.EstimatedCompletion
		if eta.IsZero() {
			eta = time.Unix(0, 0) // no estimate: the statement writes null
		}
		p.Estimates = append(p.Estimates, eta)
	}
	n, err := s.q.EnqueueDeadlineRisk(ctx, p)
	if err != nil {
		return 0, fmt.Errorf("enqueue deadline risk: %w", err)
	}
	return int(n), nil
}

// PurgeWebhookDeliveries drops up to max deliveries that ended before before, with their
// attempts, and the progress and risk marks of batches that no longer run; it returns the deliveries
// dropped.
func (s *Store) PurgeWebhookDeliveries(ctx context.Context, before time.Time, max int) (int, error) {
	n, err := s.q.PurgeWebhookDeliveries(ctx, pgq.PurgeWebhookDeliveriesParams{Before: &before, Max: int32(max)})
	if err != nil {
		return 0, fmt.Errorf("purge webhook deliveries: %w", err)
	}
	return int(n), nil
}

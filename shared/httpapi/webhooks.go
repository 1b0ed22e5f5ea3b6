package httpapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/webhooks"
)

// WebhookStore keeps a tenant's webhook endpoints and the log of their deliveries.
type WebhookStore interface {
	CreateWebhookEndpoint(ctx context.Context, e domain.WebhookEndpoint) (domain.WebhookEndpoint, error)
	ListWebhookEndpoints(ctx context.Context, tenantID string) ([]domain.WebhookEndpoint, error)
	DeleteWebhookEndpoint(ctx context.Context, tenantID, id string, now time.Time) error
	ListWebhookDeliveries(ctx context.Context, tenantID, endpointID, after string, limit int) ([]domain.WebhookDelivery, bool, error)
}

type createWebhookRequest struct {
	URL                  string   `json:"url"`
	EventTypes           []string `json:"event_types"`
	ProgressEveryPercent int      `json:"progress_every_percent"`
	ProgressEveryMinutes int      `json:"progress_every_minutes"`
}

// webhookCreated is the one answer that carries the signing secret.
type webhookCreated struct {
	domain.WebhookEndpoint
	Secret string `json:"signing_secret"`
}

func (s *server) createWebhook(w http.ResponseWriter, r *http.Request) {
	var req createWebhookRequest
	if err := decodeJSON(r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	if len(req.URL) > domain.MaxWebhookURLBytes || !domain.ValidText(req.URL) {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: "url", Message: "url is too long or not text."})
		return
	}
	if err := s.cfg.Webhooks.CheckURL(req.URL); err != nil {
		msg := err.Error()
		if errors.Is(err, webhooks.ErrBlockedDestination) {
			msg = "url must point to a public address."
		}
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: "url", Message: msg})
		return
	}
	if len(req.EventTypes) == 0 {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: "event_types", Message: "event_types must name at least one event type."})
		return
	}
	types := slices.Clone(req.EventTypes)
	slices.Sort(types)
	types = slices.Compact(types)
	for _, t := range types {
		if !domain.ValidWebhookEventType(t) {
			s.error(w, r, domain.Errorf(domain.EInvalid, "Unknown event type %q; the types are %v.", t, domain.WebhookEventTypes))
			return
		}
	}
	if req.ProgressEveryPercent < 0 || req.ProgressEveryPercent > 100 || req.ProgressEveryMinutes < 0 || req.ProgressEveryMinutes > domain.MaxProgressMinutes {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: "progress_every_percent",
			Message: "progress_every_percent must be within 0..100 and progress_every_minutes within 0..1440."})
		return
	}
	progress := req.ProgressEveryPercent > 0 || req.ProgressEveryMinutes > 0
	if progress != slices.Contains(types, domain.EventBatchProgress) {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: "event_types",
			Message: "batch.progress needs progress_every_percent or progress_every_minutes, and they need batch.progress."})
		return
	}
	secret := webhooks.NewSecret()
	e, err := s.hooks.CreateWebhookEndpoint(r.Context(), domain.WebhookEndpoint{ID: domain.NewWebhookEndpointID(),
		TenantID: principal(r).TenantID, URL: req.URL, EventTypes: types, Secret: secret,
		ProgressEveryPercent: req.ProgressEveryPercent, ProgressEveryMinutes: req.ProgressEveryMinutes, CreatedAt: s.now().Unix()})
	if err != nil {
		s.error(w, r, err)
		return
	}
	e.SecretHint = webhooks.SecretHint(secret)
	writeJSON(w, http.StatusOK, webhookCreated{WebhookEndpoint: e, Secret: secret})
}

type webhookList struct {
	Object string                   `json:"object"`
	Data   []domain.WebhookEndpoint `json:"data"`
}

func (s *server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	es, err := s.hooks.ListWebhookEndpoints(r.Context(), principal(r).TenantID)
	if err != nil {
		s.error(w, r, err)
		return
	}
	for i := range es {
		es[i].SecretHint = webhooks.SecretHint(es[i].Secret)
	}
	writeJSON(w, http.StatusOK, webhookList{Object: "list", Data: orEmpty(es)})
}

type webhookDeleted struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}

func (s *server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.hooks.DeleteWebhookEndpoint(r.Context(), principal(r).TenantID, id, s.now()); err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, webhookDeleted{ID: id, Object: "webhook_endpoint.deleted", Deleted: true})
}

type deliveryList struct {
	Object  string                   `json:"object"`
	Data    []domain.WebhookDelivery `json:"data"`
	HasMore bool                     `json:"has_more"`
}

func (s *server) listWebhookDeliveries(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	limit := q.int("limit", 20, 1, 100)
	after := q.str("after")
	if q.err != nil {
		s.error(w, r, q.err)
		return
	}
	ds, more, err := s.hooks.ListWebhookDeliveries(r.Context(), principal(r).TenantID, r.PathValue("id"), after, limit)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deliveryList{Object: "list", Data: orEmpty(ds), HasMore: more})
}

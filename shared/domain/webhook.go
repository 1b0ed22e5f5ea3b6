package domain

import (
	"encoding/json"
	"slices"
	"time"
)

// Webhook event types a tenant's endpoint may subscribe to. The four terminal ones are OpenAI's
// batch events (same names, same thin payload), so the openai SDKs' webhooks.unwrap types them;
// batch.progress and batch.deadline_at_risk are fusillade's own.
const (
	EventBatchCompleted = "batch.completed"
	EventBatchFailed    = "batch.failed"
	EventBatchExpired   = "batch.expired"
	EventBatchCancelled = "batch.cancelled"
	EventBatchProgress  = "batch.progress"
	// EventBatchDeadlineAtRisk is sent once per deadline when a running batch's estimated
	// completion (EstimateProgress) passes its expires_at; an extended batch still late warns again.
	EventBatchDeadlineAtRisk = "batch.deadline_at_risk"
)

// WebhookEventTypes lists every event type, in documentation order.
var WebhookEventTypes = []string{EventBatchCompleted, EventBatchFailed, EventBatchExpired, EventBatchCancelled, EventBatchProgress,
	EventBatchDeadlineAtRisk}

// DeadlineRisk is a running batch whose estimated completion passes its deadline.
type DeadlineRisk struct {
	BatchID             string
	ExpiresAt           time.Time // the deadline the estimate was made against
	EstimatedCompletion time.Time // zero when the batch finished nothing over ProgressWindow
}

// ValidWebhookEventType reports whether t is one of WebhookEventTypes.
func ValidWebhookEventType(t string) bool { return slices.Contains(WebhookEventTypes, t) }

// Id prefixes of webhook objects: an endpoint, and an event (one message to one endpoint, whose
// id is the webhook-id header, the same on every retry).
const (
	WebhookEndpointPrefix = "we_"
	WebhookEventPrefix    = "evt_"
)

// NewWebhookEndpointID returns "we_" plus 24 base62 characters.
func NewWebhookEndpointID() string { return WebhookEndpointPrefix + randomBase62(fileIDLen) }

// IsWebhookEndpointID reports whether s has the shape NewWebhookEndpointID makes.
func IsWebhookEndpointID(s string) bool { return hasShape(s, WebhookEndpointPrefix, fileIDLen, base62) }

// Limits of an endpoint's registration.
const (
	MaxWebhookEndpoints   = 10   // per tenant
	MaxWebhookURLBytes    = 2048 // the URL's length
	MaxProgressMinutes    = 1440 // progress_every_minutes: at most a day
	DefaultWebhookTimeout = 10 * time.Second
)

// WebhookEndpoint is a tenant's registered receiver. Its signing secret is shown once, when it is
// created (WebhookEndpointCreated), and never read back through the API; SecretHint is its first
// characters, to tell secrets apart.
type WebhookEndpoint struct {
	ID         string   `json:"id"`
	Object     string   `json:"object"` // "webhook_endpoint"
	TenantID   string   `json:"-"`
	URL        string   `json:"url"`
	EventTypes []string `json:"event_types"`
	// ProgressEveryPercent sends batch.progress each time a running batch's finished share crosses
	// another multiple of it; 0 = never by share. ProgressEveryMinutes sends one when the last was
	// this long ago (or the batch started this long ago); 0 = never by time.
	ProgressEveryPercent int    `json:"progress_every_percent"`
	ProgressEveryMinutes int    `json:"progress_every_minutes"`
	SecretHint           string `json:"signing_secret_hint"`
	CreatedAt            int64  `json:"created_at"`
	// Secret is the whsec_ signing secret; never encoded in an API answer.
	Secret string `json:"-"`
}

// WebhookDelivery is one event for one endpoint and the state of its delivery.
type WebhookDelivery struct {
	ID         string           `json:"id"` // the event id, sent as webhook-id
	Object     string           `json:"object"`
	EndpointID string           `json:"endpoint_id"`
	EventType  string           `json:"event_type"`
	BatchID    string           `json:"batch_id"`
	State      string           `json:"state"` // pending | delivered | failed
	Attempts   int              `json:"attempts"`
	CreatedAt  int64            `json:"created_at"`
	NextAt     *int64           `json:"next_attempt_at"`
	AttemptLog []WebhookAttempt `json:"attempt_log"`
	Data       json.RawMessage  `json:"-"`
	// Secret and URL are the endpoint's, for the sender.
	Secret  string    `json:"-"`
	URL     string    `json:"-"`
	Created time.Time `json:"-"`
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed" // every attempt failed, or the endpoint answered 410 Gone
)

// DeliveryStates lists every delivery state (webhook_deliveries.delivery_state).
var DeliveryStates = []string{DeliveryPending, DeliveryDelivered, DeliveryFailed}

// WebhookAttempt is one try of a delivery: the receiver's status (0 when none came back), how
// long it took and, for a failure, why (never naming internal addresses).
type WebhookAttempt struct {
	Attempt    int    `json:"attempt"`
	At         int64  `json:"at"`
	StatusCode int    `json:"status_code"`
	LatencyMS  int64  `json:"latency_ms"`
	Error      string `json:"error"`
}

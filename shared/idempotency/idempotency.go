// Package idempotency binds a create request to the client's Idempotency-Key, so that a retried
// POST (the SDKs retry timeouts and 5xx) replays the first request's object instead of creating
// a second one. Reading and hashing the header is the HTTP API's part; reserving, replaying and
// releasing the key is this package's, used alike by the file uploads and the batch service.
package idempotency

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
)

// Routes whose creations honour an Idempotency-Key. A key is scoped to its tenant and route.
const (
	RouteCreateFile  = "POST /v1/files"
	RouteCreateBatch = "POST /v1/batches"
)

// Reasons of the errors a reservation answers; the HTTP API maps them to their statuses.
const (
	// ReasonMismatch: a key reused with a different request (422, as Stripe and the IETF
	// idempotency draft answer it).
	ReasonMismatch = "idempotency_key_reused"
	// ReasonInFlight: the first request with this key is still running. 409 is the one place a
	// conflict is transient, so the SDKs' automatic retry of 409 is what we want.
	ReasonInFlight = "idempotency_key_in_use"
)

// InFlightWindow is how long after a key was first used a missing object means "the first
// request is still running" (ReasonInFlight) rather than "it was deleted" (ENotFound).
const InFlightWindow = time.Minute

// MaxKeyLen bounds a key (Stripe's limit).
const MaxKeyLen = 255

// Store keeps the keys.
type Store interface {
	ReserveIdempotencyKey(ctx context.Context, tenantID, route, key string, hash []byte, objectID string, now time.Time) (domain.IdempotencyRecord, bool, error)
	ReleaseIdempotencyKey(ctx context.Context, tenantID, route, key, objectID string) error
}

// Key is a request's Idempotency-Key; the zero Key (no Name) means the request has none.
type Key struct {
	TenantID string
	Route    string
	Name     string // the header's value, checked by Reserve
	Hash     []byte // of the route and the canonical request: the key binds the request, not its bytes
}

// Reservation is the outcome of claiming a key.
type Reservation struct {
	// Replay is the object created by the first request with this key; "" = go ahead and create.
	Replay string
	since  time.Time // when the key was first used
	store  Store
	log    *slog.Logger
	key    Key
	newID  string
}

// Reserve claims k (if it has a name) for newID; log (nil = discard) hears of a failed Release.
// A key over MaxKeyLen bytes or not text is EInvalid; the same key with a different hash is an
// EConflict with ReasonMismatch; the same request again a Reservation whose Replay names the
// first one's object.
func Reserve(ctx context.Context, st Store, log *slog.Logger, k Key, newID string, now time.Time) (Reservation, error) {
	switch {
	case k.Name == "":
		return Reservation{}, nil
	case len(k.Name) > MaxKeyLen:
		return Reservation{}, &domain.Error{Code: domain.EInvalid, Param: "Idempotency-Key",
			Message: fmt.Sprintf("The Idempotency-Key header is longer than %d characters.", MaxKeyLen)}
	case !domain.ValidText(k.Name):
		return Reservation{}, domain.NotText("Idempotency-Key")
	}
	rec, ok, err := st.ReserveIdempotencyKey(ctx, k.TenantID, k.Route, k.Name, k.Hash, newID, now)
	if err != nil {
		return Reservation{}, err
	}
	if ok {
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		return Reservation{store: st, log: log, key: k, newID: newID}, nil
	}
	if string(rec.RequestHash) != string(k.Hash) {
		return Reservation{}, &domain.Error{Code: domain.EConflict, Reason: ReasonMismatch, Param: "Idempotency-Key",
			Message: "This Idempotency-Key was already used with a different request; use a new key for a new request."}
	}
	return Reservation{Replay: rec.ObjectID, since: rec.CreatedAt}, nil
}

// Release frees the key if this request fails before creating its object, so that a retry with
// it can create the object. It does nothing for a request without a key or a replay, and runs
// even when ctx was cancelled (the client gave up: its retry must not find the key taken).
func (r Reservation) Release(ctx context.Context) {
	if r.store == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if err := r.store.ReleaseIdempotencyKey(ctx, r.key.TenantID, r.key.Route, r.key.Name, r.newID); err != nil {
		r.log.WarnContext(ctx, "release idempotency key", "err", err)
	}
}

// ReplayError explains a replayed object that cannot be read (err): still being created
// (ReasonInFlight) within InFlightWindow of the key's first use, else err (gone since).
func (r Reservation) ReplayError(err error, now time.Time) error {
	if domain.ErrorCode(err) == domain.ENotFound && now.Sub(r.since) < InFlightWindow {
		return &domain.Error{Code: domain.EConflict, Reason: ReasonInFlight,
			Message: "A request with this Idempotency-Key is still being processed; retry shortly."}
	}
	return err
}

package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
)

// Routes whose creations honour an Idempotency-Key header. The SDKs retry timeouts and 5xx, so
// without a key a retried POST can create a second file or batch.
const (
	routeCreateFile  = "POST /v1/files"
	routeCreateBatch = "POST /v1/batches"
)

// maxIdempotencyKey bounds the header (Stripe's limit).
const maxIdempotencyKey = 255

// inFlightWindow is how long after a key was first used a missing object means "the first
// request is still running" (409, retried by the SDKs) rather than "it was deleted" (404).
const inFlightWindow = time.Minute

// reservation is the outcome of claiming an Idempotency-Key.
type reservation struct {
	replay  string    // the object created by the first request with this key; "" = go ahead
	since   time.Time // when the key was first used
	release func()    // frees the key if this request fails before creating its object
}

// reserve claims the request's Idempotency-Key (if any) for newID. The key is bound to a hash of
// the route and body: the same key with a different body is a 422, the same request again a
// replay of the first one's object.
func (s *server) reserve(r *http.Request, route string, body []byte, newID string) (reservation, error) {
	key := r.Header.Get("Idempotency-Key")
	res := reservation{release: func() {}}
	if key == "" {
		return res, nil
	}
	if len(key) > maxIdempotencyKey {
		return res, &domain.Error{Code: domain.EInvalid, Param: "Idempotency-Key", Message: "The Idempotency-Key header is longer than 255 characters."}
	}
	if !domain.ValidText(key) {
		return res, errNotText("Idempotency-Key")
	}
	p := principal(r)
	h := sha256.New()
	h.Write([]byte(route))
	h.Write([]byte{0})
	h.Write(body)
	sum := h.Sum(nil)
	rec, ok, err := s.store.ReserveIdempotencyKey(r.Context(), p.TenantID, route, key, sum, newID, s.now())
	if err != nil {
		return res, err
	}
	if ok {
		res.release = func() {
			ctx := context.WithoutCancel(r.Context())
			if err := s.store.ReleaseIdempotencyKey(ctx, p.TenantID, route, key, newID); err != nil {
				s.log.WarnContext(ctx, "release idempotency key", "err", err)
			}
		}
		return res, nil
	}
	if string(rec.RequestHash) != string(sum) {
		return res, &domain.Error{Code: domain.EConflict, Reason: reasonIdempotencyMismatch, Param: "Idempotency-Key",
			Message: "This Idempotency-Key was already used with a different request; use a new key for a new request."}
	}
	res.replay, res.since = rec.ObjectID, rec.CreatedAt
	return res, nil
}

// replayError explains a replayed object that cannot be read: still being created (409, which
// the SDKs retry) or gone since.
func (s *server) replayError(err error, res reservation) error {
	if domain.ErrorCode(err) == domain.ENotFound && s.now().Sub(res.since) < inFlightWindow {
		return &domain.Error{Code: domain.EConflict, Reason: reasonIdempotencyInFlight,
			Message: "A request with this Idempotency-Key is still being processed; retry shortly."}
	}
	return err
}

// idempotentFile binds a freshly stored file to the request's Idempotency-Key. On a replay the
// fresh copy is discarded and the original returned.
func (s *server) idempotentFile(r *http.Request, route string, body []byte, f domain.File) (domain.File, error) {
	res, err := s.reserve(r, route, body, f.ID)
	if err != nil {
		s.discard(r, f, "The upload was rejected.")
		return domain.File{}, err
	}
	if res.replay == "" {
		return f, nil
	}
	s.discard(r, f, "A replay of an earlier upload with the same Idempotency-Key.")
	orig, err := s.store.GetFile(r.Context(), f.TenantID, res.replay)
	if err != nil {
		return domain.File{}, s.replayError(err, res)
	}
	return orig, nil
}

// canonicalJSON renders a decoded request for hashing, so that spacing and key order do not
// matter.
func canonicalJSON(v any) []byte {
	b, _ := json.Marshal(v) // plain request structs always marshal
	return b
}

package httpapi

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/idempotency"
)

// idempotencyKey reads the request's Idempotency-Key header (none = the zero Key) and binds it
// to a hash of route and body, the request as decoded: the same key with a different body is a
// 422, the same request again a replay of the first one's object (package idempotency, which
// also checks the key when it reserves it).
func idempotencyKey(r *http.Request, route string, body []byte) idempotency.Key {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return idempotency.Key{}
	}
	h := sha256.New()
	h.Write([]byte(route))
	h.Write([]byte{0})
	h.Write(body)
	return idempotency.Key{TenantID: principal(r).TenantID, Route: route, Name: key, Hash: h.Sum(nil)}
}

// reserve claims the request's Idempotency-Key (if any) for the file newID.
func (s *server) reserve(r *http.Request, route string, body []byte, newID string) (idempotency.Reservation, error) {
	return idempotency.Reserve(r.Context(), s.store, s.log, idempotencyKey(r, route, body), newID, s.now())
}

// idempotentFile binds a freshly stored file to the request's Idempotency-Key. On a replay the
// fresh copy is discarded and the original returned.
func (s *server) idempotentFile(r *http.Request, route string, body []byte, f domain.File) (domain.File, error) {
	res, err := s.reserve(r, route, body, f.ID)
	if err != nil {
		s.discard(r, f, "The upload was rejected.")
		return domain.File{}, err
	}
	if res.Replay == "" {
		return f, nil
	}
	s.discard(r, f, "A replay of an earlier upload with the same Idempotency-Key.")
	orig, err := s.store.GetFile(r.Context(), f.TenantID, res.Replay)
	if err != nil {
		return domain.File{}, res.ReplayError(err, s.now())
	}
	return orig, nil
}

// canonicalJSON renders a decoded request for hashing, so that spacing and key order do not
// matter.
func canonicalJSON(v any) []byte {
	b, _ := json.Marshal(v) // plain request structs always marshal
	return b
}

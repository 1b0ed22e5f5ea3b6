package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
)

// readyTimeout bounds the database check of GET /readyz; default 2s, well under load balancer
// and health-check timeouts.
const readyTimeout = 2 * time.Second

// ready handles GET /readyz: 200 when the database answers, otherwise 503 with an OpenAI-shaped
// error (code database_unreachable) and Retry-After. /healthz stays pure liveness: a process
// waiting for its database is alive and must not be restarted for it.
func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.WarnContext(r.Context(), "readiness: database unreachable", "err", err)
		s.error(w, r, &domain.Error{Code: domain.EUnavailable, Reason: "database_unreachable",
			Message: "The database is unreachable."})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "database": "ok"})
}

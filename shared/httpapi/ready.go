package httpapi

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"
)

// readyTimeout bounds each check of GET /readyz; default 2s, well under load balancer and
// health-check timeouts. The checks run at once, so the route answers within it.
const readyTimeout = 2 * time.Second

// QueueChecker tells whether a queue answers (GET /readyz). The API's is the work queue, the one
// queue it both uses and is allowed to read the attributes of (sqsqueue.Queue.Reachable, an SQS
// GetQueueAttributes).
type QueueChecker interface {
	Reachable(ctx context.Context) error
}

// The readiness checks, in the order they are reported and their failures named.
const (
	checkDatabase  = "database"
	checkWorkQueue = "work_queue"
)

// readyCheck is one dependency's state in a /readyz answer.
type readyCheck struct {
	Status string `json:"status"` // ok | unreachable
}

// readiness is the /readyz answer; a 503 carries the OpenAI error envelope beside it, so that
// SDK-shaped clients read it as any other error.
type readiness struct {
	Error  *errorBody            `json:"error,omitempty"`
	Status string                `json:"status"` // ready | unavailable
	Checks map[string]readyCheck `json:"checks"`
}

type errorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// ready handles GET /readyz: each dependency the API cannot serve without (the database, and the
// work queue when one is wired) is checked at once, and the answer lists every check with its
// status: 200 when all are ok, otherwise 503 with Retry-After, code <check>_unreachable for the
// first that failed, and every check's status. /healthz stays pure liveness: a process waiting
// for its database is alive and must not be restarted for it. The checks' errors are logged, not
// answered (they name hosts and addresses).
func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	checks := []struct {
		name, what string
		run        func(context.Context) error
	}{{checkDatabase, "the database", s.store.Ping}}
	if s.queue != nil {
		checks = append(checks, struct {
			name, what string
			run        func(context.Context) error
		}{checkWorkQueue, "the work queue", s.queue.Reachable})
	}
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.run(ctx)
		}()
	}
	wg.Wait()
	out := readiness{Status: "ready", Checks: map[string]readyCheck{}}
	var down []string
	code := ""
	for i, c := range checks {
		if errs[i] == nil {
			out.Checks[c.name] = readyCheck{Status: "ok"}
			continue
		}
		s.log.WarnContext(r.Context(), "readiness: "+c.what+" unreachable", "check", c.name, "err", errs[i])
		out.Checks[c.name] = readyCheck{Status: "unreachable"}
		down = append(down, c.what)
		if code == "" {
			code = c.name + "_unreachable"
		}
	}
	if len(down) == 0 {
		writeJSON(w, http.StatusOK, out)
		return
	}
	msg := strings.Join(down, " and ")
	verb := " is unreachable."
	if len(down) > 1 {
		verb = " are unreachable."
	}
	out.Status = "unavailable"
	out.Error = &errorBody{Message: strings.ToUpper(msg[:1]) + msg[1:] + verb, Type: "server_error", Code: &code}
	w.Header().Set("Retry-After", "1")
	w.Header().Set("x-should-retry", "true")
	writeJSON(w, http.StatusServiceUnavailable, out)
}

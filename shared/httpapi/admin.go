package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
)

type modelList struct {
	Object string         `json:"object"`
	Data   []domain.Model `json:"data"`
}

func (s *server) listModels(w http.ResponseWriter, r *http.Request) {
	ms, err := s.store.ListModels(r.Context())
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, modelList{Object: "list", Data: orEmpty(ms)})
}

// orEmpty makes an empty list encode as [] rather than null: a list's data is always an array.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

type putModelRequest struct {
	BaseURL                 string `json:"base_url"`
	CredentialRef           string `json:"credential_ref"`
	ConcurrencyLimit        *int   `json:"concurrency_limit"`
	EscalationModel         string `json:"escalation_model"`
	EscalationThresholdSecs int    `json:"escalation_threshold_secs"`
}

// putModel creates or replaces a model. A new limit takes effect at the next claim: raising it
// fills the new slots as soon as a dispatch or a completion runs; lowering it aborts nothing.
func (s *server) putModel(w http.ResponseWriter, r *http.Request) {
	var req putModelRequest
	if err := decodeJSON(r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	u, err := url.Parse(req.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Message: "base_url must be an absolute http(s) URL without query or fragment.", Param: "base_url"})
		return
	}
	// Only a reference is stored, and only one of the allowed forms: base_url is the admin's to
	// choose, so a reference to anything else of the worker's would be sent to it as a bearer token.
	if _, err := s.cfg.CredentialRefs.Parse(req.CredentialRef); err != nil {
		s.error(w, r, err)
		return
	}
	if req.ConcurrencyLimit == nil || *req.ConcurrencyLimit < 0 {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Message: "concurrency_limit must be a non-negative integer.", Param: "concurrency_limit"})
		return
	}
	m := domain.Model{Name: r.PathValue("name"), BaseURL: req.BaseURL, CredentialRef: req.CredentialRef,
		ConcurrencyLimit: *req.ConcurrencyLimit, EscalationModel: req.EscalationModel, EscalationThreshold: req.EscalationThresholdSecs}
	if err := s.store.UpsertModel(r.Context(), m); err != nil {
		s.error(w, r, err)
		return
	}
	// A raised limit is filled now rather than at the next scheduled dispatch.
	if err := s.engine.Dispatch(r.Context(), m.Name); err != nil {
		s.log.WarnContext(r.Context(), "dispatch after model change", "model", m.Name, "err", err)
	}
	got, err := s.store.ListModels(r.Context())
	if err != nil {
		s.error(w, r, err)
		return
	}
	for _, x := range got {
		if x.Name == m.Name {
			writeJSON(w, http.StatusOK, x)
			return
		}
	}
	s.error(w, r, fmt.Errorf("model %q vanished after upsert", m.Name))
}

// listWorkers is GET /v1/admin/workers: the 100 most recently active worker records, newest
// heart-beat first, each with its status as of now; ?status= keeps one status.
func (s *server) listWorkers(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	status := domain.WorkerStatus(q.str("status"))
	if status != "" && !slices.Contains(domain.WorkerStatuses, status) {
		q.fail("status", "Invalid 'status' %q: expected running, stale or stopped.", string(status))
	}
	if q.err != nil {
		s.error(w, r, q.err)
		return
	}
	ws, err := s.store.ListWorkers(r.Context(), status, s.now(), s.cfg.StaleWorker, 100)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": orEmpty(ws)})
}

// deleteModel removes a model. Requests that name it stay pending until it is configured again;
// a model that another model escalates to answers 400.
func (s *server) deleteModel(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.store.DeleteModel(r.Context(), name); err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "object": "model", "deleted": true})
}

func (s *server) listTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := s.store.ListTenants(r.Context())
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": orEmpty(ts)})
}

type createTenantRequest struct {
	Name string `json:"name"`
	// CoalesceDefault: the tenant's batches coalesce their lines unless created with coalesce
	// false (default false).
	CoalesceDefault bool `json:"coalesce_default"`
}

func (s *server) createTenant(w http.ResponseWriter, r *http.Request) {
	var req createTenantRequest
	if err := decodeJSON(r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	if req.Name == "" || len(req.Name) > 256 {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: "name", Message: "name must be 1 to 256 characters."})
		return
	}
	t, err := s.store.CreateTenant(r.Context(), req.Name, req.CoalesceDefault, s.now())
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// updateTenantRequest is POST /v1/admin/tenants/{id}: the settings a tenant's batches start from.
// coalesce_default is required (the only setting so far).
type updateTenantRequest struct {
	CoalesceDefault *bool `json:"coalesce_default"`
}

// updateTenant sets a tenant's defaults; batches already created keep theirs.
func (s *server) updateTenant(w http.ResponseWriter, r *http.Request) {
	var req updateTenantRequest
	if err := decodeJSON(r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	if req.CoalesceDefault == nil {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: "coalesce_default", Message: "Missing required parameter: 'coalesce_default'."})
		return
	}
	t, err := s.store.SetTenantCoalesceDefault(r.Context(), r.PathValue("id"), *req.CoalesceDefault)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *server) listKeys(w http.ResponseWriter, r *http.Request) {
	ks, err := s.store.ListAPIKeys(r.Context(), r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": orEmpty(ks)})
}

type createKeyRequest struct {
	Name  string `json:"name"`
	Admin bool   `json:"admin"`
}

// createdKey is the one response that carries a key; it is never retrievable again.
type createdKey struct {
	domain.APIKey
	Key string `json:"key"`
}

func (s *server) createKey(w http.ResponseWriter, r *http.Request) {
	var req createKeyRequest
	if err := decodeOptionalJSON(r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	k, key, err := s.store.CreateAPIKey(r.Context(), r.PathValue("id"), req.Name, req.Admin, s.now())
	if err != nil {
		s.error(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, createdKey{APIKey: k, Key: key})
}

// revokeKey revokes an API key at once (every later request with it answers 401).
func (s *server) revokeKey(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.error(w, r, &domain.Error{Code: domain.ENotFound, Param: "id", Message: fmt.Sprintf("No API key found with id %q.", r.PathValue("id"))})
		return
	}
	k, err := s.store.RevokeAPIKey(r.Context(), id, s.now())
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, k)
}

// pendingStates are the states GET /v1/admin/pending may count: the unfinished ones.
var pendingStates = []string{string(domain.StatePending), string(domain.StateClaimed), string(domain.StateProcessing)}

// maxPendingModels bounds how many models one pending-counts filter may name (default 100).
const maxPendingModels = 100

// pendingCounts handles GET /v1/admin/pending?windows=1h,24h: unfinished requests per model
// whose batch deadline falls within each window (cumulative; overdue work counts in every
// window), for capacity planning and autoscaling, leaving out batches being cancelled. Default
// windows: 1h and 24h. state (pending, claimed, processing; default all three) and model narrow
// the count, each repeated or comma-separated, as fusillade's states and model_filter do.
func (s *server) pendingCounts(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	var f domain.PendingFilter
	for _, st := range q.list("state") {
		if !slices.Contains(pendingStates, st) {
			q.fail("state", "Invalid 'state' %q: expected one of %s.", st, strings.Join(pendingStates, ", "))
			break
		}
		f.States = append(f.States, domain.RequestState(st))
	}
	f.Models = q.list("model")
	if len(f.Models) > maxPendingModels {
		q.fail("model", "Invalid 'model': at most %d models, got %d.", maxPendingModels, len(f.Models))
	}
	if q.err != nil {
		s.error(w, r, q.err)
		return
	}
	raw := r.URL.Query().Get("windows")
	if raw == "" {
		raw = "1h,24h"
	}
	var windows []time.Duration
	var labels []string
	for _, p := range strings.Split(raw, ",") {
		p = strings.TrimSpace(p)
		d, err := domain.ParseWindow(p)
		if err != nil {
			s.error(w, r, &domain.Error{Code: domain.EInvalid, Message: err.Error(), Param: "windows"})
			return
		}
		windows, labels = append(windows, d), append(labels, p)
	}
	counts, err := s.store.PendingByModelAndWindow(r.Context(), windows, f, s.now())
	if err != nil {
		s.error(w, r, err)
		return
	}
	out := map[string]map[string]int{}
	for model, byWindow := range counts {
		out[model] = map[string]int{}
		for i, d := range windows {
			out[model][labels[i]] = byWindow[int(d/time.Second)]
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "pending_counts", "data": out})
}

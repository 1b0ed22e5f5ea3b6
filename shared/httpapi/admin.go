package httpapi

import (
	"fmt"
	"net/http"
	"net/url"

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
	writeJSON(w, http.StatusOK, modelList{Object: "list", Data: ms})
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

func (s *server) listWorkers(w http.ResponseWriter, r *http.Request) {
	ws, err := s.store.ListWorkers(r.Context(), 100)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": ws})
}

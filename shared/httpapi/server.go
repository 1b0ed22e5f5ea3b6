// Package httpapi is fusillade's OpenAI-compatible HTTP API as a plain http.Handler. The same
// handler is served by net/http in the local stack and by the API Lambda behind API Gateway (HTTP
// API, payload v2) through an adapter, so what runs locally is what runs on AWS.
package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/ingest"
	"github.com/fusillade/fusillade/shared/postgres"
)

// Store is the part of the store the API uses.
type Store interface {
	Authenticate(ctx context.Context, key string) (domain.Principal, error)
	GetFile(ctx context.Context, tenantID, id string) (domain.File, error)
	InsertBatch(ctx context.Context, b domain.Batch) error
	GetBatch(ctx context.Context, tenantID, id string) (domain.Batch, error)
	FailBatch(ctx context.Context, batchID string, now time.Time, errs []domain.BatchError) error
	ListModels(ctx context.Context) ([]domain.Model, error)
	UpsertModel(ctx context.Context, m domain.Model) error
	ListWorkers(ctx context.Context, limit int) ([]postgres.WorkerRecord, error)
}

// Ingester validates and stores uploaded files.
type Ingester interface {
	Store(ctx context.Context, u ingest.Upload) (domain.File, error)
}

// Blobs reads file contents.
type Blobs interface {
	Get(ctx context.Context, key string) (io.ReadCloser, int64, error)
}

// PopulateQueue receives a message for each new batch.
type PopulateQueue interface {
	Send(ctx context.Context, v any) error
}

// Config tunes the API.
type Config struct {
	// CompletionWindows is the allow-list for completion_window; default {"24h"}.
	CompletionWindows []string
	// FileTTL is how long an input file lives without expires_after; default 30 days (OpenAI's).
	FileTTL time.Duration
}

// Deps are the API's collaborators.
type Deps struct {
	Store    Store
	Ingester Ingester
	Blobs    Blobs
	Populate PopulateQueue
	Logger   *slog.Logger
	Now      func() time.Time
}

type server struct {
	cfg      Config
	store    Store
	ingester Ingester
	blobs    Blobs
	populate PopulateQueue
	log      *slog.Logger
	now      func() time.Time
}

// New returns the API handler.
func New(cfg Config, d Deps) http.Handler {
	if len(cfg.CompletionWindows) == 0 {
		cfg.CompletionWindows = []string{"24h"}
	}
	if cfg.FileTTL <= 0 {
		cfg.FileTTL = 30 * 24 * time.Hour
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	s := &server{cfg: cfg, store: d.Store, ingester: d.Ingester, blobs: d.Blobs, populate: d.Populate, log: d.Logger, now: d.Now}
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		h := rt.handler
		switch rt.access {
		case accessTenant:
			h = s.authenticate(h, false)
		case accessAdmin:
			h = s.authenticate(h, true)
		}
		mux.Handle(rt.method+" "+rt.pattern, h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.error(w, r, &domain.Error{Code: domain.ENotFound, Message: "Unknown request URL: " + r.Method + " " + r.URL.Path + "."})
	})
	return s.recoverer(mux)
}

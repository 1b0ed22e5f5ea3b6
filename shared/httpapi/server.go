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

	"github.com/fusillade/fusillade/shared/batches"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/ingest"
	"github.com/fusillade/fusillade/shared/webhooks"
)

// Store is the part of the store the API uses.
type Store interface {
	Authenticate(ctx context.Context, key string) (domain.Principal, error)
	// Ping checks that the database answers (GET /readyz).
	Ping(ctx context.Context) error
	InsertFile(ctx context.Context, f domain.File) error
	// GetFile and GetBatch read the newest state: what a write is decided on (completing an
	// upload, a replay) reads them. ViewFile and ViewBatch, and the lists, results and pending
	// counts, only show objects and may be served by a read replica: a little behind the newest
	// state, but never "not found" for an object that exists (docs/api.md, Read replicas).
	GetFile(ctx context.Context, tenantID, id string) (domain.File, error)
	ViewFile(ctx context.Context, tenantID, id string) (domain.File, error)
	ListFiles(ctx context.Context, tenantID string, p domain.FileListParams) ([]domain.File, bool, error)
	DiscardFile(ctx context.Context, tenantID, id, reason string, now time.Time) error
	SetFileExpiry(ctx context.Context, tenantID, id string, at time.Time) error
	GetBatch(ctx context.Context, tenantID, id string) (domain.Batch, error)
	ViewBatch(ctx context.Context, tenantID, id string) (domain.Batch, error)
	ListBatches(ctx context.Context, tenantID string, p domain.BatchListParams) ([]domain.Batch, bool, error)
	// BatchRequestStates counts each batch's requests by state (message batches' request_counts).
	BatchRequestStates(ctx context.Context, tenantID string, batchIDs []string) (map[string]map[domain.RequestState]int, error)
	ProgressSince(ctx context.Context, batchIDs []string, since time.Time) (map[string]domain.ProgressSample, error)
	BatchResults(ctx context.Context, tenantID, batchID string, q domain.ResultQuery, fn func(domain.BatchResult) error) error
	// BatchTimeline counts a batch's finished lines over n equal spans from start to end.
	BatchTimeline(ctx context.Context, tenantID, batchID string, total int, start, end time.Time, n int) (domain.Timeline, error)
	ResultFile(ctx context.Context, tenantID, batchID string, output bool, q domain.ResultQuery, fn func(domain.ResultRow) error) error
	ReserveIdempotencyKey(ctx context.Context, tenantID, route, key string, hash []byte, objectID string, now time.Time) (domain.IdempotencyRecord, bool, error)
	ReleaseIdempotencyKey(ctx context.Context, tenantID, route, key, objectID string) error
	ListModels(ctx context.Context) ([]domain.Model, error)
	UpsertModel(ctx context.Context, m domain.Model) error
	DeleteModel(ctx context.Context, name string) error
	ListWorkers(ctx context.Context, status domain.WorkerStatus, now time.Time, stale time.Duration, limit int) ([]domain.WorkerRecord, error)
	ListTenants(ctx context.Context) ([]domain.Tenant, error)
	CreateTenant(ctx context.Context, name string, coalesceDefault bool, now time.Time) (domain.Tenant, error)
	SetTenantCoalesceDefault(ctx context.Context, tenantID string, on bool) (domain.Tenant, error)
	CreateAPIKey(ctx context.Context, tenantID, name string, admin bool, now time.Time) (domain.APIKey, string, error)
	ListAPIKeys(ctx context.Context, tenantID string) ([]domain.APIKey, error)
	RevokeAPIKey(ctx context.Context, id int64, now time.Time) (domain.APIKey, error)
	PendingByModelAndWindow(ctx context.Context, windows []time.Duration, f domain.PendingFilter, now time.Time) (domain.WindowCounts, error)
}

// Batches runs the batch use cases (package batches); the handlers decode a request into one
// call and encode its result.
type Batches interface {
	Create(ctx context.Context, c batches.Create) (batches.Created, error)
	Cancel(ctx context.Context, tenantID, batchID string) (domain.Batch, error)
	CancelRequests(ctx context.Context, tenantID, batchID string, ids []string) ([]domain.CancelOutcome, error)
	Retry(ctx context.Context, tenantID, batchID string, ids []string) (domain.Batch, error)
	Delete(ctx context.Context, tenantID, batchID string) error
	DeleteFile(ctx context.Context, tenantID, fileID string) error
	Extend(ctx context.Context, tenantID, batchID, window string) (domain.Batch, error)
	Rerun(ctx context.Context, r batches.Rerun) (domain.Batch, error)
}

// Dispatcher starts dispatching a model's work at once (the engine): after an admin raised its
// limit.
type Dispatcher interface {
	Dispatch(ctx context.Context, models ...string) error
}

// Ingester validates and stores uploaded files.
type Ingester interface {
	Store(ctx context.Context, u ingest.Upload) (domain.File, error)
	Fill(ctx context.Context, f domain.File, body io.Reader) (domain.File, error)
	Complete(ctx context.Context, f domain.File) (domain.File, error)
	Check(ctx context.Context, key, endpoint string, anyModel bool, maxErrors int) (ingest.Report, error)
	Limits() ingest.Limits
}

// Blobs reads file contents and hands out presigned URLs for the large-file paths.
type Blobs interface {
	Get(ctx context.Context, key string) (io.ReadCloser, int64, error)
	Delete(ctx context.Context, key string) error
	PresignGet(ctx context.Context, key, filename string, ttl time.Duration) (string, error)
	PresignPut(ctx context.Context, key string, size int64, ttl time.Duration) (string, error)
	PutSmall(ctx context.Context, key string, body []byte, contentType string) error
	Size(ctx context.Context, key string) (int64, error)
	DeletePrefix(ctx context.Context, prefix string) error
}

// DefaultMaxDirectUploadBytes is Config.MaxDirectUploadBytes's default (see there); the CLI sends
// files over it by the presigned path.
const DefaultMaxDirectUploadBytes = 4_500_000

// Config tunes the API. Zero values mean the documented defaults.
type Config struct {
	// CompletionWindows is the allow-list for completion_window; default
	// {domain.DefaultCompletionWindow} ("24h").
	CompletionWindows []string
	// FileTTL is how long an input file lives without expires_after; default 30 days (OpenAI's).
	FileTTL time.Duration
	// MaxDirectUploadBytes caps the body of a direct request that carries file content (a
	// multipart POST /v1/files or an upload part). Default 4,500,000 bytes: on AWS the request
	// reaches the function inside a 6 MB (6,291,456-byte) invocation payload, and API Gateway
	// base64-encodes multipart bodies, which inflates them by a third. Larger files take the
	// presigned path (POST /v1/files with a JSON body) or the Uploads API. The cap is the same
	// locally, so what works locally works on AWS.
	MaxDirectUploadBytes int64
	// MaxInlineResponseBytes is the largest response body the API writes itself. Default
	// 4,000,000 bytes: a Lambda response is capped at 6 MB and JSONL grows when embedded in the
	// function's JSON response (every quote is escaped). A finished file larger than this is
	// served by a 302 to a presigned S3 URL; a page of partial content stops before it, with
	// X-Incomplete: true and X-Last-Line telling where to continue.
	MaxInlineResponseBytes int64
	// PresignTTL is how long a presigned upload or download URL is valid; default 15 minutes.
	PresignTTL time.Duration
	// UploadTTL is how long an Uploads API upload accepts parts; default 1 hour (OpenAI's).
	UploadTTL time.Duration
	// CredentialRefs is the credential_ref forms a model may be stored with (the worker's resolver
	// applies the same policy); the zero value allows env: references only.
	CredentialRefs domain.CredentialPolicy
	// StaleWorker is the silence after which GET /v1/admin/workers calls a worker stale, the
	// rescue's threshold (STALE_WORKER_MS); default domain.DefaultStaleWorker (60s).
	StaleWorker time.Duration
	// PublicURL is the origin clients reach the API at (PUBLIC_API_URL, e.g.
	// "https://batch.example.com"), which message batches' results_url starts with. Default
	// empty: results_url is root-relative (/v1/messages/batches/{id}/results), which Anthropic's
	// SDKs resolve against their base URL.
	PublicURL string
	// Webhooks is the policy endpoint URLs are checked against at registration (the sender
	// checks again at every connection); the zero value is production's, https to public
	// addresses only.
	Webhooks webhooks.Policy
}

// Deps are the API's collaborators.
type Deps struct {
	Store    Store
	Ingester Ingester
	Blobs    Blobs
	// Batches serves creating, cancelling, retrying and deleting batches, and deleting files.
	Batches Batches
	Engine  Dispatcher
	// Queue is checked by GET /readyz beside the database; nil checks the database alone.
	Queue QueueChecker
	// Webhooks stores the tenants' webhook endpoints and lists their deliveries.
	Webhooks WebhookStore
	Logger   *slog.Logger
	Now      func() time.Time
}

type server struct {
	cfg      Config
	store    Store
	ingester Ingester
	blobs    Blobs
	batches  Batches
	engine   Dispatcher
	queue    QueueChecker
	hooks    WebhookStore
	log      *slog.Logger
	now      func() time.Time
}

// withRequestID gives every answer of the Anthropic routes a request-id header (Anthropic's
// SDKs read it into their errors): "req_" and 24 random letters or digits.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("request-id", domain.NewRequestID())
		next.ServeHTTP(w, r)
	})
}

// New returns the API handler.
func New(cfg Config, d Deps) http.Handler {
	if len(cfg.CompletionWindows) == 0 {
		cfg.CompletionWindows = []string{domain.DefaultCompletionWindow}
	}
	if cfg.FileTTL <= 0 {
		cfg.FileTTL = 30 * 24 * time.Hour
	}
	if cfg.MaxDirectUploadBytes <= 0 {
		cfg.MaxDirectUploadBytes = DefaultMaxDirectUploadBytes
	}
	if cfg.MaxInlineResponseBytes <= 0 {
		cfg.MaxInlineResponseBytes = 4_000_000
	}
	if cfg.PresignTTL <= 0 {
		cfg.PresignTTL = 15 * time.Minute
	}
	if cfg.StaleWorker <= 0 {
		cfg.StaleWorker = domain.DefaultStaleWorker
	}
	if cfg.UploadTTL <= 0 {
		cfg.UploadTTL = time.Hour
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	s := &server{cfg: cfg, store: d.Store, ingester: d.Ingester, blobs: d.Blobs, batches: d.Batches,
		engine: d.Engine, queue: d.Queue, hooks: d.Webhooks, log: d.Logger, now: d.Now}
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		h := rt.handler
		if rt.access != accessPublic {
			h = s.checkInput(rt.pattern, h) // after authentication: a caller without a key learns nothing
		}
		switch rt.access {
		case accessTenant:
			h = s.authenticate(h, false)
		case accessAdmin:
			h = s.authenticate(h, true)
		}
		if isMessagesPath(rt.pattern) {
			h = withRequestID(h)
		}
		mux.Handle(rt.method+" "+rt.pattern, h)
	}
	mux.Handle(messagesPrefix, withRequestID(http.HandlerFunc(s.unknownRoute)))
	mux.HandleFunc("/", s.unknownRoute)
	return s.recoverer(mux)
}

// unknownRoute is the answer to a path no route serves (and to an admin route for a key that is
// not an admin's): OpenAI's 404 for an unknown URL.
func (s *server) unknownRoute(w http.ResponseWriter, r *http.Request) {
	s.error(w, r, &domain.Error{Code: domain.ENotFound, Message: "Unknown request URL: " + r.Method + " " + r.URL.Path + "."})
}

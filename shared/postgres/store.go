// Package postgres is fusillade's store: every read and write of tenants, models, files, batches,
// requests and worker records, on PostgreSQL through pgx. The SQL lives in queries*.sql and the
// schema in migrations/; the typed Go that runs the queries is generated from both by sqlc into
// internal/pgq (see sqlc.yaml at the repository root and `make sqlc`).
package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/postgres/internal/pgq"
)

// Store is safe for concurrent use.
type Store struct {
	pool db           // every error is classified once: invalid input, unavailable, or as it is
	q    *pgq.Queries // the generated queries over pool (a transaction uses pgq.New(tx))
	// replica is the read replica's pool (a nil Pool without one) and rq the queries over it;
	// without a replica rq is q. Only the reads listed in replica.go use rq.
	replica db
	rq      *pgq.Queries
	log     *slog.Logger
	// cacheTTL keeps a coalescing leader's completed answer in coalesce_cache (0: no cache).
	cacheTTL time.Duration
}

// Options configures Open.
type Options struct {
	// MaxConns caps the pool, and the replica's pool on its own. Default DefaultMaxConns (10): a
	// Lambda instance serves one invocation at a time, but a worker runs the requests of one SQS
	// batch concurrently and each may touch the database.
	MaxConns int32
	// ReplicaURL names a read replica of the database (a streaming standby, an Aurora reader
	// endpoint), which serves the API's list, get, content and results reads and the pending
	// counts (replica.go). Default "": no replica, every read goes to the primary.
	ReplicaURL string
	// CoalesceCacheTTL keeps the completed answers of coalescing batches for that long, so that
	// lines with the same key populated later are served from them (COALESCE_CACHE_TTL). Default
	// DefaultCoalesceCacheTTL (0): no result cache.
	CoalesceCacheTTL time.Duration
	Logger           *slog.Logger
}

// DefaultCoalesceCacheTTL is the result cache's default lifetime: 0, off. config.Load's
// COALESCE_CACHE_TTL default reads it from here.
const DefaultCoalesceCacheTTL time.Duration = 0

// DefaultMaxConns is the pool cap when Options.MaxConns is unset; config.Load's DB_MAX_CONNS
// default reads it from here.
const DefaultMaxConns = 10

// Open connects to url and verifies the connection.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	cfg.MaxConns = opts.MaxConns
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: ping: %w", err)
	}
	s := New(pool, opts.Logger)
	s.cacheTTL = opts.CoalesceCacheTTL
	if opts.ReplicaURL != "" {
		replica, err := openReplica(ctx, opts.ReplicaURL, cfg.MaxConns, s.log)
		if err != nil {
			pool.Close()
			return nil, err
		}
		s.replica = db{replica}
		s.rq = pgq.New(s.replica)
	}
	return s, nil
}

// New wraps an existing pool.
func New(pool *pgxpool.Pool, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := db{pool}
	q := pgq.New(d)
	return &Store{pool: d, q: q, rq: q, log: log}
}

// WithCoalesceCacheTTL sets the result cache's lifetime (Options.CoalesceCacheTTL) on a store
// made with New, and returns it.
func (s *Store) WithCoalesceCacheTTL(ttl time.Duration) *Store {
	s.cacheTTL = ttl
	return s
}

// Pool exposes the pool for migrations, tests and benchmarks.
func (s *Store) Pool() *pgxpool.Pool { return s.pool.Pool }

// ReplicaPool exposes the read replica's pool for tests; nil without a replica.
func (s *Store) ReplicaPool() *pgxpool.Pool { return s.replica.Pool }

// Ping checks that the database answers (readiness). It asks the primary alone: a replica that
// does not answer only sends its reads to the primary.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Close closes the pool and the replica's.
func (s *Store) Close() {
	s.pool.Close()
	if s.replica.Pool != nil {
		s.replica.Close()
	}
}

// Migrate applies pending migrations.
func (s *Store) Migrate(ctx context.Context) (int, error) { return Migrate(ctx, s.pool.Pool) }

// ─── tenants and keys ───────────────────────────────────────────────────────────────────────────

// Authenticate resolves an API key. The lookup is by SHA-256 hash through a unique index: an
// equality match on a hash leaks nothing useful about the key through timing, because an attacker
// cannot choose hash prefixes.
func (s *Store) Authenticate(ctx context.Context, key string) (domain.Principal, error) {
	sum := sha256.Sum256([]byte(key))
	r, err := s.q.Authenticate(ctx, sum[:])
	p := domain.Principal{TenantID: r.TenantID, KeyID: r.ID, Admin: r.IsAdmin}
	if errors.Is(err, pgx.ErrNoRows) {
		return p, &domain.Error{Code: domain.EUnauthorized, Message: "Incorrect API key provided."}
	}
	if err != nil {
		return p, fmt.Errorf("authenticate: %w", err)
	}
	return p, nil
}

// ─── models ─────────────────────────────────────────────────────────────────────────────────────

// UpsertModel creates or updates a model; a new limit applies to the next claim.
func (s *Store) UpsertModel(ctx context.Context, m domain.Model) error {
	var esc *string
	if m.EscalationModel != "" {
		esc = &m.EscalationModel
	}
	if m.EscalationThreshold == 0 {
		m.EscalationThreshold = domain.DefaultEscalationThresholdSecs
	}
	err := s.q.UpsertModel(ctx, pgq.UpsertModelParams{Name: m.Name, BaseUrl: m.BaseURL, CredentialRef: m.CredentialRef,
		ConcurrencyLimit: int32(m.ConcurrencyLimit), EscalationModel: esc, EscalationThresholdSecs: int32(m.EscalationThreshold)})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation: no such escalation model
		return &domain.Error{Code: domain.EInvalid, Param: "escalation_model",
			Message: fmt.Sprintf("escalation_model %q is not a configured model.", m.EscalationModel)}
	}
	if err != nil {
		return fmt.Errorf("upsert model %q: %w", m.Name, err)
	}
	return nil
}

// ListModels returns every model with its current in-flight count.
func (s *Store) ListModels(ctx context.Context) ([]domain.Model, error) {
	rows, err := s.q.ListModels(ctx)
	if err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	out := make([]domain.Model, len(rows))
	for i, r := range rows {
		out[i] = modelOf(pgq.GetModelRow(r))
	}
	return out, nil
}

// GetModel returns one model.
func (s *Store) GetModel(ctx context.Context, name string) (domain.Model, error) {
	r, err := s.q.GetModel(ctx, name)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Model{}, domain.Errorf(domain.ENotFound, "model %q is not configured", name)
	}
	if err != nil {
		return domain.Model{}, fmt.Errorf("get model: %w", err)
	}
	return modelOf(r), nil
}

// modelOf maps the row ListModels and GetModel share (GetModel reads no in-flight count).
func modelOf(r pgq.GetModelRow) domain.Model {
	return domain.Model{Name: r.Name, BaseURL: r.BaseUrl, CredentialRef: r.CredentialRef, ConcurrencyLimit: int(r.ConcurrencyLimit),
		EscalationModel: r.EscalationModel, EscalationThreshold: int(r.EscalationThresholdSecs), InFlight: int(r.InFlight)}
}

// ─── files ──────────────────────────────────────────────────────────────────────────────────────

// InsertFile records a file whose content is already stored.
func (s *Store) InsertFile(ctx context.Context, f domain.File) error {
	return insertFile(ctx, s.q, f)
}

func insertFile(ctx context.Context, q *pgq.Queries, f domain.File) error {
	var details, key, batch *string
	if f.StatusDetails != "" {
		details = &f.StatusDetails
	}
	if f.ObjectKey != "" {
		key = &f.ObjectKey
	}
	if f.BatchID != "" {
		batch = &f.BatchID
	}
	err := q.InsertFile(ctx, pgq.InsertFileParams{ID: f.ID, TenantID: f.TenantID, Filename: f.Filename, Purpose: f.Purpose,
		Bytes: f.Bytes, Status: f.Status, StatusDetails: details, ObjectKey: key, LineCount: int32(f.Lines), BatchID: batch,
		CreatedAt: f.CreatedAt, ExpiresAt: f.ExpiresAt, CreatedByKey: keyRef(f.CreatedByKey)})
	if err != nil {
		return fmt.Errorf("insert file: %w", err)
	}
	return nil
}

// GetFile returns a tenant's file from the primary; another tenant's file is reported exactly
// like a missing one. What a write is decided on reads it so, never ViewFile.
func (s *Store) GetFile(ctx context.Context, tenantID, id string) (domain.File, error) {
	return getFile(ctx, s.q, tenantID, id)
}

// ViewFile is GetFile for answers that only show the file: a replica may serve it, a little
// behind the primary but never missing a file the primary has (replica.go).
func (s *Store) ViewFile(ctx context.Context, tenantID, id string) (domain.File, error) {
	var f domain.File
	err := s.read(ctx, func(q *pgq.Queries) (err error) {
		f, err = getFile(ctx, q, tenantID, id)
		return err
	})
	return f, err
}

func getFile(ctx context.Context, q *pgq.Queries, tenantID, id string) (domain.File, error) {
	r, err := q.GetFile(ctx, pgq.GetFileParams{ID: id, TenantID: tenantID})
	f := fileOf(r)
	if errors.Is(err, pgx.ErrNoRows) {
		return f, &domain.Error{Code: domain.ENotFound, Message: fmt.Sprintf("No such File object: %s", id), Param: "id"}
	}
	if err != nil {
		return f, fmt.Errorf("get file: %w", err)
	}
	return f, nil
}

// fileOf maps the file row GetFile, ListFilesDesc and ListFilesAsc share.
func fileOf(r pgq.GetFileRow) domain.File {
	return domain.File{ID: r.ID, TenantID: r.TenantID, Filename: r.Filename, Purpose: r.Purpose, Bytes: r.Bytes, Status: r.Status,
		StatusDetails: r.StatusDetails, ObjectKey: r.ObjectKey, Lines: int(r.LineCount), BatchID: r.BatchID,
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, CreatedByKey: keyID(r.CreatedByKey)}
}

// keyRef and keyID map a creator's API key id to its nullable column and back: 0 (unknown) is NULL.
func keyRef(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

func keyID(ref *int64) int64 {
	if ref == nil {
		return 0
	}
	return *ref
}

// ─── batches ────────────────────────────────────────────────────────────────────────────────────

// InsertBatch records a new batch in status validating together with its (still empty) output
// and error files, whose ids must be set in b.
func (s *Store) InsertBatch(ctx context.Context, b domain.Batch) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return insertBatch(ctx, pgq.New(tx), b) })
}

// insertBatch writes a validating batch and its reserved output and error files with q, inside
// the caller's transaction.
func insertBatch(ctx context.Context, q *pgq.Queries, b domain.Batch) error {
	meta, err := json.Marshal(b.Metadata)
	if err != nil {
		return err
	}
	if b.Metadata == nil {
		meta = nil
	}
	for _, f := range []struct{ id, purpose, suffix string }{
		{b.OutputFileID, domain.PurposeBatchOutput, "_output.jsonl"},
		{b.ErrorFileID, domain.PurposeBatchError, "_error.jsonl"},
	} {
		if err := insertFile(ctx, q, domain.File{ID: f.id, TenantID: b.TenantID, Filename: b.ID + f.suffix, Purpose: f.purpose,
			Status: domain.FileProcessed, BatchID: b.ID, CreatedAt: b.CreatedAt, CreatedByKey: b.CreatedByKey}); err != nil {
			return err
		}
	}
	err = q.InsertBatch(ctx, pgq.InsertBatchParams{ID: b.ID, TenantID: b.TenantID, InputFileID: &b.InputFileID,
		Endpoint: b.Endpoint, CompletionWindow: b.CompletionWindow, Metadata: meta, Total: int32(b.Counts.Total),
		CreatedAt: b.CreatedAt, ExpiresAt: b.ExpiresAt, OutputFileID: &b.OutputFileID, ErrorFileID: &b.ErrorFileID,
		CreatedByKey: keyRef(b.CreatedByKey), FailFastAfter: int32(b.FailFastAfter), Api: apiOf(b.API),
		Coalescing: b.Coalesce})
	if err != nil {
		return fmt.Errorf("insert batch: %w", err)
	}
	return nil
}

// GetBatch returns a tenant's batch with live counts, from the primary. What a write is decided
// on, and what a create, cancel or retry answers, reads it so, never ViewBatch.
func (s *Store) GetBatch(ctx context.Context, tenantID, id string) (domain.Batch, error) {
	return getBatch(ctx, s.q, tenantID, id)
}

// ViewBatch is GetBatch for answers that only show the batch: a replica may serve it, a little
// behind the primary but never missing a batch the primary has (replica.go).
func (s *Store) ViewBatch(ctx context.Context, tenantID, id string) (domain.Batch, error) {
	var b domain.Batch
	err := s.read(ctx, func(q *pgq.Queries) (err error) {
		b, err = getBatch(ctx, q, tenantID, id)
		return err
	})
	return b, err
}

func getBatch(ctx context.Context, q *pgq.Queries, tenantID, id string) (domain.Batch, error) {
	r, err := q.GetBatch(ctx, pgq.GetBatchParams{ID: id, TenantID: tenantID})
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Batch{}, batchNotFound(id)
	}
	if err != nil {
		return domain.Batch{}, fmt.Errorf("get batch: %w", err)
	}
	b, err := batchOf(r.BatchRow)
	if err != nil {
		return b, fmt.Errorf("get batch: %w", err)
	}
	return b, nil
}

// ─── populate ───────────────────────────────────────────────────────────────────────────────────

// BatchForPopulate returns what populate needs to read a batch's input file: its tenant, its
// endpoint (the validator's rules) and its status, so that a batch that is no longer validating
// is skipped before its file is opened. A missing batch is ENotFound.
func (s *Store) BatchForPopulate(ctx context.Context, batchID string) (tenantID, endpoint string, status domain.BatchStatus, err error) {
	row, err := s.q.BatchForPopulate(ctx, batchID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", "", domain.Errorf(domain.ENotFound, "batch %s not found", batchID)
	}
	if err != nil {
		return "", "", "", fmt.Errorf("batch %s for populate: %w", batchID, err)
	}
	return row.TenantID, row.Endpoint, domain.BatchStatus(row.Status), nil
}

// InsertRequests inserts every request of src into a validating batch with COPY and starts the
// batch, in one transaction that holds the batch row lock. It is idempotent: a duplicate call
// waits for the first and then finds the batch no longer validating, and returns Skipped without
// reading src. A bad line (a *domain.Error from src) fails the batch with its line number and
// inserts nothing.
func (s *Store) InsertRequests(ctx context.Context, batchID string, src domain.RequestSource, now time.Time) (domain.PopulateResult, error) {
	var res domain.PopulateResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := pgq.New(tx)
		locked, err := q.LockBatchForPopulate(ctx, pgq.LockBatchForPopulateParams{ID: batchID, VariantKey: domain.AnthropicVersionKey})
		if err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				res.Skipped = true
				return nil
			}
			return fmt.Errorf("lock batch: %w", err)
		}
		status, tenantID := locked.Status, locked.TenantID
		if status != string(domain.BatchValidating) {
			res.Skipped = true
			return nil
		}
		cs := &copySource{src: src, batchID: batchID, tenantID: tenantID, models: map[string]bool{}, keyed: locked.Coalescing, variant: locked.Variant}
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"requests"},
			[]string{"id", "batch_id", "tenant_id", "line", "custom_id", "model", "path", "body", "body_bytes", "body_key"}, cs)
		// pgx reports a source error as the server's "COPY from stdin failed", so look at what the
		// source itself stopped on.
		var bad *domain.Error
		if errors.As(cs.err, &bad) || errors.As(err, &bad) {
			res.Failed = bad
			return errRollback
		}
		if err != nil {
			return fmt.Errorf("copy requests: %w", err)
		}
		res.Inserted = int(n)
		res.Models = cs.order
		if locked.Coalescing {
			// Lines whose answer the result cache still holds end here, without an upstream call.
			// The cache is consulted even with COALESCE_CACHE_TTL now 0: its entries keep the
			// lifetime they were written with.
			cached, err := q.ServeFromCache(ctx, pgq.ServeFromCacheParams{BatchID: batchID, Now: &now})
			if err != nil {
				return fmt.Errorf("serve from cache: %w", err)
			}
			res.Cached = int(cached)
		}
		first := ""
		if len(cs.order) > 0 {
			first = cs.order[0]
		}
		started, err := q.StartBatch(ctx, pgq.StartBatchParams{ID: batchID, Now: &now, Total: int32(n), Models: cs.order, Model: &first})
		if err != nil {
			return fmt.Errorf("start batch: %w", err)
		}
		if started != 1 {
			return domain.ErrStateConflict
		}
		return nil
	})
	if errors.Is(err, errRollback) {
		return res, s.FailBatch(ctx, batchID, now, []domain.BatchError{batchErrorOf(res.Failed)})
	}
	return res, err
}

var errRollback = errors.New("rollback")

func batchErrorOf(e *domain.Error) domain.BatchError {
	be := domain.BatchError{Code: e.Reason, Message: e.Message}
	if be.Code == "" {
		be.Code = string(e.Code)
	}
	if e.Param != "" {
		p := e.Param
		be.Param = &p
	}
	if e.Line > 0 {
		l := e.Line
		be.Line = &l
	}
	return be
}

// FailBatch moves a validating batch to failed with errs.
func (s *Store) FailBatch(ctx context.Context, batchID string, now time.Time, errs []domain.BatchError) error {
	doc, err := json.Marshal(map[string]any{"object": "list", "data": errs})
	if err != nil {
		return err
	}
	if err := s.q.FailBatch(ctx, pgq.FailBatchParams{ID: batchID, Now: &now, Errors: doc}); err != nil {
		return fmt.Errorf("fail batch: %w", err)
	}
	return nil
}

type copySource struct {
	src      domain.RequestSource
	batchID  string
	tenantID string
	cur      domain.NewRequest
	err      error
	models   map[string]bool
	order    []string
	keyed    bool   // the batch coalesces: each line gets its body_key
	variant  string // the batch's part of the key (domain.BodyKey)
}

func (c *copySource) Next() bool {
	r, err := c.src.Next()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			c.err = err
		}
		return false
	}
	c.cur = r
	if !c.models[r.Model] {
		c.models[r.Model] = true
		c.order = append(c.order, r.Model)
	}
	return true
}

func (c *copySource) Values() ([]any, error) {
	r := c.cur
	var key []byte // NULL: the line is not coalesced
	if c.keyed {
		key = domain.BodyKey(c.tenantID, r.Model, r.Path, c.variant, r.Body)
	}
	return []any{r.ID, c.batchID, c.tenantID, r.Line, r.CustomID, r.Model, r.Path, r.Body, len(r.Body), key}, nil
}

func (c *copySource) Err() error { return c.err }

// InputObjectKey returns the S3 key of a batch's input file.
func (s *Store) InputObjectKey(ctx context.Context, batchID string) (string, error) {
	r, err := s.q.FileForBatch(ctx, batchID)
	key := r.ObjectKey
	if errors.Is(err, pgx.ErrNoRows) {
		return "", domain.Errorf(domain.ENotFound, "batch %s not found", batchID)
	}
	if err != nil {
		return "", fmt.Errorf("input file of %s: %w", batchID, err)
	}
	if key == nil {
		return "", fmt.Errorf("input file of %s has no content", batchID)
	}
	return *key, nil
}

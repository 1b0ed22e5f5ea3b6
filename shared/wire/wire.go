// Package wire builds fusillade's adapters from a config.Config: the Postgres store, the S3
// blob store, the queues, the secrets resolver, and on top of them the engine, the ingester and
// the HTTP API. Every function's main and the local stack assemble themselves through it, so a
// function on AWS and the same function in the local stack are wired identically.
package wire

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/fusillade/fusillade/shared/batches"
	"github.com/fusillade/fusillade/shared/config"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/emf"
	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/httpapi"
	"github.com/fusillade/fusillade/shared/ingest"
	"github.com/fusillade/fusillade/shared/postgres"
	"github.com/fusillade/fusillade/shared/s3blob"
	"github.com/fusillade/fusillade/shared/secrets"
	"github.com/fusillade/fusillade/shared/sqsqueue"
	"github.com/fusillade/fusillade/shared/upstream"
	"github.com/fusillade/fusillade/shared/webhooks"
)

// App holds one process's adapters. Fields a function does not need are still built: they are
// cheap (clients, no connections) and keeping one shape keeps the mains trivial.
type App struct {
	Config   config.Config
	Log      *slog.Logger
	Store    *postgres.Store
	Blobs    *s3blob.Store
	Work     *sqsqueue.Queue
	Populate *sqsqueue.Queue
	Secrets  *secrets.Resolver
	Engine   *engine.Engine
	Ingester *ingest.Ingester
	// Metrics is what the engine reports to (Options.Metrics, or engine.NopMetrics); EMF is set
	// when it is an EMF recorder (Boot's), which the mains flush at the end of each invocation
	// with emf.Flushing.
	Metrics engine.Metrics
	EMF     *emf.Recorder
}

// Options adjusts Open.
type Options struct {
	// Function names the process in worker records: api, populate, dispatch, worker, purge.
	Function string
	// AWS overrides the AWS configuration (the local stack passes static credentials); nil loads
	// the default chain.
	AWS *aws.Config
	// Upstream overrides the upstream transport (tests); nil uses the tuned default.
	Upstream http.RoundTripper
	// Getenv resolves env: credential references; nil uses os.Getenv.
	Getenv func(string) string
	// Migrate applies pending migrations on open (the local stack). On AWS the deployment's
	// migration step does it (the migrate function, see Migrate).
	Migrate bool
	// Metrics receives the engine's figures (Boot passes an EMF recorder on stdout, the local
	// stack a Prometheus registry); nil reports nothing.
	Metrics engine.Metrics
	// Decorate, when set, wraps the engine's collaborators before the engine is built (the
	// benchmark times each store, queue and upstream call this way).
	Decorate func(engine.Deps) engine.Deps
}

// NewLogger returns a JSON logger at level ("debug", "info", "warn", "error").
func NewLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// Open builds the App.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger, opts Options) (*App, error) {
	if log == nil {
		log = NewLogger(os.Stdout, cfg.LogLevel)
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	var awsCfg aws.Config
	if opts.AWS != nil {
		awsCfg = *opts.AWS
	} else {
		var err error
		if awsCfg, err = awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(cfg.Region)); err != nil {
			return nil, fmt.Errorf("aws config: %w", err)
		}
	}
	var sm secrets.Fetcher
	if cfg.DatabaseSecretARN != "" || cfg.DatabaseReplicaSecretARN != "" || opts.AWS == nil {
		sm = secretsmanager.NewFromConfig(awsCfg)
	}
	res := secrets.NewResolver(opts.Getenv, sm, domain.CredentialPolicy{ARNPrefix: cfg.UpstreamSecretARNPrefix})
	dbURL := cfg.DatabaseURL
	if dbURL == "" {
		var err error
		if dbURL, err = res.DatabaseURL(ctx, cfg.DatabaseSecretARN); err != nil {
			return nil, err
		}
	}
	// The read replica is optional (only the API's environment names one on AWS); without one
	// every read goes to the primary.
	replicaURL := cfg.DatabaseReplicaURL
	if replicaURL == "" && cfg.DatabaseReplicaSecretARN != "" {
		var err error
		if replicaURL, err = res.DatabaseURL(ctx, cfg.DatabaseReplicaSecretARN); err != nil {
			return nil, fmt.Errorf("replica: %w", err)
		}
	}
	store, err := postgres.Open(ctx, dbURL, postgres.Options{MaxConns: int32(cfg.DBMaxConns), ReplicaURL: replicaURL, Logger: log,
		CoalesceCacheTTL: cfg.CoalesceCacheTTL})
	if err != nil {
		return nil, err
	}
	if opts.Migrate {
		n, err := store.Migrate(ctx)
		if err != nil {
			store.Close()
			return nil, err
		}
		if n > 0 {
			log.Info("applied migrations", "count", n)
		}
	}
	// Once per process (a function's cold start): an older schema stops it here, before it serves
	// anything, and the platform retries the invocation on a fresh instance, which checks again.
	if err := postgres.CheckSchema(ctx, store.Pool()); err != nil {
		store.Close()
		return nil, err
	}
	a := &App{Config: cfg, Log: log, Store: store, Secrets: res, Metrics: opts.Metrics}
	if a.Metrics == nil {
		a.Metrics = engine.NopMetrics{}
	}
	if r, ok := a.Metrics.(*emf.Recorder); ok {
		a.EMF = r
	}
	a.Blobs = s3blob.New(s3blob.NewClient(awsCfg, cfg.S3Endpoint, cfg.S3PathStyle), cfg.Bucket)
	sqsClient := sqsqueue.NewClient(awsCfg, cfg.SQSEndpoint)
	a.Work = sqsqueue.New(sqsClient, cfg.WorkQueue)
	a.Populate = sqsqueue.New(sqsClient, cfg.PopulateQueue)
	up := upstream.New(upstream.Config{
		FirstByteTimeout:  cfg.FirstByteTimeout,
		BodyTimeout:       cfg.BodyTimeout,
		MaxResponseBytes:  cfg.MaxResponseBytes,
		RetriableStatuses: cfg.RetriableStatuses,
		StreamablePaths:   cfg.StreamablePaths,
		Transport:         opts.Upstream,
	})
	hooks := webhooks.NewSender(webhooks.Config{Policy: webhooks.Policy{AllowPrivate: cfg.WebhookAllowPrivate},
		Schedule: cfg.WebhookSchedule, Timeout: cfg.WebhookTimeout}, store, log, nil)
	deps := engine.Deps{Store: store, Queue: a.Work, Upstream: up, Blobs: a.Blobs, Credentials: res, Logger: log, Metrics: a.Metrics,
		Webhooks: hooks}
	if opts.Decorate != nil {
		deps = opts.Decorate(deps)
	}
	a.Engine = engine.New(engine.Config{
		Retry:             cfg.Retry,
		ClaimTimeout:      cfg.ClaimTimeout,
		ProcessingTimeout: cfg.ProcessingTimeout,
		StaleWorker:       cfg.StaleWorker,
		LoopFor:           cfg.LoopFor,
		RefillReserve:     cfg.RefillReserve,
		UrgencyWeight:     &cfg.UrgencyWeight,
		MetadataHeaders:   cfg.MetadataHeaders,
		Function:          opts.Function,
	}, deps)
	a.Ingester = ingest.New(store, a.Blobs, a.Engine, ingest.Limits{MaxFileBytes: cfg.MaxFileBytes, MaxLines: cfg.MaxLines}, log, nil)
	return a, nil
}

// API returns the HTTP API handler.
func (a *App) API() http.Handler {
	svc := batches.New(batches.Deps{Store: a.Store, Checker: a.Ingester, Populate: a.Populate, Engine: a.Engine, Logger: a.Log,
		FailFastAfter: a.Config.FailFastAfter})
	// GET /readyz checks the work queue (the one the API sends retries to) when one is configured.
	var queue httpapi.QueueChecker
	if a.Config.WorkQueue != "" {
		queue = a.Work
	}
	return httpapi.New(httpapi.Config{CompletionWindows: a.Config.CompletionWins, CredentialRefs: a.Secrets.Policy(),
		StaleWorker: a.Config.StaleWorker, Webhooks: webhooks.Policy{AllowPrivate: a.Config.WebhookAllowPrivate}, PublicURL: a.Config.PublicURL},
		httpapi.Deps{Store: a.Store, Webhooks: a.Store, Ingester: a.Ingester, Blobs: a.Blobs, Batches: svc, Engine: a.Engine, Queue: queue, Logger: a.Log})
}

// Close releases the database pool.
func (a *App) Close() { a.Store.Close() }

// Boot is a function's cold start: it reads and validates the configuration from getenv, checks
// the settings the function cannot run without, and opens the App, which refuses a schema older
// than this build. A bad setting or an unmigrated database fails here, once per cold start,
// instead of on every invocation.
func Boot(ctx context.Context, getenv func(string) string, function string, required ...string) (*App, error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return nil, err
	}
	if err := cfg.Require(required...); err != nil {
		return nil, err
	}
	// Metrics go to stdout as EMF records beside the logs, which CloudWatch Logs turns into
	// metrics: no client, no permission, no call on the request path.
	rec := emf.New(os.Stdout, emf.Options{Namespace: cfg.MetricsNamespace, Function: function})
	return Open(ctx, cfg, nil, Options{Function: function, Getenv: getenv, Metrics: rec})
}

// Migrate is the deployment's migration step (the migrate function, which CloudFormation invokes
// before it updates the other functions): it applies every pending migration to the configured
// database and returns the schema version it is at afterwards. It opens the database only.
func Migrate(ctx context.Context, cfg config.Config) (version, applied int, err error) {
	dbURL := cfg.DatabaseURL
	if dbURL == "" {
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(cfg.Region))
		if err != nil {
			return 0, 0, fmt.Errorf("aws config: %w", err)
		}
		res := secrets.NewResolver(os.Getenv, secretsmanager.NewFromConfig(awsCfg), domain.CredentialPolicy{})
		if dbURL, err = res.DatabaseURL(ctx, cfg.DatabaseSecretARN); err != nil {
			return 0, 0, err
		}
	}
	// Two connections: the advisory lock's and one spare.
	store, err := postgres.Open(ctx, dbURL, postgres.Options{MaxConns: 2})
	if err != nil {
		return 0, 0, err
	}
	defer store.Close()
	if applied, err = store.Migrate(ctx); err != nil {
		return 0, applied, err
	}
	version, err = postgres.SchemaVersion(ctx, store.Pool())
	return version, applied, err
}

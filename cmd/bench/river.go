package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/fusillade/fusillade/local/mockupstream"
)

// The River comparator does per job what fusillade does per request, with River
// (github.com/riverqueue/river, pgx v5 driver) as the queue: POST the line's body to a mock
// upstream with the same latency profile and seed, then in one transaction insert the answer into
// a results table and complete the job (river.JobCompleteTx). One River queue per model with
// MaxWorkers = the model's limit stands for the per-model concurrency limit. River's schema and
// the results table live in a database of their own on the same server, and the comparator runs
// after fusillade's phase has stopped, never beside it.

// River's fetch knobs as the comparator tunes them (River's defaults are 100 ms and 1 s). A slot
// freed by a finished job triggers a fetch at most FetchCooldown later, so the cooldown bounds
// River's slot refill the way the engine's refill path bounds ours; 1 ms is River's minimum. The
// poll interval only matters when no fetch is triggered, and is kept short so it never hides a
// job.
const (
	riverFetchCooldown     = 1 * time.Millisecond
	riverFetchPollInterval = 20 * time.Millisecond
	// riverMaxConns matches the single in-process fusillade instance's pool (harness DBMaxConns).
	riverMaxConns = 40
)

// riverResultsTable holds one row per finished job, as the requests table holds the response of
// each finished request.
const riverResultsTable = `CREATE TABLE bench_results (
	job_id          bigint PRIMARY KEY,
	custom_id       text NOT NULL,
	response_status integer NOT NULL,
	response_body   bytea NOT NULL
)`

const riverInsertResult = "INSERT INTO bench_results (job_id, custom_id, response_status, response_body) VALUES ($1, $2, $3, $4)"

type riverOptions struct {
	// DatabaseURL is an empty database of the comparator's own; River's migrations and the
	// results table are applied to it.
	DatabaseURL string
	// MeterBase is the server's maintenance database for the database-work figures (see
	// startDBWork); "" skips them.
	MeterBase string
	Models    []modelSpec
	Upstream  mockupstream.Config
	Content   []byte // the JSONL file fusillade is given; one job per line
	Log       *slog.Logger
}

type riverRun struct {
	Jobs     int
	Insert   time.Duration // InsertManyFast of every job, before the clock starts
	Started  time.Time     // the clock starts: insert complete, client starting
	Last     time.Time     // the last job's transaction committed
	Requests []mockupstream.Recorded
	Stats    mockupstream.Stats
	DB       DBWork // insert included, as fusillade's figure includes its ingest
	Knobs    map[string]any
}

func (r riverRun) elapsed() time.Duration { return r.Last.Sub(r.Started) }

type benchRequestArgs struct {
	CustomID string          `json:"custom_id"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

func (benchRequestArgs) Kind() string { return "bench_request" }

type benchRequestWorker struct {
	river.WorkerDefaults[benchRequestArgs]
	pool     *pgxpool.Pool
	http     *http.Client
	upstream string
	want     int

	mu    sync.Mutex
	done  int
	last  time.Time
	err   error
	allIn chan struct{} // closed when every job committed or the first failure
}

func (w *benchRequestWorker) Work(ctx context.Context, job *river.Job[benchRequestArgs]) error {
	err := w.work(ctx, job)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if w.err == nil {
			w.err = fmt.Errorf("job %d (%s): %w", job.ID, job.Args.CustomID, err)
			close(w.allIn)
		}
		return err
	}
	w.done++
	w.last = time.Now()
	if w.done == w.want && w.err == nil {
		close(w.allIn)
	}
	return nil
}

func (w *benchRequestWorker) work(ctx context.Context, job *river.Job[benchRequestArgs]) error {
	status, body, err := postJSON(ctx, w.http, w.upstream+job.Args.URL, job.Args.Body)
	if err != nil {
		return err
	}
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, riverInsertResult, job.ID, job.Args.CustomID, status, body); err != nil {
		return fmt.Errorf("insert result: %w", err)
	}
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	return tx.Commit(ctx)
}

// runRiver migrates River's schema into o.DatabaseURL, inserts one job per line of o.Content,
// then starts the clock and a River client, and returns when every job has committed.
func runRiver(ctx context.Context, o riverOptions) (run riverRun, err error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	upURL, mock, stopMock, err := serveMock(o.Upstream)
	if err != nil {
		return run, err
	}
	defer stopMock()
	cfg, err := pgxpool.ParseConfig(o.DatabaseURL)
	if err != nil {
		return run, err
	}
	cfg.MaxConns = riverMaxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return run, err
	}
	defer pool.Close()
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: log})
	if err != nil {
		return run, err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return run, fmt.Errorf("river migrate: %w", err)
	}
	if _, err := pool.Exec(ctx, riverResultsTable); err != nil {
		return run, fmt.Errorf("results table: %w", err)
	}

	params, err := riverJobs(o.Content)
	if err != nil {
		return run, err
	}
	sumLimits := 0
	queues := map[string]river.QueueConfig{}
	for _, m := range o.Models {
		queues[m.Name] = river.QueueConfig{MaxWorkers: m.Limit}
		sumLimits += m.Limit
	}
	w := &benchRequestWorker{pool: pool, upstream: upURL, want: len(params), allIn: make(chan struct{}),
		http: &http.Client{Transport: &http.Transport{MaxIdleConns: sumLimits, MaxIdleConnsPerHost: sumLimits}}}
	defer w.http.CloseIdleConnections()
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	client, err := river.NewClient(driver, &river.Config{
		Queues: queues, Workers: workers, Logger: log,
		FetchCooldown: riverFetchCooldown, FetchPollInterval: riverFetchPollInterval,
	})
	if err != nil {
		return run, err
	}

	var meter *dbWorkMeter
	if o.MeterBase != "" {
		if meter, err = startDBWork(ctx, o.MeterBase, o.DatabaseURL); err != nil {
			return run, err
		}
	}
	t0 := time.Now()
	if _, err := client.InsertManyFast(ctx, params); err != nil {
		return run, fmt.Errorf("insert jobs: %w", err)
	}
	run.Insert = time.Since(t0)
	run.Jobs = len(params)
	run.Started = time.Now()
	if err := client.Start(ctx); err != nil {
		return run, fmt.Errorf("start river: %w", err)
	}
	select {
	case <-w.allIn:
	case <-ctx.Done():
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stopErr := client.Stop(stopCtx)
	w.mu.Lock()
	run.Last, err = w.last, w.err
	done := w.done
	w.mu.Unlock()
	if err == nil {
		err = ctx.Err()
	}
	if err == nil && done != run.Jobs {
		err = fmt.Errorf("%d of %d jobs completed", done, run.Jobs)
	}
	if err != nil {
		return run, errors.Join(err, stopErr)
	}
	if stopErr != nil {
		return run, fmt.Errorf("stop river: %w", stopErr)
	}
	if meter != nil {
		if run.DB, err = meter.stop(ctx, run.Jobs); err != nil {
			return run, err
		}
	}
	var results int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM bench_results").Scan(&results); err != nil {
		return run, err
	}
	if results != run.Jobs {
		return run, fmt.Errorf("%d result rows for %d jobs", results, run.Jobs)
	}
	run.Requests, run.Stats = mock.Requests(), mock.Stats()
	run.Knobs = map[string]any{
		"river":                  "github.com/riverqueue/river v0.51.2, riverpgxv5",
		"queues":                 o.Models,
		"fetch_cooldown_ms":      riverFetchCooldown.Seconds() * 1000,
		"fetch_poll_interval_ms": riverFetchPollInterval.Seconds() * 1000,
		"db_max_conns":           riverMaxConns,
		"insert":                 "InsertManyFast of every job before the clock starts",
		"per_job":                "POST to the mock, then one transaction: INSERT result row + river.JobCompleteTx",
	}
	return run, nil
}

// riverJobs turns a batch input file into River jobs, one queue per model.
func riverJobs(content []byte) ([]river.InsertManyParams, error) {
	var params []river.InsertManyParams
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var a benchRequestArgs
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			return nil, err
		}
		var body struct {
			Model string `json:"model"`
		}
		if err := json.Unmarshal(a.Body, &body); err != nil {
			return nil, err
		}
		params = append(params, river.InsertManyParams{Args: a, InsertOpts: &river.InsertOpts{Queue: body.Model}})
	}
	return params, sc.Err()
}

// serveMock serves a mock upstream of its own on loopback.
func serveMock(cfg mockupstream.Config) (baseURL string, mock *mockupstream.Server, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	mock = mockupstream.New(cfg)
	srv := &http.Server{Handler: mock, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return "http://" + ln.Addr().String(), mock, func() {
		mock.Close()
		_ = srv.Close()
		<-done
	}, nil
}

// riverResultCount is what a test checks: rows in the results table and jobs River holds as
// completed.
func riverResultCount(ctx context.Context, dbURL string) (results, completed int, err error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM bench_results),
		(SELECT count(*) FROM river_job WHERE state = 'completed')`).Scan(&results, &completed)
	return results, completed, err
}

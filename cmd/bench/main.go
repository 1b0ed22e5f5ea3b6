// Command bench measures fusillade against the physical limit on one machine: the whole stack
// in-process (real PostgreSQL, the S3 and SQS emulators, the mock upstream with configured
// latency), one summary line per workload, and a JSON report that holds every knob next to
// every number.
//
//	go run ./cmd/bench [-quick] [-only P1,P3] [-json report.json] [-fsync=false] [-river=false] [-metrics]
//
// DATABASE_URL names the PostgreSQL server to use (each workload creates its own database on
// it); without it (make bench) a throwaway cluster is started from the installed binaries,
// durable unless -fsync=false, with pg_stat_statements preloaded. -quick runs every workload at a
// small size (a few minutes); the full mode is what docs/benchmarks.md reports. P1 and P2 also
// run the same requests through River (river.go) and a plain errgroup fan-out, one system after
// the other, and print ours ÷ River and ours ÷ errgroup.
//
// Workloads:
//
//	P1  utilisation: 10,000 requests, limit 64, upstream 200 ms fixed; lognormal p50 200 ms /
//	    p99 2 s; 3 models × 64 at once; against River and an errgroup fan-out
//	P2  throughput: 100,000 requests, zero-latency upstream, upload → sealed output, against
//	    River and a plain errgroup fan-out over the same mock; database work per request
//	P3  claim latency with 1,000,000 pending requests (10 models, 1,000 batches, 64 slots each)
//	P4  ingest: 200 MB / 50,000-line file validated and populated, against a raw COPY
//	P5  download of a 50,000-line output file through the API
//	P6  Lambda bootstraps: arm64 binary size and init time under the runtime interface emulator
//	P7  polling: a 20,000-line batch (limit 64, 200 ms fixed) alone, then with 16 clients polling
//	    GET /v1/batches/{id} and GET /v1/batches?limit=20; completion rate ratio, polls/s, p99
//	P8  AWS cost: a 5,000-line batch (limit 64, upstream 5 s fixed); every function invocation,
//	    its billed duration and every SQS call counted, priced at AWS list prices per million
//	    requests, beside the worker's physical floor
//	P9  coalescing: a 10,000-line file of which 40 % repeat an earlier body (limit 64, 200 ms
//	    fixed), without then with coalescing: upstream calls, lines coalesced, speed-up
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == p4ChildArg {
		if err := p4Child(ctx, os.Getenv, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench p4 child:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// benchEnv is what every workload shares.
type benchEnv struct {
	quick bool
	river bool // run the River comparator in P1 and P2
	// metrics turns the engine's metrics on in every workload's stack (-metrics); default off,
	// so the figures are those of the engine alone.
	metrics bool
	pg      *server
	log     *slog.Logger
	out     io.Writer
}

// size picks the full or quick size of a workload.
func (e *benchEnv) size(full, quick int) int {
	if e.quick {
		return quick
	}
	return full
}

// run times one workload, records its error if any, and prints its summary line.
func (e *benchEnv) run(res *Result, f func() error) {
	t0 := time.Now()
	err := f()
	res.Wall = seconds(time.Since(t0))
	if err != nil {
		res.Error = err.Error()
		fmt.Fprintf(e.out, "%-4s %-50s ERROR %v\n", res.ID, res.Name, err)
		return
	}
	verdicts := make([]string, 0, len(res.Targets))
	for _, t := range res.Targets {
		verdicts = append(verdicts, fmt.Sprintf("%s %s", t.Name, met(t.Met)))
	}
	fmt.Fprintf(e.out, "%-4s %-50s %s [%s] (%.1fs)\n", res.ID, res.Name, res.Summary, strings.Join(verdicts, "; "), res.Wall)
}

type workload struct {
	id  string
	run func(ctx context.Context, env *benchEnv) []*Result
}

var workloads = []workload{
	{"P1", runP1},
	{"P2", one(runP2)},
	{"P3", one(runP3)},
	{"P4", one(runP4)},
	{"P5", one(runP5)},
	{"P6", one(runP6)},
	{"P7", one(runP7)},
	{"P8", one(runP8)},
	{"P9", one(runP9)},
}

func one(f func(ctx context.Context, env *benchEnv) *Result) func(ctx context.Context, env *benchEnv) []*Result {
	return func(ctx context.Context, env *benchEnv) []*Result { return []*Result{f(ctx, env)} }
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "small sizes: every workload in about a minute")
	only := fs.String("only", "", "comma-separated workload ids to run (default all): P1,P2,P3,P4,P5,P6,P7,P8,P9")
	jsonPath := fs.String("json", "", "write the full report to this file")
	verbose := fs.Bool("v", false, "log the stack's warnings to stderr")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (the in-process stack) to this file")
	fsync := fs.Bool("fsync", true, "run the bench's own PostgreSQL durable (fsync, synchronous_commit, full_page_writes on); false turns the three off. Ignored with DATABASE_URL")
	withRiver := fs.Bool("river", true, "run the River comparator beside fusillade in P1 and P2")
	withMetrics := fs.Bool("metrics", false, "record the engine's metrics (the local stack's Prometheus registry), to measure what they cost")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	selected := map[string]bool{}
	for _, id := range strings.Split(*only, ",") {
		if id = strings.ToUpper(strings.TrimSpace(id)); id != "" {
			selected[id] = true
		}
	}
	for id := range selected {
		known := false
		for _, w := range workloads {
			known = known || w.id == id
		}
		if !known {
			return fmt.Errorf("unknown workload %q", id)
		}
	}
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	pg, err := openServer(ctx, getenv, *fsync)
	if err != nil {
		return err
	}
	defer pg.Close()
	rep := &Report{StartedAt: time.Now().UTC(), Mode: "full", Machine: machine()}
	if *quick {
		rep.Mode = "quick"
	}
	if rep.Postgres, err = postgresSettings(ctx, pg.base); err != nil {
		return fmt.Errorf("postgres settings: %w", err)
	}
	rep.Durability = durability(rep.Postgres)
	fmt.Fprintf(stdout, "fusillade bench (%s) on %d cores, %s; postgres %s %s shared_buffers=%s pg_stat_statements=%s\n",
		rep.Mode, rep.Machine.NumCPU, rep.Machine.CPUModel, pgVersion(rep.Postgres["version"]), rep.Durability,
		rep.Postgres["shared_buffers"], statStatements(rep.Postgres))
	env := &benchEnv{quick: *quick, river: *withRiver, metrics: *withMetrics, pg: pg, log: log, out: stdout}
	failed := 0
	for _, w := range workloads {
		if len(selected) > 0 && !selected[w.id] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		for _, r := range w.run(ctx, env) {
			rep.Workloads = append(rep.Workloads, r)
			if r.Error != "" {
				failed++
			}
		}
	}
	printComparison(stdout, rep)
	printCosts(stdout, rep)
	if *jsonPath != "" {
		if err := writeJSON(*jsonPath, rep); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "report written to %s\n", *jsonPath)
	}
	if failed > 0 {
		return fmt.Errorf("%d workload(s) failed", failed)
	}
	return errors.Join(ctx.Err())
}

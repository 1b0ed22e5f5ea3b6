package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/fusillade/fusillade/shared/config"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/ingest"
	"github.com/fusillade/fusillade/shared/wire"
)

// p4ChildArg runs the ingest half of P4 in a child process (see p4Child).
const p4ChildArg = "p4-child"

// p4LineBytes is the generated line size: 50,000 lines of it stay just under the 200 MB
// (200,000,000-byte) file limit.
const p4LineBytes = 3990

// runP4 measures ingest: a generated 200 MB, 50,000-line JSONL file is validated (the API's
// complete step) and populated (the populate function's COPY), and the same rows are then
// COPYed raw into the same table for comparison.
//
// The ingest runs in a child process that talks to the parent's S3 emulator and PostgreSQL
// over the network, as a Lambda does, so that its peak RSS (VmHWM from /proc/self/status) is
// the ingest code's own and not the emulator's, which holds the whole file in memory.
func runP4(ctx context.Context, env *benchEnv) *Result {
	res := newResult("P4", "ingest: validate + populate vs raw COPY")
	env.run(res, func() error { return p4(ctx, env, res) })
	return res
}

type p4ChildResult struct {
	BatchID       string  `json:"batch_id"`
	ValidateSec   float64 `json:"validate_s"`
	PopulateSec   float64 `json:"populate_s"`
	Lines         int     `json:"lines"`
	Bytes         int64   `json:"bytes"`
	PeakRSSKiB    int64   `json:"peak_rss_kib"`      // VmHWM at the end
	StartRSSKiB   int64   `json:"rss_before_kib"`    // VmRSS after start-up, before the work
	GoSysBytes    uint64  `json:"go_sys_bytes"`      // runtime.MemStats.Sys at the end
	GoHeapMaxByte uint64  `json:"go_heap_sys_bytes"` // runtime.MemStats.HeapSys at the end
}

func p4(ctx context.Context, env *benchEnv, res *Result) error {
	lines := env.size(50_000, 2_000)
	dbURL, drop, err := env.pg.fresh(ctx, "p4")
	if err != nil {
		return err
	}
	defer drop()
	// Limit 0: the populated batch is never dispatched, so only ingest is measured.
	h, err := startHarness(ctx, harnessOptions{DatabaseURL: dbURL, Models: []modelSpec{{"bench-a", 0}}, Log: env.log, Metrics: env.metrics})
	if err != nil {
		return err
	}
	defer h.Stop()
	pad := p4LineBytes - len(appendLine(nil, lines, "bench-a", 0))
	f, err := os.CreateTemp("", "fusillade-bench-p4-*.jsonl")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	size, err := writeJSONL(f, lines, []string{"bench-a"}, pad)
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	fileID, err := newClient(h.APIURL, h.APIKey).createAndPut(ctx, f, size)
	if err != nil {
		return err
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, self, p4ChildArg)
	cmd.Env = os.Environ()
	for k, v := range h.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "BENCH_P4_FILE="+fileID, "BENCH_P4_TENANT="+h.TenantID, "LOG_LEVEL=error",
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ingest child: %w: %s", err, stderr.String())
	}
	var child p4ChildResult
	if err := json.Unmarshal(stdout.Bytes(), &child); err != nil {
		return fmt.Errorf("ingest child output: %w: %q", err, stdout.String())
	}
	if child.Lines != lines {
		return fmt.Errorf("populated %d rows, want %d", child.Lines, lines)
	}

	rawDur, err := p4RawCopy(ctx, dbURL, h.TenantID, lines, pad)
	if err != nil {
		return fmt.Errorf("raw copy: %w", err)
	}
	mb := float64(size) / 1e6
	ingestSec := child.ValidateSec + child.PopulateSec
	ratioE2E := rawDur.Seconds() / ingestSec
	ratioPop := rawDur.Seconds() / child.PopulateSec
	peakMB := float64(child.PeakRSSKiB) / 1024
	res.Knobs = h.Knobs
	res.Knobs["lines"] = lines
	res.Knobs["bytes"] = size
	res.Knobs["line_bytes"] = p4LineBytes
	res.Knobs["peak_rss_source"] = "VmHWM of /proc/self/status in a child process running only the ingest (S3 and PostgreSQL reached over loopback)"
	res.Knobs["raw_copy"] = "pgx CopyFrom (binary COPY) of the same rows into requests, in one transaction, rows generated in memory (no parsing)"
	res.Metrics = map[string]any{
		"validate_s":            child.ValidateSec,
		"validate_mb_per_s":     round3(mb / child.ValidateSec),
		"populate_s":            child.PopulateSec,
		"populate_mb_per_s":     round3(mb / child.PopulateSec),
		"populate_rows_per_s":   round3(float64(lines) / child.PopulateSec),
		"ingest_s":              round3(ingestSec),
		"ingest_mb_per_s":       round3(mb / ingestSec),
		"ingest_rows_per_s":     round3(float64(lines) / ingestSec),
		"raw_copy_s":            seconds(rawDur),
		"raw_copy_rows_per_s":   round3(float64(lines) / rawDur.Seconds()),
		"raw_copy_mb_per_s":     round3(mb / rawDur.Seconds()),
		"ratio_ingest_vs_raw":   round3(ratioE2E),
		"ratio_populate_vs_raw": round3(ratioPop),
		"peak_rss_mb":           round3(peakMB),
		"rss_before_work_mb":    round3(float64(child.StartRSSKiB) / 1024),
		"go_sys_mb":             round3(float64(child.GoSysBytes) / (1 << 20)),
		"go_heap_sys_mb":        round3(float64(child.GoHeapMaxByte) / (1 << 20)),
	}
	res.target("populate rows/s vs raw COPY", "≥ 0.5×", fmt.Sprintf("%.2f×", ratioPop), ratioPop >= 0.5)
	res.target("validate+populate vs raw COPY", "≥ 0.5×", fmt.Sprintf("%.2f×", ratioE2E), ratioE2E >= 0.5)
	res.target("peak RSS", "< 150 MB", fmt.Sprintf("%.1f MB", peakMB), peakMB < 150)
	res.Summary = fmt.Sprintf("%.0f MB %d lines: validate %.1f MB/s, populate %.1f MB/s %.0f rows/s, both %.1f MB/s; raw COPY %.0f rows/s (%.1fs); ratio populate %.2f× e2e %.2f×; peak RSS %.1f MB",
		mb, lines, mb/child.ValidateSec, mb/child.PopulateSec, float64(lines)/child.PopulateSec, mb/ingestSec,
		float64(lines)/rawDur.Seconds(), rawDur.Seconds(), ratioPop, ratioE2E, peakMB)
	return nil
}

// p4Child validates and populates one uploaded file, then prints its timings and memory as JSON.
// It reads the functions' environment (DATABASE_URL, S3_ENDPOINT, …) plus BENCH_P4_FILE and
// BENCH_P4_TENANT.
func p4Child(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	app, err := wire.Open(ctx, cfg, nil, wire.Options{Function: "populate", Getenv: getenv})
	if err != nil {
		return err
	}
	defer app.Close()
	var out p4ChildResult
	out.StartRSSKiB = procStatusKiB("VmRSS")
	// No refill: the batch is not to be dispatched.
	in := ingest.New(app.Store, app.Blobs, nil, ingest.Limits{MaxFileBytes: cfg.MaxFileBytes, MaxLines: cfg.MaxLines}, app.Log, nil)
	tenant := getenv("BENCH_P4_TENANT")
	f, err := app.Store.GetFile(ctx, tenant, getenv("BENCH_P4_FILE"))
	if err != nil {
		return err
	}
	t0 := time.Now()
	f, err = in.Complete(ctx, f)
	if err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	out.ValidateSec = seconds(time.Since(t0))
	out.Lines, out.Bytes = f.Lines, f.Bytes
	now := time.Now()
	b := domain.Batch{ID: domain.NewBatchID(), TenantID: tenant, InputFileID: f.ID, Endpoint: chatPath, CompletionWindow: "24h",
		Status: domain.BatchValidating, Counts: domain.Counts{Total: f.Lines}, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour),
		OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID()}
	if err := app.Store.InsertBatch(ctx, b); err != nil {
		return err
	}
	t1 := time.Now()
	if err := in.Populate(ctx, b.ID); err != nil {
		return fmt.Errorf("populate: %w", err)
	}
	out.PopulateSec = seconds(time.Since(t1))
	var n int
	if err := app.Store.Pool().QueryRow(ctx, "SELECT count(*) FROM requests WHERE batch_id = $1", b.ID).Scan(&n); err != nil {
		return err
	}
	out.BatchID, out.Lines = b.ID, n
	out.PeakRSSKiB = procStatusKiB("VmHWM")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	out.GoSysBytes, out.GoHeapMaxByte = ms.Sys, ms.HeapSys
	return json.NewEncoder(stdout).Encode(out)
}

// procStatusKiB reads a "kB" field of /proc/self/status (0 when unavailable).
func procStatusKiB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// p4RawCopy COPYs the rows populate produced for the same file straight into requests (same
// table, same indexes), in one transaction like populate's, with nothing in front: the floor
// of what inserting these rows costs.
func p4RawCopy(ctx context.Context, dbURL, tenant string, lines, pad int) (time.Duration, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	batchID := "batch_rawcopy"
	if _, err := conn.Exec(ctx, `INSERT INTO batches (id, tenant_id, endpoint, completion_window, status, expires_at)
		VALUES ($1, $2, $3, '24h', 'validating', now() + interval '1 day')`, batchID, tenant, chatPath); err != nil {
		return 0, err
	}
	src := &rawRows{n: lines, pad: pad, batch: batchID, tenant: tenant}
	t0 := time.Now()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"requests"},
		[]string{"id", "batch_id", "tenant_id", "line", "custom_id", "model", "path", "body", "body_bytes"}, src)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	if int(n) != lines {
		return 0, fmt.Errorf("copied %d rows, want %d", n, lines)
	}
	return d, nil
}

// rawRows yields the rows of the generated file: the body is cut out of the generated line, the
// same bytes the validator keeps.
type rawRows struct {
	n, pad        int
	i             int
	batch, tenant string
	line          []byte
}

func (r *rawRows) Next() bool {
	r.i++
	return r.i <= r.n
}

func (r *rawRows) Values() ([]any, error) {
	r.line = appendLine(r.line[:0], r.i, "bench-a", r.pad)
	start := bytes.Index(r.line, []byte(`"body":`))
	if start < 0 {
		return nil, errors.New("generated line has no body")
	}
	body := bytes.Clone(r.line[start+len(`"body":`) : len(r.line)-2]) // drop the closing "}\n"
	return []any{uuid.NewString(), r.batch, r.tenant, r.i, "req-" + strconv.Itoa(r.i), "bench-a", chatPath, body, len(body)}, nil
}

func (r *rawRows) Err() error { return nil }

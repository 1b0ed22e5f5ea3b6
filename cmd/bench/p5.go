package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
)

// runP5 measures downloading a finished batch's output file through the API (GET
// /v1/files/{id}/content, which redirects a large file to a presigned S3 URL; the client follows
// it, as the SDKs do).
func runP5(ctx context.Context, env *benchEnv) *Result {
	res := newResult("P5", "download: output file through the API")
	env.run(res, func() error { return p5(ctx, env, res, env.size(50_000, 10_000)) })
	return res
}

// p5Body is the shape of a chat completion as the mock upstream answers it (about 400 bytes).
const p5Body = `'{"id":"chatcmpl-' || l || '","object":"chat.completion","created":1767225600,"model":"bench-a",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"mock answer ' || md5(l::text) || '"},"logprobs":null,"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21},"system_fingerprint":"fp_mock"}'`

func p5(ctx context.Context, env *benchEnv, res *Result, lines int) error {
	dbURL, drop, err := env.pg.fresh(ctx, "p5")
	if err != nil {
		return err
	}
	defer drop()
	h, err := startHarness(ctx, harnessOptions{DatabaseURL: dbURL, Models: []modelSpec{{"bench-a", 0}}, Log: env.log, Metrics: env.metrics})
	if err != nil {
		return err
	}
	defer h.Stop()
	st := h.App.Store
	now := time.Now()
	in := domain.File{ID: domain.NewFileID(), TenantID: h.TenantID, Filename: "in.jsonl", Purpose: domain.PurposeBatch,
		Status: domain.FileProcessed, ObjectKey: "unused", Lines: lines, CreatedAt: now}
	if err := st.InsertFile(ctx, in); err != nil {
		return err
	}
	b := domain.Batch{ID: domain.NewBatchID(), TenantID: h.TenantID, InputFileID: in.ID, Endpoint: chatPath, CompletionWindow: "24h",
		Status: domain.BatchValidating, Counts: domain.Counts{Total: lines}, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour),
		OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID()}
	if err := st.InsertBatch(ctx, b); err != nil {
		return err
	}
	// Every request already completed, as the engine leaves them: the state finalisation reads.
	for _, stmt := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO requests (id, batch_id, tenant_id, line, custom_id, model, path, body, body_bytes, state, attempt,
		                       claimed_at, started_at, finished_at, response_status, response_body, upstream_request_id)
		 SELECT gen_random_uuid(), b.id, b.tenant_id, l, 'req-' || l, 'bench-a', '/v1/chat/completions', '\x7b7d'::bytea, 2,
		        'completed', 1, now(), now(), now(), 200, convert_to(` + p5Body + `, 'UTF8'), 'req_' || l
		 FROM batches b, generate_series(1, $2) l WHERE b.id = $1`, []any{b.ID, lines}},
		// Running only once every request is in place: maintenance would otherwise seal an empty batch.
		{`UPDATE batches SET status = 'in_progress', in_progress_at = now(), model = 'bench-a', models = ARRAY['bench-a'] WHERE id = $1`,
			[]any{b.ID}},
		{`ANALYZE requests`, nil},
	} {
		if _, err := st.Pool().Exec(ctx, stmt.sql, stmt.args...); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	t0 := time.Now()
	h.Engine.TryFinalize(ctx, b.ID)
	seal := time.Since(t0)
	c := newClient(h.APIURL, h.APIKey)
	got, err := c.batch(ctx, b.ID)
	if err != nil {
		return err
	}
	if got.Status != string(domain.BatchCompleted) || got.OutputFileID == "" {
		return fmt.Errorf("batch is %s with output file %q after finalisation", got.Status, got.OutputFileID)
	}
	var runs []time.Duration
	var size int64
	for range 5 {
		t := time.Now()
		n, err := c.download(ctx, got.OutputFileID, io.Discard)
		if err != nil {
			return err
		}
		runs = append(runs, time.Since(t))
		size = n
	}
	slices.Sort(runs)
	median := runs[len(runs)/2]
	mbps := float64(size) / 1e6 / median.Seconds()
	path := "redirect to presigned S3 GET (gofakes3)"
	if size <= 4_000_000 {
		path = "inline from the API"
	}
	res.Knobs = h.Knobs
	res.Knobs["lines"] = lines
	res.Knobs["downloads"] = len(runs)
	res.Knobs["path"] = path
	res.Knobs["client"] = "net/http, following the redirect, body to io.Discard"
	res.Metrics = map[string]any{
		"bytes":            size,
		"median_s":         seconds(median),
		"mb_per_s":         round3(mbps),
		"best_mb_per_s":    round3(float64(size) / 1e6 / runs[0].Seconds()),
		"all_s":            distOf(runs),
		"seal_s":           seconds(seal),
		"seal_mb_per_s":    round3(float64(size) / 1e6 / seal.Seconds()),
		"seal_lines_per_s": round3(float64(lines) / seal.Seconds()),
	}
	res.target("download", "≥ 100 MB/s", fmt.Sprintf("%.0f MB/s", mbps), mbps >= 100)
	res.Summary = fmt.Sprintf("%d lines, %.1f MB: download median %.0f MB/s (%.3fs, %s); sealing it took %.2fs (%.1f MB/s)",
		lines, float64(size)/1e6, mbps, median.Seconds(), path, seal.Seconds(), float64(size)/1e6/seal.Seconds())
	return nil
}

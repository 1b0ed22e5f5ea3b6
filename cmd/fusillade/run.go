package main

import (
	"bytes"
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/fusillade/fusillade/local/mockupstream"
	"github.com/fusillade/fusillade/local/stack"
	"github.com/fusillade/fusillade/shared/wire"
)

//go:embed example.jsonl
var exampleJSONL []byte

// runStack is `make run`: the whole stack on embedded defaults, then an example batch through
// the API so a newcomer sees one complete.
func runStack(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "address the API listens on")
	dataDir := fs.String("data", ".data", "directory that keeps the database, files and keys across restarts")
	fresh := fs.Bool("fresh", false, "wipe the data directory first")
	models := fs.String("models", "mock-chat=8,mock-embed=4,"+stack.MessagesModel+"=4", "models to configure against the mock upstream, name=limit,… (\"\" for none)")
	modelsFile := fs.String("models-file", "", "YAML file of real upstream models (name, base_url, credential_ref, limit, escalation); see README")
	var upstreams []stack.ModelSpec
	fs.Func("upstream", "a real upstream model, NAME=BASE_URL[,key=env:VAR][,limit=N][,escalation=MODEL]; repeatable", func(v string) error {
		m, err := parseUpstream(v)
		upstreams = append(upstreams, m)
		return err
	})
	latency := fs.String("latency", "200ms:2s", "mock upstream latency: a fixed duration, or p50:p99 of a log-normal")
	errRate := fs.Float64("error-rate", 0, "fraction of mock upstream calls that answer 500 (retried)")
	workers := fs.Int("workers", stack.DefaultWorkerConcurrency, "maximum concurrent worker invocations (they share one process and database pool here; on AWS the template's WorkerMaxConcurrency applies)")
	example := fs.Bool("example", true, "run the bundled example batch after start")
	logLevel := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	specs, err := parseModels(*models)
	if err != nil {
		return err
	}
	if *modelsFile != "" {
		fromFile, err := readModelsFile(*modelsFile)
		if err != nil {
			return err
		}
		specs = append(specs, fromFile...)
	}
	specs = append(specs, upstreams...)
	if len(specs) == 0 {
		specs = stack.DefaultModels()
	}
	lat, err := parseLatency(*latency)
	if err != nil {
		return err
	}
	log := wire.NewLogger(stderr, *logLevel)
	start := time.Now()
	st, err := stack.Start(ctx, stack.Options{
		DataDir: *dataDir, Fresh: *fresh, DatabaseURL: getenv("DATABASE_URL"), APIAddr: *addr, Models: specs,
		Upstream:          mockupstream.Config{Latency: lat, ErrorRate: *errRate, Logger: log},
		WorkerConcurrency: *workers, Logger: log, Getenv: getenv,
	})
	if err != nil {
		return err
	}
	defer st.Stop()
	fmt.Fprintf(stdout, `
fusillade is running (started in %s)

  API base URL   %s/v1
  API key        %s
  admin key      %s
  dashboard      %s/ui/   (sign in with either key; docs/dashboard.md)
  models         %s
                 (mock upstream latency %s)
  messages model %s   (Anthropic Message Batches: %s/v1/messages/batches)
  data           %s   (kept across restarts; --fresh wipes it)
  metrics        %s/metrics   (Prometheus text; docs/operations.md)

Try it:

  export OPENAI_BASE_URL=%s/v1 OPENAI_API_KEY=%s
  go run ./cmd/fusillade submit cmd/fusillade/example.jsonl --out results

or with curl:

  curl -s $OPENAI_BASE_URL/files -H "Authorization: Bearer $OPENAI_API_KEY" \
       -F purpose=batch -F file=@cmd/fusillade/example.jsonl
  curl -s $OPENAI_BASE_URL/batches -H "Authorization: Bearer $OPENAI_API_KEY" \
       -H 'Content-Type: application/json' \
       -d '{"input_file_id":"<file id>","endpoint":"/v1/chat/completions","completion_window":"24h"}'

Press Ctrl-C to stop.
`, time.Since(start).Round(time.Millisecond), st.APIURL, st.APIKey, st.AdminKey, st.APIURL, describeModels(specs), *latency,
		messagesModel(specs), st.APIURL, *dataDir, st.APIURL, st.APIURL, st.APIKey)
	if *example && hasModel(specs, "mock-chat") {
		if err := runExample(ctx, st, stdout); err != nil {
			fmt.Fprintln(stderr, "example batch:", err)
		}
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nstopping")
	return nil
}

// runExample sends the bundled example through the API with the official Go SDK.
func runExample(ctx context.Context, st *stack.Stack, stdout io.Writer) error {
	c := openai.NewClient(option.WithBaseURL(st.APIURL+"/v1"), option.WithAPIKey(st.APIKey))
	f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(exampleJSONL), "example.jsonl", "application/jsonl"),
		Purpose: openai.FilePurposeBatch})
	if err != nil {
		return err
	}
	b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h, Metadata: map[string]string{"source": "make run example"}})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nExample: uploaded %s (%d lines) and created %s\n", f.ID, bytes.Count(exampleJSONL, []byte("\n")), b.ID)
	for {
		b, err = c.Batches.Get(ctx, b.ID)
		if err != nil {
			return err
		}
		if b.Status == openai.BatchStatusCompleted || b.Status == openai.BatchStatusFailed {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	fmt.Fprintf(stdout, "Example: batch %s %s: %d/%d completed, %d failed; output file %s\n", b.ID, b.Status,
		b.RequestCounts.Completed, b.RequestCounts.Total, b.RequestCounts.Failed, b.OutputFileID)
	if b.OutputFileID != "" {
		fmt.Fprintf(stdout, "  curl -s %s/v1/files/%s/content -H \"Authorization: Bearer %s\"\n", st.APIURL, b.OutputFileID, st.APIKey)
		resp, err := c.Files.Content(ctx, b.OutputFileID)
		if err == nil {
			defer resp.Body.Close()
			first, _ := io.ReadAll(io.LimitReader(resp.Body, 400))
			line, _, _ := strings.Cut(string(first), "\n")
			fmt.Fprintf(stdout, "  first line: %s\n", line)
		}
	}
	return nil
}

// describeModels lists the configured models for the start banner.
func describeModels(specs []stack.ModelSpec) string {
	var parts []string
	for _, m := range specs {
		where := "mock"
		if m.BaseURL != "" {
			where = m.BaseURL
		}
		parts = append(parts, fmt.Sprintf("%s=%d (%s)", m.Name, m.Limit, where))
	}
	return strings.Join(parts, ", ")
}

// messagesModel names the model configured for Anthropic's Messages API (MessagesModel), or says
// there is none.
func messagesModel(specs []stack.ModelSpec) string {
	if hasModel(specs, stack.MessagesModel) {
		return stack.MessagesModel
	}
	return "none (add " + stack.MessagesModel + " to --models)"
}

// hasModel says whether the bundled example (which uses mock-chat) can run.
func hasModel(specs []stack.ModelSpec, name string) bool {
	for _, m := range specs {
		if m.Name == name {
			return true
		}
	}
	return false
}

func parseModels(s string) ([]stack.ModelSpec, error) {
	var out []stack.ModelSpec
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		name, lim, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(lim)
		if !ok || name == "" || err != nil || n < 0 {
			return nil, fmt.Errorf("--models: %q is not name=limit", part)
		}
		out = append(out, stack.ModelSpec{Name: name, Limit: n})
	}
	return out, nil
}

func parseLatency(s string) (mockupstream.Latency, error) {
	if p50, p99, ok := strings.Cut(s, ":"); ok {
		a, err1 := time.ParseDuration(p50)
		b, err2 := time.ParseDuration(p99)
		if err1 != nil || err2 != nil || a <= 0 || b < a {
			return nil, fmt.Errorf("--latency: %q is not p50:p99", s)
		}
		return mockupstream.LogNormal(a, b), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil, fmt.Errorf("--latency: %w", err)
	}
	return mockupstream.Fixed(d), nil
}

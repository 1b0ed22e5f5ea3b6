package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rieVersion is the runtime interface emulator version functions/bootstrap_test.go uses.
const rieVersion = "v0.0.0-20261030222936-bef5c4ba774d"

var p6Functions = []string{"api", "populate", "dispatch", "worker", "purge"}

// runP6 builds every function's bootstrap as the Makefile does for deployment (linux/arm64,
// -tags lambda.norpc, -trimpath, -s -w) for its size, and the same for amd64 to run it under the
// Lambda runtime interface emulator, which reports each cold start's "Init Duration": from the
// bootstrap's exec to its first call for work. Init includes reading the configuration,
// building the SDK clients and opening (and pinging) the database pool.
func runP6(ctx context.Context, env *benchEnv) *Result {
	res := newResult("P6", "Lambda bootstraps: size and init")
	env.run(res, func() error { return p6(ctx, env, res) })
	return res
}

type p6Function struct {
	Name         string    `json:"name"`
	ARM64Bytes   int64     `json:"arm64_bytes"`
	AMD64Bytes   int64     `json:"amd64_bytes"`
	InitMs       []float64 `json:"init_ms"` // one per cold start
	InitMedianMs float64   `json:"init_median_ms"`
	InvokeMs     []float64 `json:"invoke_ms"`
}

func p6(ctx context.Context, env *benchEnv, res *Result) error {
	colds := env.size(5, 2)
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "fusillade-bench-p6-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rie, err := findRIE(ctx, root, dir)
	if err != nil {
		return err
	}
	fns := make([]*p6Function, 0, len(p6Functions))
	t0 := time.Now()
	for _, name := range p6Functions {
		fn := &p6Function{Name: name}
		for _, arch := range []string{"arm64", "amd64"} {
			out := filepath.Join(dir, arch, name, "bootstrap")
			if err := goCmd(ctx, root, []string{"GOOS=linux", "GOARCH=" + arch, "CGO_ENABLED=0"}, "build", "-tags", "lambda.norpc",
				"-trimpath", "-ldflags=-s -w", "-o", out, "./functions/"+name); err != nil {
				return err
			}
			st, err := os.Stat(out)
			if err != nil {
				return err
			}
			if arch == "arm64" {
				fn.ARM64Bytes = st.Size()
			} else {
				fn.AMD64Bytes = st.Size()
			}
		}
		fns = append(fns, fn)
	}
	build := time.Since(t0)

	dbURL, drop, err := env.pg.fresh(ctx, "p6")
	if err != nil {
		return err
	}
	defer drop()
	h, err := startHarness(ctx, harnessOptions{DatabaseURL: dbURL, Models: []modelSpec{{"bench-a", 4}}, Log: env.log, Metrics: env.metrics})
	if err != nil {
		return err
	}
	defer h.Stop()
	fenv := []string{"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=30",
		// The emulator reads LOG_LEVEL too and prints its INIT REPORT lines only at info.
		"LOG_LEVEL=info"}
	for k, v := range h.Env {
		fenv = append(fenv, k+"="+v)
	}
	scheduled := map[string]any{"version": "0", "id": "e-1", "detail-type": "Scheduled Event", "source": "aws.events",
		"account": "000000000000", "time": time.Now().UTC().Format(time.RFC3339), "region": "us-east-1", "detail": map[string]any{}}
	events := map[string]any{
		"api": map[string]any{"version": "2.0", "routeKey": "$default", "rawPath": "/healthz", "rawQueryString": "",
			"headers":        map[string]string{"accept": "application/json"},
			"requestContext": map[string]any{"http": map[string]any{"method": "GET", "path": "/healthz", "sourceIp": "127.0.0.1"}}},
		"populate": map[string]any{"Records": []any{}},
		"worker":   map[string]any{"Records": []any{}},
		"dispatch": scheduled,
		"purge":    scheduled,
	}
	var maxARM int64
	var maxInit float64
	for _, fn := range fns {
		boot := filepath.Join(dir, "amd64", fn.Name, "bootstrap")
		for range colds {
			initMs, invokeMs, err := coldStart(ctx, rie, boot, fenv, events[fn.Name])
			if err != nil {
				return fmt.Errorf("%s: %w", fn.Name, err)
			}
			fn.InitMs = append(fn.InitMs, initMs)
			fn.InvokeMs = append(fn.InvokeMs, invokeMs)
		}
		s := slices.Clone(fn.InitMs)
		slices.Sort(s)
		fn.InitMedianMs = s[len(s)/2]
		maxARM = max(maxARM, fn.ARM64Bytes)
		maxInit = max(maxInit, fn.InitMedianMs)
	}
	res.Knobs = map[string]any{
		"build":         "CGO_ENABLED=0 GOOS=linux go build -tags lambda.norpc -trimpath -ldflags='-s -w' (the Makefile's)",
		"size_arch":     "arm64 (as deployed)",
		"run_arch":      "amd64 under aws-lambda-rie " + rieVersion,
		"cold_starts":   colds,
		"init_source":   "the emulator's INIT REPORT(durationMs) of the init phase: bootstrap exec → first call for work",
		"database":      "local PostgreSQL over loopback (init opens and pings the pool)",
		"function_env":  "DATABASE_URL, BUCKET, S3/SQS endpoints of the emulators, queue URLs",
		"build_seconds": seconds(build),
	}
	res.Metrics = map[string]any{"functions": fns}
	parts := make([]string, 0, len(fns))
	for _, fn := range fns {
		parts = append(parts, fmt.Sprintf("%s %.1fMB/%.0fms", fn.Name, float64(fn.ARM64Bytes)/1e6, fn.InitMedianMs))
	}
	res.target("binary size (arm64, largest)", "≤ 15 MB", fmt.Sprintf("%.1f MB", float64(maxARM)/1e6), maxARM <= 15_000_000)
	res.target("init (median of cold starts, slowest function)", "≤ 50 ms", fmt.Sprintf("%.1f ms", maxInit), maxInit <= 50)
	res.Summary = strings.Join(parts, ", ") + " (arm64 size / median init)"
	return nil
}

// initRE matches the emulator's report of the init phase: from the bootstrap's exec until it
// asks for its first event. The REPORT line's "Init Duration" of this emulator version times only
// the emulator's own hand-off (a few hundredths of a millisecond, whatever the function does at
// start-up), so it is not used.
var initRE = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)
var durRE = regexp.MustCompile(`\tDuration: ([0-9.]+) ms`)

// coldStart runs a bootstrap under a fresh emulator, invokes it once and returns the init and
// invoke durations the emulator reported.
func coldStart(ctx context.Context, rie, boot string, env []string, event any) (initMs, invokeMs float64, err error) {
	api, err := freeAddr()
	if err != nil {
		return 0, 0, err
	}
	rt, err := freeAddr()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.CommandContext(ctx, rie, "--runtime-interface-emulator-address", api, "--runtime-api-address", rt, boot)
	cmd.Env = append(os.Environ(), env...)
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	body, err := json.Marshal(event)
	if err != nil {
		return 0, 0, err
	}
	url := "http://" + api + "/2015-03-31/functions/function/invocations"
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Post(url, "application/json", bytes.NewReader(body))
		if err == nil {
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || bytes.Contains(out, []byte("errorMessage")) {
				return 0, 0, fmt.Errorf("invoke: %s: %s\n%s", resp.Status, out, logs.String())
			}
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("emulator did not answer: %w\n%s", err, logs.String())
		}
		time.Sleep(10 * time.Millisecond) // the emulator is starting; it offers no readiness signal
	}
	// The reports are printed by the time the answer is sent; allow for buffering.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		s := logs.String()
		if m := initRE.FindStringSubmatch(s); m != nil {
			initMs, _ = strconv.ParseFloat(m[1], 64)
			if d := durRE.FindStringSubmatch(s); d != nil {
				invokeMs, _ = strconv.ParseFloat(d[1], 64)
			}
			return initMs, invokeMs, nil
		}
	}
	return 0, 0, fmt.Errorf("no INIT REPORT in the emulator's output:\n%s", logs.String())
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// findRIE returns aws-lambda-rie from PATH, or installs the pinned version into dir.
func findRIE(ctx context.Context, root, dir string) (string, error) {
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p, nil
	}
	bin := filepath.Join(dir, "bin")
	if err := goCmd(ctx, root, []string{"GOBIN=" + bin}, "install",
		"github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@"+rieVersion); err != nil {
		return "", err
	}
	return filepath.Join(bin, "aws-lambda-rie"), nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the module (run from the repository)")
	}
	return filepath.Dir(mod), nil
}

func goCmd(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// lockedBuffer collects a child's output while it is read concurrently.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

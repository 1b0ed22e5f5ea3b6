package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/cmd/fusillade/internal/cli"
	"github.com/fusillade/fusillade/local/mockupstream"
	"github.com/fusillade/fusillade/local/pgtest"
	"github.com/fusillade/fusillade/local/stack"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// startStack runs the whole local stack with mock-chat (limit 4) behind a fast mock upstream.
func startStack(t *testing.T) *stack.Stack {
	t.Helper()
	st, err := stack.Start(context.Background(), stack.Options{
		DatabaseURL: pgtest.URL(t), DataDir: t.TempDir(), Ephemeral: true, APIAddr: "127.0.0.1:0",
		Models:   []stack.ModelSpec{{Name: "mock-chat", Limit: 4}},
		Upstream: mockupstream.Config{Latency: mockupstream.Fixed(time.Millisecond)},
	})
	require.NoError(t, err)
	t.Cleanup(st.Stop)
	return st
}

// result is one finished command.
type result struct {
	code           int
	stdout, stderr string
}

// env is the environment of a command against st, not on a terminal.
func env(st *stack.Stack) cli.Env {
	vars := map[string]string{}
	if st != nil {
		vars["OPENAI_BASE_URL"], vars["OPENAI_API_KEY"] = st.APIURL+"/v1", st.APIKey
	}
	return cli.Env{Getenv: func(k string) string { return vars[k] }}
}

func run(t *testing.T, e cli.Env, args ...string) result {
	t.Helper()
	var out, errw bytes.Buffer
	e.Stdout, e.Stderr = &out, &errw
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := cli.Run(ctx, args, e)
	return result{code: code, stdout: out.String(), stderr: errw.String()}
}

// chatLine is one input line; extra keys go into the body (mock directives).
func chatLine(id, content string, extra map[string]any) string {
	body := map[string]any{"model": "mock-chat", "messages": []map[string]string{{"role": "user", "content": content}}}
	for k, v := range extra {
		body[k] = v
	}
	b, _ := json.Marshal(map[string]any{"custom_id": id, "method": "POST", "url": "/v1/chat/completions", "body": body})
	return string(b)
}

func writeFile(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "input.jsonl")
	require.NoError(t, os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	return p
}

func goodLines(n int) []string {
	var out []string
	for i := range n {
		out = append(out, chatLine(fmt.Sprintf("req-%d", i), fmt.Sprintf("hello %d", i), nil))
	}
	return out
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return bytes.Count(b, []byte("\n"))
}

// A small file runs to completion: exit 0, output file in --out, summary printed.
func TestSubmitSmallFileToCompletion(t *testing.T) {
	st := startStack(t)
	out := t.TempDir()
	r := run(t, env(st), "submit", writeFile(t, goodLines(5)...), "--out", out, "--poll", "20ms", "--metadata", "team=ml")
	require.Equal(t, cli.ExitOK, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "direct upload")
	assert.Contains(t, r.stdout, "5 total, 5 completed, 0 failed")
	matches, err := filepath.Glob(filepath.Join(out, "batch_*_output.jsonl"))
	require.NoError(t, err)
	require.Len(t, matches, 1, r.stdout)
	assert.Equal(t, 5, countLines(t, matches[0]))
	assert.Contains(t, r.stdout, matches[0])
	errFiles, _ := filepath.Glob(filepath.Join(out, "*_errors.jsonl"))
	assert.Empty(t, errFiles, "no line failed, so there is no error file")
}

// Without a terminal, progress is plain lines (no carriage returns), one per change.
func TestSubmitWithoutATerminalPrintsPlainLines(t *testing.T) {
	st := startStack(t)
	lines := goodLines(8)
	for i := range lines {
		lines[i] = chatLine(fmt.Sprintf("slow-%d", i), "x", map[string]any{"mock_delay_ms": 40})
	}
	r := run(t, env(st), "submit", writeFile(t, lines...), "--out", t.TempDir(), "--poll", "20ms", "--report-every", "0")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	assert.NotContains(t, r.stdout, "\r")
	var progress []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.Contains(l, " done, ") {
			progress = append(progress, l)
		}
	}
	require.GreaterOrEqual(t, len(progress), 2, r.stdout)
	assert.Contains(t, progress[len(progress)-1], "completed: 8/8 done, 8 completed, 0 failed")
	assert.Contains(t, r.stdout, "req/s")
}

// Lines the upstream refuses fail: exit 1, and the summary counts them by code.
func TestSubmitWithFailingLinesExitsOneAndCountsErrorCodes(t *testing.T) {
	st := startStack(t)
	lines := append(goodLines(3),
		chatLine("bad-1", "x", map[string]any{"mock_status": 400}),
		chatLine("bad-2", "y", map[string]any{"mock_status": 400}),
		chatLine("bad-3", "z", map[string]any{"mock_status": 422}))
	out := t.TempDir()
	r := run(t, env(st), "submit", writeFile(t, lines...), "--out", out, "--poll", "20ms")
	require.Equal(t, cli.ExitLinesFailed, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "6 total, 3 completed, 3 failed")
	assert.Regexp(t, `error code\s+http_400: 2`, r.stdout)
	assert.Regexp(t, `error code\s+http_422: 1`, r.stdout)
	errFiles, _ := filepath.Glob(filepath.Join(out, "*_errors.jsonl"))
	require.Len(t, errFiles, 1)
	assert.Equal(t, 3, countLines(t, errFiles[0]))

	// Retrying runs the failed lines again; they fail again, and wait says so.
	id := strings.TrimSuffix(filepath.Base(errFiles[0]), "_errors.jsonl")
	retry := run(t, env(st), "batches", "retry", id)
	require.Equal(t, cli.ExitOK, retry.code, retry.stderr)
	w := run(t, env(st), "batches", "wait", id, "--poll", "20ms")
	require.Equal(t, cli.ExitLinesFailed, w.code, "stdout:\n%s\nstderr:\n%s", w.stdout, w.stderr)
	assert.Contains(t, w.stdout, "3 completed, 3 failed, 6 total")
	failed := run(t, env(st), "batches", "results", id, "--status", "failed")
	assert.Equal(t, 4, strings.Count(failed.stdout, "\n"), "a header and the three failed lines: %s", failed.stdout)
	assert.Regexp(t, `bad-3\s+failed\s+HTTP 422`, failed.stdout)
}

// validate lists every bad line with the server's codes and messages, and exits 2; submit
// refuses the same file before uploading anything.
func TestValidateReportsEveryBadLine(t *testing.T) {
	path := writeFile(t,
		chatLine("ok", "x", nil),
		`{"custom_id":"a","method":"POST","url":"/v1/nope","body":{"model":"m"}}`,
		`not json`,
		chatLine("ok", "dup", nil),
		`{"custom_id":"s","method":"POST","url":"/v1/chat/completions","body":{"model":"m","stream":true}}`,
	)
	r := run(t, env(nil), "validate", path)
	require.Equal(t, cli.ExitUsage, r.code, r.stderr)
	assert.Contains(t, r.stdout, "4 bad line(s)")
	for _, want := range []string{"line 2: ", "[invalid_url]", "line 3: ", "[invalid_json_line]", "line 4: ", "[duplicate_custom_id]", "line 5: ", "[stream_not_supported]"} {
		assert.Contains(t, r.stdout, want)
	}

	j := run(t, env(nil), "validate", "--json", path)
	require.Equal(t, cli.ExitUsage, j.code)
	var rep struct {
		Valid  bool `json:"valid"`
		Errors []struct {
			Line int    `json:"line"`
			Code string `json:"code"`
		} `json:"errors"`
	}
	require.NoError(t, json.Unmarshal([]byte(j.stdout), &rep), j.stdout)
	assert.False(t, rep.Valid)
	require.Len(t, rep.Errors, 4)
	assert.Equal(t, []int{2, 3, 4, 5}, []int{rep.Errors[0].Line, rep.Errors[1].Line, rep.Errors[2].Line, rep.Errors[3].Line})

	ok := run(t, env(nil), "validate", writeFile(t, goodLines(3)...))
	assert.Equal(t, cli.ExitOK, ok.code)
	assert.Contains(t, ok.stdout, "valid, 3 requests (mock-chat 3)")

	// The endpoint given to submit is the one every line must match.
	mismatch := run(t, env(nil), "validate", "--endpoint", "/v1/embeddings", writeFile(t, goodLines(1)...))
	assert.Equal(t, cli.ExitUsage, mismatch.code)
	assert.Contains(t, mismatch.stdout, "[url_mismatch]")

	st := startStack(t)
	s := run(t, env(st), "submit", path, "--out", t.TempDir())
	require.Equal(t, cli.ExitUsage, s.code, s.stderr)
	assert.Contains(t, s.stderr, "nothing was uploaded")
	assert.Contains(t, s.stderr, "[duplicate_custom_id]")
	files := run(t, env(st), "files", "ls", "--json")
	require.Equal(t, cli.ExitOK, files.code, files.stderr)
	assert.JSONEq(t, `[]`, mustField(t, files.stdout, "data"))
}

func mustField(t *testing.T, doc, field string) string {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(doc), &m), doc)
	return string(m[field])
}

// Usage errors exit 2, API and network failures 4.
func TestExitCodes(t *testing.T) {
	closed := cli.Env{Getenv: func(k string) string {
		return map[string]string{"OPENAI_BASE_URL": "http://127.0.0.1:1/v1", "OPENAI_API_KEY": "k"}[k]
	}}
	cases := []struct {
		name string
		env  cli.Env
		args []string
		want int
	}{
		{"no command", env(nil), nil, cli.ExitUsage},
		{"unknown command", env(nil), []string{"frobnicate"}, cli.ExitUsage},
		{"unknown subcommand", closed, []string{"batches", "frobnicate", "x"}, cli.ExitUsage},
		{"no base url", env(nil), []string{"batches", "ls"}, cli.ExitUsage},
		{"missing id", closed, []string{"batches", "get"}, cli.ExitUsage},
		{"bad flag", closed, []string{"batches", "ls", "--nope"}, cli.ExitUsage},
		{"missing file", env(nil), []string{"validate", "/nonexistent.jsonl"}, cli.ExitUsage},
		{"network error", closed, []string{"batches", "ls"}, cli.ExitError},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, run(t, tt.env, tt.args...).code)
		})
	}
	st := startStack(t)
	r := run(t, env(st), "batches", "get", "batch_"+strings.Repeat("0", 32))
	assert.Equal(t, cli.ExitError, r.code)
	assert.Contains(t, r.stderr, "API error 404")
	r = run(t, env(st), "batches", "ls", "--api-key", "wrong")
	assert.Equal(t, cli.ExitError, r.code, "--api-key overrides OPENAI_API_KEY")
	assert.Contains(t, r.stderr, "401")
}

// blockedBatch submits lines that the mock upstream holds until released, detached, and returns
// the batch id once the first of them is being answered.
func blockedBatch(t *testing.T, st *stack.Stack, gate string) string {
	t.Helper()
	lines := []string{chatLine("held-1", "x", map[string]any{"mock_block": gate}), chatLine("held-2", "y", map[string]any{"mock_block": gate})}
	r := run(t, env(st), "submit", writeFile(t, lines...), "--detach")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	id := strings.TrimSpace(r.stdout[strings.LastIndex(strings.TrimSpace(r.stdout), "\n")+1:])
	require.True(t, strings.HasPrefix(id, "batch_"), r.stdout)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, st.Upstream.WaitBlocked(ctx, gate, 1))
	return id
}

// batches cancel stops a running batch; batches wait then ends with exit 3.
func TestBatchesCancelThenWaitExitsThree(t *testing.T) {
	st := startStack(t)
	id := blockedBatch(t, st, "cancel-gate")
	r := run(t, env(st), "batches", "cancel", id)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	assert.Regexp(t, `status\s+cancell`, r.stdout)
	st.Upstream.Release("cancel-gate")
	w := run(t, env(st), "batches", "wait", id, "--poll", "20ms")
	require.Equal(t, cli.ExitBatchNotCompleted, w.code, w.stderr)
	assert.Regexp(t, `status\s+cancelled`, w.stdout)
}

// batchStatus reads a batch's status straight from the API.
func batchStatus(t *testing.T, st *stack.Stack, id string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, st.APIURL+"/v1/batches/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+st.APIKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b struct {
		Status string `json:"status"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
	return b.Status
}

// onlyBatch waits until the stack has exactly one batch and returns its id.
func onlyBatch(t *testing.T, st *stack.Stack) string {
	t.Helper()
	r := run(t, env(st), "batches", "ls", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	var l struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &l))
	require.Len(t, l.Data, 1)
	return l.Data[0].ID
}

// Ctrl-C during submit on a terminal asks; "c" cancels the batch and submit exits 3. On a
// non-terminal stdin it detaches instead: exit 0, the batch id printed, the batch left running.
func TestSubmitInterrupt(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		st := startStack(t)
		sigs := make(chan os.Signal, 1)
		e := env(st)
		e.Signals, e.StdinTerminal, e.Stdin = sigs, true, strings.NewReader("c\n")
		lines := []string{chatLine("held-1", "x", map[string]any{"mock_block": "int"}), chatLine("held-2", "y", map[string]any{"mock_block": "int"})}
		done := make(chan result, 1)
		path := writeFile(t, lines...)
		go func() { done <- run(t, e, "submit", path, "--out", t.TempDir(), "--poll", "20ms") }()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, st.Upstream.WaitBlocked(ctx, "int", 1))
		id := onlyBatch(t, st)
		sigs <- os.Interrupt
		for s := batchStatus(t, st, id); s != "cancelling" && s != "cancelled"; s = batchStatus(t, st, id) {
			select {
			case <-ctx.Done():
				require.Failf(t, "batch not cancelled", "status %s", s)
			case <-time.After(20 * time.Millisecond):
			}
		}
		st.Upstream.Release("int")
		r := <-done
		require.Equal(t, cli.ExitBatchNotCompleted, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
		assert.Contains(t, r.stdout, "cancel the batch (c) or detach")
		assert.Contains(t, r.stdout, id+" cancelled in ")
	})
	t.Run("detach without a terminal", func(t *testing.T) {
		st := startStack(t)
		sigs := make(chan os.Signal, 1)
		e := env(st)
		e.Signals = sigs
		done := make(chan result, 1)
		path := writeFile(t, chatLine("held", "x", map[string]any{"mock_block": "det"}))
		go func() { done <- run(t, e, "submit", path, "--poll", "20ms") }()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, st.Upstream.WaitBlocked(ctx, "det", 1))
		id := onlyBatch(t, st)
		sigs <- os.Interrupt
		r := <-done
		require.Equal(t, cli.ExitOK, r.code, r.stderr)
		assert.True(t, strings.HasSuffix(r.stdout, id+"\n"), r.stdout)
		assert.Contains(t, r.stdout, "detached")
		assert.Equal(t, "in_progress", batchStatus(t, st, id))
		st.Upstream.Release("det")
	})
}

// paddedFile writes n lines of about size bytes each. The padding is a top-level key, which the
// validator reads and the batch ignores (only the body is sent upstream): the file is as large as
// asked, while the requests stay small and quick to run.
func paddedFile(t *testing.T, n, size int) (string, int64) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "big.jsonl")
	f, err := os.Create(p)
	require.NoError(t, err)
	w := bufio.NewWriter(f)
	for i := range n {
		line := chatLine(fmt.Sprintf("big-%d", i), "hello", nil)
		pad := fmt.Sprintf(`,"padding":%q}`, strings.Repeat("x", max(size-len(line)-16, 0)))
		_, err := w.WriteString(line[:len(line)-1] + pad + "\n")
		require.NoError(t, err)
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	fi, err := os.Stat(p)
	require.NoError(t, err)
	return p, fi.Size()
}

// A 50 MB file goes through the large-file path (the presigned PUT) without being asked to.
func TestSubmitFiftyMegabyteFileThroughTheLargeFilePath(t *testing.T) {
	st := startStack(t)
	path, size := paddedFile(t, 250, 200_000)
	require.Greater(t, size, int64(50_000_000)-250*200)
	out := t.TempDir()
	r := run(t, env(st), "submit", path, "--out", out, "--poll", "50ms")
	require.Equal(t, cli.ExitOK, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "presigned upload")
	assert.Contains(t, r.stdout, fmt.Sprintf("(%d bytes, 250 requests", size))
	assert.Contains(t, r.stdout, "250 total, 250 completed, 0 failed")
	matches, _ := filepath.Glob(filepath.Join(out, "*_output.jsonl"))
	require.Len(t, matches, 1)
	assert.Equal(t, 250, countLines(t, matches[0]))
}

// --upload parts sends a file over the direct limit through the Uploads API, in parts.
func TestSubmitThroughTheUploadsAPI(t *testing.T) {
	st := startStack(t)
	path, size := paddedFile(t, 25, 200_000) // 5 MB: two parts
	r := run(t, env(st), "submit", path, "--upload", "parts", "--out", t.TempDir(), "--poll", "20ms")
	require.Equal(t, cli.ExitOK, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, fmt.Sprintf("(%d bytes, 25 requests, Uploads API)", size))
	assert.Contains(t, r.stdout, "25 total, 25 completed, 0 failed")
}

// --json output is JSON: submit's summary, the lists and the objects.
func TestJSONOutputParses(t *testing.T) {
	st := startStack(t)
	r := run(t, env(st), "submit", writeFile(t, goodLines(2)...), "--json", "--out", t.TempDir(), "--poll", "20ms")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	var s struct {
		Batch struct {
			ID           string `json:"id"`
			Status       string `json:"status"`
			OutputFileID string `json:"output_file_id"`
			InputFileID  string `json:"input_file_id"`
		} `json:"batch"`
		WallSeconds float64        `json:"wall_seconds"`
		ErrorCodes  map[string]int `json:"error_codes"`
		OutputPath  string         `json:"output_path"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &s), "stdout holds only the summary: %s", r.stdout)
	assert.Equal(t, "completed", s.Batch.Status)
	assert.Positive(t, s.WallSeconds)
	assert.FileExists(t, s.OutputPath)
	assert.Contains(t, r.stderr, "created "+s.Batch.ID, "messages for people go to stderr with --json")

	for _, args := range [][]string{
		{"batches", "ls"}, {"batches", "get", s.Batch.ID}, {"batches", "wait", s.Batch.ID},
		{"files", "ls"}, {"files", "get", s.Batch.InputFileID},
	} {
		r := run(t, env(st), append(args, "--json")...)
		require.Equal(t, cli.ExitOK, r.code, "%v: %s", args, r.stderr)
		var v map[string]any
		assert.NoError(t, json.Unmarshal([]byte(r.stdout), &v), "%v: %s", args, r.stdout)
	}
	res := run(t, env(st), "batches", "results", s.Batch.ID, "--json")
	require.Equal(t, cli.ExitOK, res.code, res.stderr)
	sc := bufio.NewScanner(strings.NewReader(res.stdout))
	n := 0
	for sc.Scan() {
		var v map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &v))
		assert.Equal(t, "completed", v["status"])
		n++
	}
	assert.Equal(t, 2, n)

	// The tables for people.
	tbl := run(t, env(st), "batches", "results", s.Batch.ID)
	assert.Regexp(t, `1\s+req-0\s+completed\s+HTTP 200`, tbl.stdout)
	ls := run(t, env(st), "batches", "ls")
	assert.Regexp(t, s.Batch.ID+`\s+completed\s+2\s+0\s+2`, ls.stdout)
	dl := run(t, env(st), "files", "download", s.Batch.OutputFileID)
	assert.Equal(t, 2, strings.Count(dl.stdout, "\n"))
	rm := run(t, env(st), "files", "rm", s.Batch.InputFileID)
	require.Equal(t, cli.ExitOK, rm.code, rm.stderr)
	assert.Equal(t, cli.ExitError, run(t, env(st), "files", "get", s.Batch.InputFileID).code)
}

// A server that refuses the presigned request (as OpenAI does a JSON POST /v1/files) gets the
// large file through the Uploads API instead, without being asked.
func TestSubmitFallsBackToTheUploadsAPIWithoutPresignedUploads(t *testing.T) {
	st := startStack(t)
	var refused atomic.Int32
	srv := proxyStack(t, st, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/files" && r.Header.Get("Content-Type") == "application/json" {
			refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"message":"'file' is a required property","type":"invalid_request_error"}}`)
			return true
		}
		return false
	})
	path, size := paddedFile(t, 25, 200_000)
	r := run(t, env(st), "submit", path, "--base-url", srv.URL+"/v1", "--out", t.TempDir(), "--poll", "20ms")
	require.Equal(t, cli.ExitOK, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	assert.EqualValues(t, 1, refused.Load(), "the presigned path was tried first")
	assert.Contains(t, r.stdout, fmt.Sprintf("(%d bytes, 25 requests, Uploads API)", size))

	// --upload presigned does not fall back.
	forced := run(t, env(st), "submit", path, "--base-url", srv.URL+"/v1", "--upload", "presigned")
	assert.Equal(t, cli.ExitError, forced.code)
	assert.Contains(t, forced.stderr, "'file' is a required property")
}

// proxyStack serves st's API through a proxy where intercept may answer a request itself
// (returning true).
func proxyStack(t *testing.T, st *stack.Stack, intercept func(http.ResponseWriter, *http.Request) bool) *httptest.Server {
	t.Helper()
	target, err := url.Parse(st.APIURL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !intercept(w, r) {
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Ctrl-C during the upload abandons it: exit 4, and no batch is created.
func TestSubmitInterruptedDuringTheUpload(t *testing.T) {
	st := startStack(t)
	uploading := make(chan struct{})
	srv := proxyStack(t, st, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/files" {
			return false
		}
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices when the client hangs up
		close(uploading)
		<-r.Context().Done() // held until the client gives up
		return true
	})
	sigs := make(chan os.Signal, 1)
	e := env(st)
	e.Signals = sigs
	done := make(chan result, 1)
	path := writeFile(t, goodLines(2)...)
	go func() { done <- run(t, e, "submit", path, "--base-url", srv.URL+"/v1") }()
	<-uploading
	sigs <- os.Interrupt
	r := <-done
	assert.Equal(t, cli.ExitError, r.code)
	assert.Contains(t, r.stderr, "interrupted: nothing was submitted")
	ls := run(t, env(st), "batches", "ls", "--json")
	assert.JSONEq(t, `[]`, mustField(t, ls.stdout, "data"))
}

// A watch outlives a short outage: polls answered 503 are tried again, and submit still ends
// with the batch's outcome; a 4xx is not retried.
func TestSubmitOutlivesFailedPolls(t *testing.T) {
	st := startStack(t)
	var failed atomic.Int32
	srv := proxyStack(t, st, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/batches/batch_") && failed.Load() < 3 {
			failed.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":{"message":"The database is unavailable.","type":"server_error"}}`)
			return true
		}
		return false
	})
	r := run(t, env(st), "submit", writeFile(t, goodLines(3)...), "--base-url", srv.URL+"/v1", "--out", t.TempDir(), "--poll", "10ms")
	require.Equal(t, cli.ExitOK, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	assert.EqualValues(t, 3, failed.Load())
	assert.Equal(t, 3, strings.Count(r.stderr, "failed ("), r.stderr)
	assert.Contains(t, r.stderr, "(3 of 10 tries; again in 80ms): API error 503: The database is unavailable.")
	assert.Contains(t, r.stdout, "3 total, 3 completed, 0 failed")

	gone := run(t, env(st), "batches", "wait", "batch_"+strings.Repeat("0", 32), "--poll", "10ms")
	assert.Equal(t, cli.ExitError, gone.code)
	assert.NotContains(t, gone.stderr, "tries", "a 404 ends the watch at once")
}

package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
)

// ─── helpers ────────────────────────────────────────────────────────────────────────────────────

// apiResp is a raw response with its body read.
type apiResp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r apiResp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m), "body: %s", r.Body)
	return m
}

// errorOf returns the "error" object of an error response, checking the envelope.
// anthropicErrorOf checks Anthropic's error envelope (the /v1/messages/ routes) and returns its
// error object (type, message).
func (r apiResp) anthropicErrorOf(t *testing.T) map[string]any {
	t.Helper()
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	require.True(t, strings.HasPrefix(r.Header.Get("request-id"), "req_"), "request-id header")
	m := r.json(t)
	require.Equal(t, "error", m["type"], "Anthropic's envelope: %s", r.Body)
	e, ok := m["error"].(map[string]any)
	require.True(t, ok, "error object: %s", r.Body)
	require.NotEmpty(t, e["type"])
	require.NotEmpty(t, e["message"])
	return e
}

func (r apiResp) errorOf(t *testing.T) map[string]any {
	t.Helper()
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	e, ok := r.json(t)["error"].(map[string]any)
	require.True(t, ok, "error envelope: %s", r.Body)
	for _, k := range []string{"message", "type", "param", "code"} {
		require.Contains(t, e, k, "error key %s", k)
	}
	return e
}

// noRedirect is a client that reports redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func call(t *testing.T, st *stack.Stack, key, method, path string, body io.Reader, contentType string, hdr ...string) apiResp {
	t.Helper()
	return callVia(t, noRedirect, st, key, method, path, body, contentType, hdr...)
}

// callVia is call through hc.
func callVia(t *testing.T, hc *http.Client, st *stack.Stack, key, method, path string, body io.Reader, contentType string, hdr ...string) apiResp {
	t.Helper()
	req, err := http.NewRequest(method, st.APIURL+path, body)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return apiResp{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func callJSON(t *testing.T, st *stack.Stack, key, method, path string, v any, hdr ...string) apiResp {
	t.Helper()
	var body io.Reader
	if v != nil {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		body = bytes.NewReader(b)
	}
	return call(t, st, key, method, path, body, "application/json", hdr...)
}

// multipartFile builds an upload as openai-go sends it (fields sorted, file before purpose).
func multipartFile(content []byte, filename, purpose string) (io.Reader, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fw, _ := mw.CreateFormFile("file", filename)
	_, _ = fw.Write(content)
	if purpose != "" {
		_ = mw.WriteField("purpose", purpose)
	}
	_ = mw.Close()
	return &b, mw.FormDataContentType()
}

func uploadRaw(t *testing.T, st *stack.Stack, key string, content []byte, hdr ...string) apiResp {
	t.Helper()
	body, ct := multipartFile(content, "in.jsonl", "batch")
	return call(t, st, key, "POST", "/v1/files", body, ct, hdr...)
}

func chatLine(id, model string) string {
	return fmt.Sprintf(`{"custom_id":%q,"method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"hi %s"}]}}`, id, model, id)
}

func lines(ls ...string) []byte { return []byte(strings.Join(ls, "\n") + "\n") }

func uploadSDK(t *testing.T, c openai.Client, content []byte) *openai.FileObject {
	t.Helper()
	f, err := c.Files.New(context.Background(), openai.FileNewParams{File: openai.File(bytes.NewReader(content), "in.jsonl", "application/jsonl"),
		Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	return f
}

func newBatch(t *testing.T, c openai.Client, fileID string, opts ...option.RequestOption) *openai.Batch {
	t.Helper()
	b, err := c.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: fileID,
		Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h}, opts...)
	require.NoError(t, err)
	return b
}

// sdkError asserts err is an *openai.Error with the status and a message containing msg.
func sdkError(t *testing.T, err error, status int, msg string) *openai.Error {
	t.Helper()
	var apiErr *openai.Error
	require.True(t, errors.As(err, &apiErr), "want *openai.Error, got %v", err)
	require.Equal(t, status, apiErr.StatusCode, "message: %s", apiErr.Message)
	require.Contains(t, apiErr.Message, msg)
	return apiErr
}

// ─── the SDK flow ───────────────────────────────────────────────────────────────────────────────

// The official Go SDK drives the whole flow unmodified: upload, create, poll, download, list
// with auto-paging, and typed errors.
func TestGoSDKUploadCreatePollDownloadListAndErrors(t *testing.T) {
	st := startStack(t, stack.Options{})
	c := client(st, st.APIKey)
	ctx := context.Background()

	f := uploadSDK(t, c, jsonlFile(20, "mock-chat"))
	require.True(t, strings.HasPrefix(f.ID, "file-"))
	require.Equal(t, "in.jsonl", f.Filename)
	require.Equal(t, openai.FileObjectStatusProcessed, f.Status)
	require.EqualValues(t, len(jsonlFile(20, "mock-chat")), f.Bytes)
	require.Equal(t, int64(30*24*3600), f.ExpiresAt-f.CreatedAt, "batch files expire after 30 days by default")

	got, err := c.Files.Get(ctx, f.ID)
	require.NoError(t, err)
	require.Equal(t, f.ID, got.ID)

	b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h, Metadata: map[string]string{"project": "sdk"}})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(b.ID, "batch_"))
	require.Equal(t, "sdk", b.Metadata["project"])

	done := waitBatch(t, c, b.ID, time.Minute)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	require.Equal(t, "mock-chat", done.Model)
	require.EqualValues(t, 20, done.RequestCounts.Completed)
	require.True(t, done.Usage.JSON.TotalTokens.Valid(), "usage is summed from the upstream's usage")
	require.Positive(t, done.Usage.TotalTokens)
	out := readLines(t, c, done.OutputFileID)
	require.Len(t, out, 20)

	// Output files are listed once sealed; purpose filters.
	var ids []string
	iter := c.Files.ListAutoPaging(ctx, openai.FileListParams{Limit: openai.Int(1), Purpose: openai.String("batch_output")})
	for iter.Next() {
		ids = append(ids, iter.Current().ID)
	}
	require.NoError(t, iter.Err())
	require.Equal(t, []string{done.OutputFileID}, ids)

	// Errors arrive as *openai.Error with OpenAI's status codes and messages.
	_, err = c.Batches.Get(ctx, "batch_00000000000000000000000000000000")
	_ = sdkError(t, err, 404, "No batch found with id 'batch_00000000000000000000000000000000'.")
	_, err = c.Files.Get(ctx, "file-AAAAAAAAAAAAAAAAAAAAAAAA")
	_ = sdkError(t, err, 404, "No such File object: file-AAAAAAAAAAAAAAAAAAAAAAAA")
	// An id that does not have its kind's shape cannot name anything: 400, not 404.
	_, err = c.Batches.Get(ctx, "batch_nope")
	require.Equal(t, "id", sdkError(t, err, 400, "Invalid batch id").Param)
	_, err = c.Files.Get(ctx, "file-nope")
	_ = sdkError(t, err, 400, "Invalid file id")
	_, err = c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: "2h"})
	e := sdkError(t, err, 400, "completion_window")
	require.Equal(t, "completion_window", e.Param)
	_, err = c.Files.New(ctx, openai.FileNewParams{File: bytes.NewReader(lines(`{"custom_id":"a"`)), Purpose: openai.FilePurposeBatch})
	e = sdkError(t, err, 400, "line 1:")
	require.Equal(t, "invalid_json_line", e.Code)
	_, err = c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h}, option.WithJSONSet("status", "completed"))
	_ = sdkError(t, err, 400, "Unrecognized request argument supplied: status")
}

// Batches and files page through ListAutoPaging, newest first, with has_more on every page.
func TestListPagingWithCursorsAndFilters(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "idle", Limit: 0}}})
	c := client(st, st.APIKey)
	ctx := context.Background()
	var fileIDs, batchIDs []string
	for i := range 5 {
		f := uploadSDK(t, c, lines(chatLine(fmt.Sprintf("r%d", i), "idle")))
		fileIDs = append(fileIDs, f.ID)
		b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
			CompletionWindow: openai.BatchNewParamsCompletionWindow24h, Metadata: map[string]string{"n": fmt.Sprintf("item-%d", i)}})
		require.NoError(t, err)
		batchIDs = append(batchIDs, b.ID)
	}
	reverse := func(xs []string) []string {
		out := make([]string, len(xs))
		for i, x := range xs {
			out[len(xs)-1-i] = x
		}
		return out
	}

	var got []string
	it := c.Batches.ListAutoPaging(ctx, openai.BatchListParams{Limit: openai.Int(2)})
	for it.Next() {
		got = append(got, it.Current().ID)
	}
	require.NoError(t, it.Err())
	require.Equal(t, reverse(batchIDs), got, "newest first, every batch once")

	got = nil
	fit := c.Files.ListAutoPaging(ctx, openai.FileListParams{Limit: openai.Int(2), Order: openai.FileListParamsOrderAsc,
		Purpose: openai.String("batch")})
	for fit.Next() {
		got = append(got, fit.Current().ID)
	}
	require.NoError(t, fit.Err())
	require.Equal(t, fileIDs, got, "oldest first with order=asc")

	page := callJSON(t, st, st.APIKey, "GET", "/v1/batches?limit=2", nil).json(t)
	require.Equal(t, "list", page["object"])
	require.Equal(t, true, page["has_more"])
	require.Equal(t, batchIDs[4], page["first_id"])
	require.Equal(t, batchIDs[3], page["last_id"])
	last := callJSON(t, st, st.APIKey, "GET", "/v1/batches?limit=10&after="+batchIDs[1], nil).json(t)
	require.Equal(t, false, last["has_more"])
	require.Len(t, last["data"], 1)

	// Extensions: search over metadata, status filter, created_after.
	hit := callJSON(t, st, st.APIKey, "GET", "/v1/batches?search=ITEM-3", nil).json(t)
	require.Len(t, hit["data"], 1)
	require.Equal(t, batchIDs[3], hit["data"].([]any)[0].(map[string]any)["id"])
	require.Empty(t, callJSON(t, st, st.APIKey, "GET", "/v1/batches?search=%25", nil).json(t)["data"], "LIKE wildcards are literal")
	require.Empty(t, callJSON(t, st, st.APIKey, "GET", "/v1/batches?status=completed", nil).json(t)["data"])
	require.Len(t, callJSON(t, st, st.APIKey, "GET", "/v1/batches?status=in_progress,validating&active_first=true", nil).json(t)["data"], 5)
	future := time.Now().Add(time.Hour).Unix()
	require.Empty(t, callJSON(t, st, st.APIKey, "GET", fmt.Sprintf("/v1/batches?created_after=%d", future), nil).json(t)["data"])
	require.Len(t, callJSON(t, st, st.APIKey, "GET", fmt.Sprintf("/v1/batches?created_before=%d", future), nil).json(t)["data"], 5)

	// Bad parameters and cursors: 400, never another tenant's data.
	for _, q := range []string{"limit=0", "limit=101", "limit=x", "status=done", "created_after=yesterday", "active_first=maybe",
		"after=batch_forged"} {
		r := callJSON(t, st, st.APIKey, "GET", "/v1/batches?"+q, nil)
		require.Equal(t, 400, r.Status, q)
		r.errorOf(t)
	}
	for _, q := range []string{"order=sideways", "limit=10001", "after=file-forged"} {
		require.Equal(t, 400, callJSON(t, st, st.APIKey, "GET", "/v1/files?"+q, nil).Status, q)
	}
	other, err := st.NewTenant(ctx, "other")
	require.NoError(t, err)
	r := callJSON(t, st, other, "GET", "/v1/batches?after="+batchIDs[2], nil)
	require.Equal(t, 400, r.Status, "another tenant's cursor")
	r = callJSON(t, st, other, "GET", "/v1/files?after="+fileIDs[2], nil)
	require.Equal(t, 400, r.Status, "another tenant's cursor")
	empty := callJSON(t, st, other, "GET", "/v1/batches", nil).json(t)
	require.Equal(t, []any{}, empty["data"])
	require.Equal(t, false, empty["has_more"])
	require.Nil(t, empty["first_id"])
	require.Empty(t, callJSON(t, st, other, "GET", "/v1/files", nil).json(t)["data"])
}

// File and Batch objects carry every key of the contract, with explicit nulls.
func TestObjectsEmitEveryKey(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "idle", Limit: 0}}})
	c := client(st, st.APIKey)
	f := uploadSDK(t, c, lines(chatLine("a", "idle")))
	fo := callJSON(t, st, st.APIKey, "GET", "/v1/files/"+f.ID, nil)
	require.Equal(t, "application/json", fo.Header.Get("Content-Type"))
	for _, k := range []string{"id", "object", "bytes", "created_at", "expires_at", "filename", "purpose", "status", "status_details"} {
		require.Contains(t, fo.json(t), k)
	}
	require.Equal(t, "processed", fo.json(t)["status"])
	b := newBatch(t, c, f.ID)
	bo := callJSON(t, st, st.APIKey, "GET", "/v1/batches/"+b.ID, nil).json(t)
	for _, k := range []string{"id", "object", "endpoint", "model", "errors", "input_file_id", "completion_window", "status",
		"output_file_id", "error_file_id", "created_at", "in_progress_at", "expires_at", "finalizing_at", "completed_at", "failed_at",
		"expired_at", "cancelling_at", "cancelled_at", "request_counts", "usage", "metadata", "partial_output_file_id", "partial_error_file_id"} {
		require.Contains(t, bo, k)
	}
	require.Nil(t, bo["usage"])
	require.Nil(t, bo["completed_at"])
}

// A file that passed upload but is bad for the batch fails the batch asynchronously, with the
// line in errors.data (OpenAI's behaviour), and creates no request.
func TestBatchFailsAtPopulateWithTheLine(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 4}, {Name: "gone", Limit: 4}}})
	c := client(st, st.APIKey)
	f := uploadSDK(t, c, lines(chatLine("a", "mock-chat"), chatLine("b", "gone")))
	require.Equal(t, 200, callJSON(t, st, st.AdminKey, "DELETE", "/v1/admin/models/gone", nil).Status)

	done := waitBatch(t, c, newBatch(t, c, f.ID).ID, time.Minute)
	require.Equal(t, openai.BatchStatusFailed, done.Status)
	require.Len(t, done.Errors.Data, 1)
	require.EqualValues(t, 2, done.Errors.Data[0].Line)
	require.Equal(t, "model_not_found", done.Errors.Data[0].Code)
	require.Equal(t, "body.model", done.Errors.Data[0].Param)
	require.EqualValues(t, 0, st.Upstream.Calls(), "nothing partial runs")

	// An endpoint that does not match the lines fails the same way (url_mismatch, line 1).
	emb := uploadSDK(t, c, lines(`{"custom_id":"e","method":"POST","url":"/v1/embeddings","body":{"model":"mock-chat","input":"x"}}`))
	done = waitBatch(t, c, newBatch(t, c, emb.ID).ID, time.Minute)
	require.Equal(t, openai.BatchStatusFailed, done.Status)
	require.EqualValues(t, 1, done.Errors.Data[0].Line)
	require.Equal(t, "url_mismatch", done.Errors.Data[0].Code)
}

// Output and error files can be read while the batch runs, by page, with X-Incomplete and
// X-Last-Line; the results view merges input and outcome per line.
func TestPartialResultsWhileRunningAndResultsView(t *testing.T) {
	st := startStack(t, stack.Options{})
	c := client(st, st.APIKey)
	ctx := context.Background()
	var ls []string
	for i := range 6 {
		ls = append(ls, chatLine(fmt.Sprintf("ok-%d", i), "mock-chat"))
	}
	ls = append(ls,
		`{"custom_id":"bad-0","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","mock_status":400}}`,
		`{"custom_id":"held-0","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","mock_block":"hold"}}`)
	f := uploadSDK(t, c, lines(ls...))
	b := newBatch(t, c, f.ID)
	require.NoError(t, st.Upstream.WaitBlocked(ctx, "hold", 1))
	require.Eventually(t, func() bool {
		got, err := c.Batches.Get(ctx, b.ID)
		require.NoError(t, err)
		return got.RequestCounts.Completed == 6 && got.RequestCounts.Failed == 1
	}, 30*time.Second, 20*time.Millisecond, "request_counts are live")
	running := callJSON(t, st, st.APIKey, "GET", "/v1/batches/"+b.ID, nil).json(t)
	require.Equal(t, "in_progress", running["status"])
	// While the batch runs, its files are named by the partial_* extensions (output_file_id and
	// error_file_id stay null until it ends, as OpenAI's do).
	partialOut, partialErr := running["partial_output_file_id"].(string), running["partial_error_file_id"].(string)

	// A finished line shows in the partial files once every transaction older than its own has
	// ended (docs/api.md), a moment after the counts.
	var out apiResp
	require.Eventually(t, func() bool {
		out = call(t, st, st.APIKey, "GET", "/v1/files/"+partialOut+"/content", nil, "")
		return out.Header.Get("X-Last-Line") == "6"
	}, 10*time.Second, 20*time.Millisecond, "the six completed lines are in the partial output file")
	require.Equal(t, 200, out.Status)
	require.Equal(t, "true", out.Header.Get("X-Incomplete"), "the batch still runs")
	require.Equal(t, 6, bytes.Count(out.Body, []byte("\n")))

	pg := call(t, st, st.APIKey, "GET", "/v1/files/"+partialOut+"/content?offset=2&limit=3", nil, "")
	require.Equal(t, "5", pg.Header.Get("X-Last-Line"))
	require.Equal(t, 3, bytes.Count(pg.Body, []byte("\n")))
	one := call(t, st, st.APIKey, "GET", "/v1/files/"+partialOut+"/content?search=OK-4", nil, "")
	require.Equal(t, 1, bytes.Count(one.Body, []byte("\n")))
	require.Contains(t, string(one.Body), `"custom_id":"ok-4"`)

	var errs apiResp
	require.Eventually(t, func() bool {
		errs = call(t, st, st.APIKey, "GET", "/v1/files/"+partialErr+"/content", nil, "")
		return bytes.Contains(errs.Body, []byte(`"custom_id":"bad-0"`))
	}, 10*time.Second, 20*time.Millisecond, "the failed line is in the partial error file")
	require.Contains(t, string(errs.Body), `"status_code":400`)

	res := call(t, st, st.APIKey, "GET", "/v1/batches/"+b.ID+"/results", nil, "")
	require.Equal(t, "true", res.Header.Get("X-Incomplete"))
	rows := bytes.Split(bytes.TrimSpace(res.Body), []byte("\n"))
	require.Len(t, rows, 8)
	var held map[string]any
	require.NoError(t, json.Unmarshal(rows[7], &held))
	require.Equal(t, "held-0", held["custom_id"])
	require.Equal(t, "in_progress", held["status"])
	require.EqualValues(t, 8, held["line"])
	require.Nil(t, held["response"])
	require.Contains(t, held, "latency_ms")
	require.Nil(t, held["latency_ms"], "no latency while the line runs")
	require.Equal(t, "mock-chat", held["input"].(map[string]any)["model"])
	var finished map[string]any
	require.NoError(t, json.Unmarshal(rows[0], &finished))
	require.Equal(t, "completed", finished["status"])
	require.GreaterOrEqual(t, finished["latency_ms"], 0.0, "a finished line's latency")
	failed := call(t, st, st.APIKey, "GET", "/v1/batches/"+b.ID+"/results?status=failed", nil, "")
	require.Equal(t, 1, bytes.Count(failed.Body, []byte("\n")))
	require.Contains(t, string(failed.Body), `"status":"failed"`)
	require.Equal(t, 400, call(t, st, st.APIKey, "GET", "/v1/batches/"+b.ID+"/results?status=weird", nil, "").Status)
	paged := call(t, st, st.APIKey, "GET", "/v1/batches/"+b.ID+"/results?offset=6&limit=1", nil, "")
	require.Contains(t, string(paged.Body), `"custom_id":"bad-0"`)
	require.Equal(t, "7", paged.Header.Get("X-Last-Line"))

	st.Upstream.Release("hold")
	done := waitBatch(t, c, b.ID, time.Minute)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	full := call(t, st, st.APIKey, "GET", "/v1/files/"+done.OutputFileID+"/content", nil, "")
	require.Equal(t, "false", full.Header.Get("X-Incomplete"))
	require.Equal(t, "7", full.Header.Get("X-Last-Line"))
	require.Equal(t, 7, bytes.Count(full.Body, []byte("\n")))
	in := call(t, st, st.APIKey, "GET", "/v1/files/"+f.ID+"/content?offset=7", nil, "")
	require.Contains(t, string(in.Body), `"custom_id":"held-0"`)
	require.Equal(t, "8", in.Header.Get("X-Last-Line"))
}

// sdkDoer is an http.Client behind the SDK's HTTPDoer interface. openai-go (v3.98) refuses to
// follow a redirect to another origin with its default client; a custom doer follows it (Go
// drops the Authorization header on the cross-host hop).
type sdkDoer struct{ c *http.Client }

func (d sdkDoer) Do(r *http.Request) (*http.Response, error) { return d.c.Do(r) }

// Finished files above the inline cap are served by a 302 to a presigned S3 URL.
func TestLargeDownloadsRedirectToS3(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "idle", Limit: 0}}})
	c := client(st, st.APIKey)
	pad := strings.Repeat("x", 4000)
	var b bytes.Buffer
	for i := 0; b.Len() < 4_200_000; i++ {
		fmt.Fprintf(&b, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"idle","pad":%q}}`+"\n", i, pad)
	}
	f := uploadSDK(t, c, b.Bytes())
	r := call(t, st, st.APIKey, "GET", "/v1/files/"+f.ID+"/content", nil, "")
	require.Equal(t, http.StatusFound, r.Status)
	loc := r.Header.Get("Location")
	require.NotContains(t, loc, st.APIURL)
	require.Contains(t, loc, "X-Amz-Signature=")

	// A plain client follows it.
	resp, err := http.Get(loc)
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, b.Bytes(), got)

	// So does the Go SDK with a custom HTTPDoer; its default client refuses cross-origin hops.
	_, err = c.Files.Content(context.Background(), f.ID)
	require.ErrorContains(t, err, "origin must match")
	resp, err = c.Files.Content(context.Background(), f.ID, option.WithHTTPClient(sdkDoer{http.DefaultClient}))
	require.NoError(t, err)
	got, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, b.Bytes(), got)

	// A page of a large file is still served by the API, capped in size.
	pg := call(t, st, st.APIKey, "GET", "/v1/files/"+f.ID+"/content?offset=0", nil, "")
	require.Equal(t, 200, pg.Status)
	require.Equal(t, "true", pg.Header.Get("X-Incomplete"))
	require.LessOrEqual(t, len(pg.Body), 4_000_000)
}

// ─── idempotency ────────────────────────────────────────────────────────────────────────────────

func TestIdempotencyKeyReplaysTheOriginal(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "idle", Limit: 0}}})
	c := client(st, st.APIKey)
	ctx := context.Background()
	content := lines(chatLine("a", "idle"))

	// Files (multipart): the same key and content returns the first file; only one is kept.
	f1 := uploadRaw(t, st, st.APIKey, content, "Idempotency-Key", "file-key")
	f2 := uploadRaw(t, st, st.APIKey, content, "Idempotency-Key", "file-key")
	require.Equal(t, 200, f2.Status)
	require.Equal(t, f1.json(t)["id"], f2.json(t)["id"])
	list := callJSON(t, st, st.APIKey, "GET", "/v1/files", nil).json(t)
	require.Len(t, list["data"], 1)
	r := uploadRaw(t, st, st.APIKey, lines(chatLine("b", "idle")), "Idempotency-Key", "file-key")
	require.Equal(t, 422, r.Status, "same key, different content")
	r.errorOf(t)
	require.Len(t, callJSON(t, st, st.APIKey, "GET", "/v1/files", nil).json(t)["data"], 1, "the rejected copy is not kept")

	// Batches, through the SDK with the header set.
	fileID := f1.json(t)["id"].(string)
	b1 := newBatch(t, c, fileID, option.WithHeader("Idempotency-Key", "batch-key"))
	b2 := newBatch(t, c, fileID, option.WithHeader("Idempotency-Key", "batch-key"))
	require.Equal(t, b1.ID, b2.ID)
	_, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: fileID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h, Metadata: map[string]string{"x": "y"}},
		option.WithHeader("Idempotency-Key", "batch-key"))
	_ = sdkError(t, err, 422, "Idempotency-Key")
	all := callJSON(t, st, st.APIKey, "GET", "/v1/batches", nil).json(t)
	require.Len(t, all["data"], 1)

	// Keys are per tenant: another tenant's identical key creates its own object.
	other, err := st.NewTenant(ctx, "other")
	require.NoError(t, err)
	o := uploadRaw(t, st, other, content, "Idempotency-Key", "file-key")
	require.Equal(t, 200, o.Status)
	require.NotEqual(t, f1.json(t)["id"], o.json(t)["id"])

	// The presigned path replays too, with a fresh URL for the same pending file.
	req := map[string]any{"filename": "big.jsonl", "purpose": "batch", "bytes": 10}
	p1 := callJSON(t, st, st.APIKey, "POST", "/v1/files", req, "Idempotency-Key", "pre-key").json(t)
	p2 := callJSON(t, st, st.APIKey, "POST", "/v1/files", req, "Idempotency-Key", "pre-key").json(t)
	require.Equal(t, p1["id"], p2["id"])
	require.NotEmpty(t, p2["upload_url"])
}

// ─── admin ──────────────────────────────────────────────────────────────────────────────────────

func TestAdminTenantsKeysAndModels(t *testing.T) {
	st := startStack(t, stack.Options{})
	ten := callJSON(t, st, st.AdminKey, "POST", "/v1/admin/tenants", map[string]any{"name": "acme"})
	require.Equal(t, 200, ten.Status, string(ten.Body))
	tid := ten.json(t)["id"].(string)
	require.True(t, strings.HasPrefix(tid, "tenant_"))

	k := callJSON(t, st, st.AdminKey, "POST", "/v1/admin/tenants/"+tid+"/keys", map[string]any{"name": "ci"})
	require.Equal(t, 200, k.Status, string(k.Body))
	key := k.json(t)["key"].(string)
	require.True(t, strings.HasPrefix(key, "fsk_"))
	require.Equal(t, "no-store", k.Header.Get("Cache-Control"))
	keyID := int64(k.json(t)["id"].(float64))

	require.Equal(t, 200, callJSON(t, st, key, "GET", "/v1/files", nil).Status, "the new key works")
	keys := callJSON(t, st, st.AdminKey, "GET", "/v1/admin/tenants/"+tid+"/keys", nil)
	require.NotContains(t, string(keys.Body), key, "a key is shown once")
	require.Contains(t, string(keys.Body), key[:8], "its prefix identifies it")
	require.Contains(t, string(callJSON(t, st, st.AdminKey, "GET", "/v1/admin/tenants", nil).Body), tid)
	require.Equal(t, 404, callJSON(t, st, st.AdminKey, "POST", "/v1/admin/tenants/tenant_AAAAAAAAAAAAAAAA/keys", map[string]any{}).Status)
	require.Equal(t, 400, callJSON(t, st, st.AdminKey, "POST", "/v1/admin/tenants/tenant_nope/keys", map[string]any{}).Status, "malformed")

	rev := callJSON(t, st, st.AdminKey, "DELETE", fmt.Sprintf("/v1/admin/keys/%d", keyID), nil)
	require.Equal(t, 200, rev.Status)
	require.NotNil(t, rev.json(t)["revoked_at"])
	r := callJSON(t, st, key, "GET", "/v1/files", nil)
	require.Equal(t, 401, r.Status, "revocation is immediate")
	require.Equal(t, "invalid_api_key", r.errorOf(t)["code"])
	require.Equal(t, 404, callJSON(t, st, st.AdminKey, "DELETE", "/v1/admin/keys/999999", nil).Status)

	// Models: escalation target cannot go; a plain one can; a missing one is 404.
	require.Equal(t, 200, callJSON(t, st, st.AdminKey, "PUT", "/v1/admin/models/big", map[string]any{
		"base_url": "http://127.0.0.1:1", "concurrency_limit": 1}).Status)
	require.Equal(t, 200, callJSON(t, st, st.AdminKey, "PUT", "/v1/admin/models/small", map[string]any{
		"base_url": "http://127.0.0.1:1", "concurrency_limit": 1, "escalation_model": "big"}).Status)
	require.Equal(t, 400, callJSON(t, st, st.AdminKey, "DELETE", "/v1/admin/models/big", nil).Status)
	d := callJSON(t, st, st.AdminKey, "DELETE", "/v1/admin/models/small", nil)
	require.Equal(t, 200, d.Status)
	require.Equal(t, true, d.json(t)["deleted"])
	require.Equal(t, 404, callJSON(t, st, st.AdminKey, "DELETE", "/v1/admin/models/small", nil).Status)
	require.NotContains(t, string(callJSON(t, st, st.AdminKey, "GET", "/v1/admin/models", nil).Body), `"small"`)
}

// ─── cost estimate and dry runs ─────────────────────────────────────────────────────────────────

func TestCostEstimateAndDryRuns(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "a", Limit: 0}, {Name: "b", Limit: 0}}})
	c := client(st, st.APIKey)
	emb := `{"custom_id":"e%d","method":"POST","url":"/v1/embeddings","body":{"model":"b","input":"x"}}`
	f := uploadSDK(t, c, lines(chatLine("c1", "a"), chatLine("c2", "a"), fmt.Sprintf(emb, 1), chatLine("c3", "b"), fmt.Sprintf(emb, 2)))

	est := callJSON(t, st, st.APIKey, "GET", "/v1/files/"+f.ID+"/cost-estimate", nil)
	require.Equal(t, 200, est.Status, string(est.Body))
	e := est.json(t)
	require.EqualValues(t, 5, e["total_requests"])
	models := e["models"].([]any)
	require.Len(t, models, 2)
	ma := models[0].(map[string]any)
	require.Equal(t, "a", ma["model"])
	require.EqualValues(t, 2, ma["requests"])
	require.Positive(t, ma["body_bytes"])
	require.EqualValues(t, (int64(ma["body_bytes"].(float64))+3)/4, ma["estimated_input_tokens"])

	// A dry run against the chat endpoint reports every mismatching line at once.
	v := callJSON(t, st, st.APIKey, "POST", "/v1/files/"+f.ID+"/validate", map[string]any{"endpoint": "/v1/chat/completions"}).json(t)
	require.Equal(t, false, v["valid"])
	errs := v["errors"].([]any)
	require.Len(t, errs, 2)
	require.EqualValues(t, 3, errs[0].(map[string]any)["line"])
	require.Equal(t, "e1", errs[0].(map[string]any)["custom_id"])
	require.Equal(t, "url_mismatch", errs[0].(map[string]any)["code"])
	require.Equal(t, "url", errs[0].(map[string]any)["param"])
	require.EqualValues(t, 5, errs[1].(map[string]any)["line"])
	require.EqualValues(t, 3, v["total_requests"])

	// Without an endpoint the file is fine; after model b is removed, its lines are not.
	require.Equal(t, true, call(t, st, st.APIKey, "POST", "/v1/files/"+f.ID+"/validate", nil, "").json(t)["valid"])
	require.Equal(t, 200, callJSON(t, st, st.AdminKey, "DELETE", "/v1/admin/models/b", nil).Status)
	v = callJSON(t, st, st.APIKey, "POST", "/v1/files/"+f.ID+"/validate", map[string]any{}).json(t)
	require.Len(t, v["errors"], 3)
	require.Equal(t, "model_not_found", v["errors"].([]any)[0].(map[string]any)["code"])

	// validate_only on POST /v1/batches: the same report, and no batch.
	r := callJSON(t, st, st.APIKey, "POST", "/v1/batches", map[string]any{"input_file_id": f.ID, "endpoint": "/v1/chat/completions",
		"completion_window": "24h", "validate_only": true})
	require.Equal(t, 200, r.Status, string(r.Body))
	require.Equal(t, "file.validation", r.json(t)["object"])
	require.Len(t, r.json(t)["errors"], 3)
	require.Empty(t, callJSON(t, st, st.APIKey, "GET", "/v1/batches", nil).json(t)["data"])
	require.Equal(t, 400, callJSON(t, st, st.APIKey, "POST", "/v1/files/"+f.ID+"/validate", map[string]any{"endpoint": "/v1/x"}).Status)
}

// ─── Uploads API ────────────────────────────────────────────────────────────────────────────────

func TestUploadsAPIThroughTheSDK(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "idle", Limit: 0}}})
	c := client(st, st.APIKey)
	ctx := context.Background()
	content := lines(chatLine("p1", "idle"), chatLine("p2", "idle"), chatLine("p3", "idle"))
	up, err := c.Uploads.New(ctx, openai.UploadNewParams{Bytes: int64(len(content)), Filename: "parts.jsonl",
		MimeType: "application/jsonl", Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	require.Equal(t, openai.UploadStatusPending, up.Status)
	require.True(t, strings.HasPrefix(up.ID, "upload_"))

	// Parts of any size (S3 multipart would refuse parts under 5 MiB), completed out of order.
	var ids []string
	for _, chunk := range [][]byte{content[:10], content[10:100], content[100:]} {
		p, err := c.Uploads.Parts.New(ctx, up.ID, openai.UploadPartNewParams{Data: bytes.NewReader(chunk)})
		require.NoError(t, err)
		ids = append(ids, p.ID)
	}
	_, err = c.Uploads.Complete(ctx, up.ID, openai.UploadCompleteParams{PartIDs: []string{ids[0], ids[1]}})
	_ = sdkError(t, err, 400, "add up to")
	done, err := c.Uploads.Complete(ctx, up.ID, openai.UploadCompleteParams{PartIDs: ids})
	require.NoError(t, err)
	require.Equal(t, openai.UploadStatusCompleted, done.Status)
	require.Equal(t, openai.FileObjectStatusProcessed, done.File.Status)
	resp, err := c.Files.Content(ctx, done.File.ID)
	require.NoError(t, err)
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, content, got)
	_, err = c.Uploads.Parts.New(ctx, up.ID, openai.UploadPartNewParams{Data: bytes.NewReader(content)})
	_ = sdkError(t, err, 400, "already completed")

	// A bad line fails completion with its line number, and the upload is gone.
	bad := lines(chatLine("x", "idle"), `{"custom_id":"y"}`)
	up2, err := c.Uploads.New(ctx, openai.UploadNewParams{Bytes: int64(len(bad)), Filename: "bad.jsonl", MimeType: "application/jsonl",
		Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	p, err := c.Uploads.Parts.New(ctx, up2.ID, openai.UploadPartNewParams{Data: bytes.NewReader(bad)})
	require.NoError(t, err)
	_, err = c.Uploads.Complete(ctx, up2.ID, openai.UploadCompleteParams{PartIDs: []string{p.ID}})
	_ = sdkError(t, err, 400, "line 2:")
	_, err = c.Uploads.Cancel(ctx, up2.ID)
	_ = sdkError(t, err, 404, "No such Upload object")

	// Cancel; a wrong md5; an oversized part answers 413 naming the presigned path.
	up3, err := c.Uploads.New(ctx, openai.UploadNewParams{Bytes: int64(len(content)), Filename: "c.jsonl", MimeType: "application/jsonl",
		Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	p, err = c.Uploads.Parts.New(ctx, up3.ID, openai.UploadPartNewParams{Data: bytes.NewReader(content)})
	require.NoError(t, err)
	_, err = c.Uploads.Complete(ctx, up3.ID, openai.UploadCompleteParams{PartIDs: []string{p.ID}, Md5: param.NewOpt("00")})
	_ = sdkError(t, err, 400, "md5")
	up4, err := c.Uploads.New(ctx, openai.UploadNewParams{Bytes: 100, Filename: "d.jsonl", MimeType: "application/jsonl",
		Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	_, err = c.Uploads.Parts.New(ctx, up4.ID, openai.UploadPartNewParams{Data: bytes.NewReader(make([]byte, 4_600_000))})
	_ = sdkError(t, err, 413, "presigned upload_url")
	cancelled, err := c.Uploads.Cancel(ctx, up4.ID)
	require.NoError(t, err)
	require.Equal(t, openai.UploadStatusCancelled, cancelled.Status)
	_, err = c.Uploads.New(ctx, openai.UploadNewParams{Bytes: 200_000_001, Filename: "e.jsonl", MimeType: "application/jsonl",
		Purpose: openai.FilePurposeBatch})
	_ = sdkError(t, err, 413, "too large")
}

// output_file_id and error_file_id follow OpenAI: null while the batch runs, set when it ends, and
// null when there is no such output (no line failed, or none succeeded). The files that grow
// while it runs are named by the partial_output_file_id and partial_error_file_id extensions.
func TestOutputAndErrorFileIDsAreSetWhenTheBatchEnds(t *testing.T) {
	st := startStack(t, stack.Options{})
	c := client(st, st.APIKey)
	ctx := context.Background()
	get := func(id string) map[string]any {
		r := callJSON(t, st, st.APIKey, "GET", "/v1/batches/"+id, nil)
		require.Equal(t, 200, r.Status, "%s", r.Body)
		return r.json(t)
	}

	f := uploadSDK(t, c, lines(chatLine("ok-0", "mock-chat"),
		`{"custom_id":"held","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","mock_block":"hold"}}`))
	b := newBatch(t, c, f.ID)
	require.Empty(t, b.OutputFileID, "null at creation")
	require.Empty(t, b.ErrorFileID, "null at creation")
	require.NoError(t, st.Upstream.WaitBlocked(ctx, "hold", 1))
	require.Eventually(t, func() bool { return get(b.ID)["request_counts"].(map[string]any)["completed"] == 1.0 },
		30*time.Second, 20*time.Millisecond)
	running := get(b.ID)
	require.Equal(t, "in_progress", running["status"])
	require.Nil(t, running["output_file_id"], "null while in_progress")
	require.Nil(t, running["error_file_id"], "null while in_progress")
	partial, ok := running["partial_output_file_id"].(string)
	require.True(t, ok, "the partial output file is named while the batch runs")
	require.NotEmpty(t, running["partial_error_file_id"])
	var out apiResp
	require.Eventually(t, func() bool {
		out = call(t, st, st.APIKey, "GET", "/v1/files/"+partial+"/content", nil, "")
		return bytes.Contains(out.Body, []byte(`"custom_id":"ok-0"`))
	}, 10*time.Second, 20*time.Millisecond, "the finished line shows in the partial output file")
	require.Equal(t, 200, out.Status)

	st.Upstream.Release("hold")
	done := waitBatch(t, c, b.ID, time.Minute)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	require.Equal(t, partial, done.OutputFileID, "set when completed: the file that grew is the output file")
	require.Empty(t, done.ErrorFileID, "null error_file_id when no line failed")
	require.Len(t, readLines(t, c, done.OutputFileID), 2)

	// Every line fails: the batch completes (as OpenAI's does) with a null output_file_id.
	bad := `{"custom_id":"bad-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","mock_status":400}}`
	f = uploadSDK(t, c, lines(fmt.Sprintf(bad, 0), fmt.Sprintf(bad, 1)))
	failed := waitBatch(t, c, newBatch(t, c, f.ID).ID, time.Minute)
	require.Equal(t, openai.BatchStatusCompleted, failed.Status)
	require.EqualValues(t, 2, failed.RequestCounts.Failed)
	require.Empty(t, failed.OutputFileID, "null output_file_id when every line failed")
	require.NotEmpty(t, failed.ErrorFileID)
	require.Len(t, readLines(t, c, failed.ErrorFileID), 2)
}

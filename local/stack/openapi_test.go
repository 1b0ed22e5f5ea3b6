package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
	"github.com/fusillade/fusillade/shared/httpapi/openapitest"
)

// Every route, driven through the official Go SDK and plain HTTP against a running stack, answers
// what the OpenAPI document declares: each recorded response of the API (successes and errors)
// is valid against the schema of its route and status, and every operation of the document was
// answered with a success at least once.
func TestResponsesMatchTheOpenAPIDocument(t *testing.T) {
	st := startStack(t, stack.Options{Models: append(stack.DefaultModels(), stack.ModelSpec{Name: "parked", Limit: 0}),
		Env: map[string]string{"COMPLETION_WINDOWS": "24h,48h"}})
	ctx := context.Background()
	rec := &openapitest.Recorder{}
	hc := &http.Client{Transport: rec, CheckRedirect: noRedirect.CheckRedirect}
	c := openai.NewClient(option.WithBaseURL(st.APIURL+"/v1"), option.WithAPIKey(st.APIKey), option.WithHTTPClient(hc),
		option.WithMaxRetries(0))
	do := func(key, method, path string, body any, hdr ...string) apiResp {
		t.Helper()
		var rd io.Reader
		ct := ""
		switch b := body.(type) {
		case nil:
		case string:
			rd, ct = strings.NewReader(b), "application/json"
		default:
			rd, ct = strings.NewReader(mustJSON(t, b)), "application/json"
		}
		return callVia(t, hc, st, key, method, path, rd, ct, hdr...)
	}
	tenant, admin := st.APIKey, st.AdminKey

	// Public routes.
	for _, p := range []string{"/healthz", "/readyz", "/v1/openapi.json", "/ui/"} {
		require.Equal(t, 200, do("", "GET", p, nil).Status, p)
	}

	// Files, multipart through the SDK; two lines fail once, for the two retry routes.
	flaky := func(id string) string {
		return fmt.Sprintf(`{"custom_id":%q,"method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","mock_status":400,"mock_fail_times":1,"mock_key":%q}}`, id, id)
	}
	f := uploadSDK(t, c, lines(chatLine("ok", "mock-chat"), flaky("flaky-a"), flaky("flaky-b")))
	_, err := c.Files.Get(ctx, f.ID)
	require.NoError(t, err)
	_, err = c.Files.List(ctx, openai.FileListParams{})
	require.NoError(t, err)
	require.Equal(t, 200, do(tenant, "GET", "/v1/files?order=asc&limit=1&purpose=batch&created_by_key=1,2", nil).Status)
	require.Equal(t, 200, do(tenant, "POST", "/v1/files/"+f.ID+"/validate", map[string]any{"endpoint": "/v1/chat/completions"}).Status)
	require.Equal(t, 200, do(tenant, "POST", "/v1/files/"+f.ID+"/validate", map[string]any{"endpoint": "/v1/embeddings"}).Status,
		"a report with errors")
	require.Equal(t, 200, do(tenant, "GET", "/v1/files/"+f.ID+"/cost-estimate", nil).Status)
	require.Equal(t, 200, do(tenant, "POST", "/v1/batches", map[string]any{"input_file_id": f.ID, "endpoint": "/v1/chat/completions",
		"completion_window": "24h", "validate_only": true}).Status)

	// A batch to its end, its content and results, and both retries.
	b := waitBatch(t, c, newBatch(t, c, f.ID).ID, time.Minute)
	require.EqualValues(t, 2, b.RequestCounts.Failed)
	_, err = c.Batches.List(ctx, openai.BatchListParams{})
	require.NoError(t, err)
	require.Equal(t, 200, do(tenant, "GET", "/v1/batches?status=completed,failed&active_first=true&created_after=0&limit=5", nil).Status)
	ofFile := do(tenant, "GET", "/v1/batches?input_file_id="+f.ID, nil)
	require.Equal(t, 200, ofFile.Status)
	require.Len(t, ofFile.json(t)["data"], 1, "the file's one batch")
	require.Len(t, readLines(t, c, b.OutputFileID), 1)
	errs := readLines(t, c, b.ErrorFileID)
	require.Len(t, errs, 2)
	require.Equal(t, 200, do(tenant, "GET", "/v1/files/"+b.ErrorFileID+"/content?offset=1&limit=1", nil).Status)
	require.Equal(t, 200, do(tenant, "GET", "/v1/files/"+f.ID+"/content?search=flaky", nil).Status)
	require.Equal(t, 200, do(tenant, "GET", "/v1/batches/"+b.ID+"/results", nil).Status)
	require.Equal(t, 200, do(tenant, "GET", "/v1/batches/"+b.ID+"/results?status=failed&limit=1", nil).Status)
	require.Equal(t, 200, do(tenant, "GET", "/v1/batches/"+b.ID+"/timeline?points=5", nil).Status)
	require.Equal(t, 400, do(tenant, "GET", "/v1/batches/"+b.ID+"/timeline?points=0", nil).Status)
	r := do(tenant, "POST", "/v1/batches/"+b.ID+"/retry-requests", map[string]any{"request_ids": []any{errs[0]["id"]}})
	require.Equal(t, 200, r.Status, string(r.Body))
	b = waitBatch(t, c, b.ID, time.Minute)
	require.EqualValues(t, 1, b.RequestCounts.Failed)
	require.Equal(t, 200, do(tenant, "POST", "/v1/batches/"+b.ID+"/retry", nil).Status)
	b = waitBatch(t, c, b.ID, time.Minute)
	require.EqualValues(t, 0, b.RequestCounts.Failed)
	require.Equal(t, 400, do(tenant, "POST", "/v1/batches/"+b.ID+"/retry", nil).Status, "nothing left to retry")

	// A batch that cannot run (its model's limit is 0): results and output while it runs, then
	// cancelling a line, the batch, and deleting it.
	pf := uploadSDK(t, c, lines(chatLine("p1", "parked"), chatLine("p2", "parked")))
	pb := newBatch(t, c, pf.ID)
	require.Eventually(t, func() bool {
		got, err := c.Batches.Get(ctx, pb.ID)
		return err == nil && got.Status == openai.BatchStatusInProgress && got.RequestCounts.Total == 2
	}, time.Minute, 20*time.Millisecond)
	res := do(tenant, "GET", "/v1/batches/"+pb.ID+"/results", nil)
	require.Equal(t, 200, res.Status)
	require.Equal(t, "true", res.Header.Get("X-Incomplete"))
	first := strings.SplitN(string(res.Body), "\n", 2)[0]
	id := first[strings.Index(first, `"id":"`)+6:]
	id = id[:strings.Index(id, `"`)]
	running := do(tenant, "GET", "/v1/batches/"+pb.ID, nil).json(t)
	require.Equal(t, 200, do(tenant, "GET", "/v1/files/"+running["partial_output_file_id"].(string)+"/content", nil).Status)
	r = do(tenant, "POST", "/v1/batches/"+pb.ID+"/requests/cancel", map[string]any{"request_ids": []string{id, "batch_req_00000000000000000000000000000000"}})
	require.Equal(t, 200, r.Status, string(r.Body))
	r = do(tenant, "POST", "/v1/batches/"+pb.ID+"/extend", map[string]any{"completion_window": "48h"})
	require.Equal(t, 200, r.Status, string(r.Body))
	require.Equal(t, 400, do(tenant, "POST", "/v1/batches/"+pb.ID+"/rerun", nil).Status, "still running")
	_, err = c.Batches.Cancel(ctx, pb.ID)
	require.NoError(t, err)
	pb = waitBatch(t, c, pb.ID, time.Minute)
	r = do(tenant, "POST", "/v1/batches/"+pb.ID+"/rerun", nil)
	require.Equal(t, 200, r.Status, string(r.Body))
	require.Equal(t, 400, do(tenant, "POST", "/v1/batches/"+pb.ID+"/extend", map[string]any{"completion_window": "48h"}).Status, "ended")
	require.Equal(t, 200, do(tenant, "DELETE", "/v1/batches/"+pb.ID, nil).Status)

	// Anthropic's Message Batches: one that runs to its end, one that cannot run (parked) and is
	// cancelled; list, results, delete, and errors in Anthropic's envelope.
	msg := func(id, model string, extra ...any) map[string]any {
		p := map[string]any{"model": model, "max_tokens": 8, "messages": []any{map[string]any{"role": "user", "content": "hi"}}}
		for i := 0; i+1 < len(extra); i += 2 {
			p[extra[i].(string)] = extra[i+1]
		}
		return map[string]any{"custom_id": id, "params": p}
	}
	mr := do("", "POST", "/v1/messages/batches", map[string]any{"requests": []any{msg("m-ok", stack.MessagesModel),
		msg("m-bad", stack.MessagesModel, "mock_status", 400)}}, "X-Api-Key", tenant)
	require.Equal(t, 200, mr.Status, string(mr.Body))
	mid := mr.json(t)["id"].(string)
	require.Eventually(t, func() bool {
		return do(tenant, "GET", "/v1/messages/batches/"+mid, nil).json(t)["processing_status"] == "ended"
	}, time.Minute, 20*time.Millisecond)
	require.Equal(t, 200, do(tenant, "GET", "/v1/messages/batches/"+mid+"/results", nil).Status)
	mp := do(tenant, "POST", "/v1/messages/batches", map[string]any{"requests": []any{msg("p", "parked")}})
	require.Equal(t, 200, mp.Status, string(mp.Body))
	pid := mp.json(t)["id"].(string)
	require.Equal(t, 400, do(tenant, "GET", "/v1/messages/batches/"+pid+"/results", nil).Status, "not ended")
	require.Equal(t, 400, do(tenant, "DELETE", "/v1/messages/batches/"+pid, nil).Status, "not ended")
	require.Equal(t, 200, do(tenant, "GET", "/v1/messages/batches?limit=1", nil).Status)
	require.Equal(t, 200, do(tenant, "GET", "/v1/messages/batches?after_id="+pid, nil).Status)
	require.Equal(t, 200, do(tenant, "POST", "/v1/messages/batches/"+pid+"/cancel", nil).Status)
	require.Eventually(t, func() bool {
		return do(tenant, "GET", "/v1/messages/batches/"+pid, nil).json(t)["processing_status"] == "ended"
	}, time.Minute, 20*time.Millisecond)
	require.Equal(t, 200, do(tenant, "GET", "/v1/messages/batches/"+pid+"/results", nil).Status)
	require.Equal(t, 200, do(tenant, "DELETE", "/v1/messages/batches/"+pid, nil).Status)
	require.Equal(t, 404, do(tenant, "GET", "/v1/messages/batches/"+pid, nil).Status)
	require.Equal(t, 400, do(tenant, "POST", "/v1/messages/batches", map[string]any{"requests": []any{}}).Status)
	require.Equal(t, 401, do("", "GET", "/v1/messages/batches", nil).Status)

	// The Uploads API through the SDK.
	content := lines(chatLine("u", "mock-chat"))
	up, err := c.Uploads.New(ctx, openai.UploadNewParams{Bytes: int64(len(content)), Filename: "u.jsonl", MimeType: "application/jsonl",
		Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	part, err := c.Uploads.Parts.New(ctx, up.ID, openai.UploadPartNewParams{Data: bytes.NewReader(content)})
	require.NoError(t, err)
	_, err = c.Uploads.Complete(ctx, up.ID, openai.UploadCompleteParams{PartIDs: []string{part.ID}})
	require.NoError(t, err)
	up2, err := c.Uploads.New(ctx, openai.UploadNewParams{Bytes: 10, Filename: "v.jsonl", MimeType: "application/jsonl", Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	_, err = c.Uploads.Cancel(ctx, up2.ID)
	require.NoError(t, err)

	// The presigned path, with an Idempotency-Key replayed and misused.
	pending := do(tenant, "POST", "/v1/files", map[string]any{"filename": "big.jsonl", "purpose": "batch", "bytes": len(content)},
		"Idempotency-Key", "k1")
	require.Equal(t, 200, pending.Status, string(pending.Body))
	pm := pending.json(t)
	put, err := http.NewRequest(http.MethodPut, pm["upload_url"].(string), bytes.NewReader(content))
	require.NoError(t, err)
	putResp, err := hc.Do(put)
	require.NoError(t, err)
	putResp.Body.Close()
	require.Equal(t, 200, putResp.StatusCode)
	require.Equal(t, 200, do(tenant, "POST", "/v1/files/"+pm["id"].(string)+"/complete", nil).Status)
	require.Equal(t, 200, do(tenant, "POST", "/v1/files", map[string]any{"filename": "big.jsonl", "purpose": "batch", "bytes": len(content)},
		"Idempotency-Key", "k1").Status, "a replay of the completed file")
	require.Equal(t, 422, do(tenant, "POST", "/v1/files", map[string]any{"filename": "other.jsonl", "purpose": "batch", "bytes": 5},
		"Idempotency-Key", "k1").Status)
	require.Equal(t, 200, do(tenant, "POST", "/v1/files", map[string]any{"purpose": "batch", "bytes": 7}).Status, "a pending file")
	require.NoError(t, ignoreBody(c.Files.Delete(ctx, pm["id"].(string))))

	// Errors.
	require.Equal(t, 401, do("", "GET", "/v1/files", nil).Status)
	require.Equal(t, 404, do(tenant, "GET", "/v1/files/file-AAAAAAAAAAAAAAAAAAAAAAAA", nil).Status)
	require.Equal(t, 400, do(tenant, "GET", "/v1/batches/batch_x", nil).Status)
	require.Equal(t, 400, do(tenant, "GET", "/v1/batches?limit=1000", nil).Status)
	require.Equal(t, 413, do(tenant, "POST", "/v1/files", map[string]any{"purpose": "batch", "bytes": 300_000_000}).Status)
	require.Equal(t, 400, do(tenant, "POST", "/v1/batches", `{"input_file_id":"`+f.ID+`","nope":1}`).Status)
	bad := do(tenant, "POST", "/v1/files", nil, "Content-Type", "multipart/form-data; boundary=x")
	require.Equal(t, 400, bad.Status)
	rej, ct := multipartFile([]byte("not json\n{}\n"), "bad.jsonl", "batch")
	require.Equal(t, 400, callVia(t, hc, st, tenant, "POST", "/v1/files", rej, ct).Status, "a rejected file lists its bad lines")
	require.Equal(t, 404, do(tenant, "GET", "/v1/admin/models", nil).Status, "a tenant key on an admin route")

	// Admin.
	require.Equal(t, 200, do(admin, "GET", "/v1/admin/models", nil).Status)
	r = do(admin, "PUT", "/v1/admin/models/extra", map[string]any{"base_url": st.UpstreamURL, "credential_ref": "", "concurrency_limit": 2,
		"escalation_model": "mock-chat", "escalation_threshold_secs": 60})
	require.Equal(t, 200, r.Status, string(r.Body))
	require.Equal(t, 400, do(admin, "PUT", "/v1/admin/models/extra", map[string]any{"base_url": "ftp://x", "concurrency_limit": 1}).Status)
	require.Equal(t, 200, do(admin, "DELETE", "/v1/admin/models/extra", nil).Status)
	require.Equal(t, 200, do(admin, "GET", "/v1/admin/tenants", nil).Status)
	nt := do(admin, "POST", "/v1/admin/tenants", map[string]any{"name": "other"})
	require.Equal(t, 200, nt.Status)
	tid := nt.json(t)["id"].(string)
	require.Equal(t, 200, do(admin, "POST", "/v1/admin/tenants/"+tid, map[string]any{"coalesce_default": true}).Status)
	require.Equal(t, 200, do(admin, "GET", "/v1/admin/tenants/"+tid+"/keys", nil).Status, "no keys yet")
	k := do(admin, "POST", "/v1/admin/tenants/"+tid+"/keys", map[string]any{"name": "ci"})
	require.Equal(t, 200, k.Status)
	require.Equal(t, 200, do(admin, "GET", "/v1/admin/tenants/"+tid+"/keys", nil).Status)
	require.Equal(t, 200, do(admin, "DELETE", fmt.Sprintf("/v1/admin/keys/%d", int64(k.json(t)["id"].(float64))), nil).Status)
	require.Equal(t, 200, do(admin, "GET", "/v1/admin/workers", nil).Status)
	require.Equal(t, 200, do(admin, "GET", "/v1/admin/pending?windows=1h,7d", nil).Status)
	require.Equal(t, 200, do(admin, "GET", "/v1/admin/pending?windows=1h&state=pending,claimed&model=mock-chat", nil).Status)
	require.Equal(t, 400, do(admin, "GET", "/v1/admin/pending?state=completed", nil).Status)
	require.Equal(t, 400, do(admin, "GET", "/v1/admin/pending?windows=forever", nil).Status)

	// Webhooks: register (the secret shown once), list, the deliveries log, delete; a private
	// address is refused.
	wh := do(tenant, "POST", "/v1/webhooks", map[string]any{"url": "https://example.com/hook", "event_types": []string{"batch.completed"}})
	require.Equal(t, 200, wh.Status, "%s", wh.Body)
	whID, _ := wh.json(t)["id"].(string)
	require.Equal(t, 200, do(tenant, "GET", "/v1/webhooks", nil).Status)
	require.Equal(t, 200, do(tenant, "GET", "/v1/webhooks/"+whID+"/deliveries?limit=5", nil).Status)
	require.Equal(t, 400, do(tenant, "POST", "/v1/webhooks", map[string]any{"url": "https://169.254.169.254/", "event_types": []string{"batch.completed"}}).Status)
	require.Equal(t, 200, do(tenant, "DELETE", "/v1/webhooks/"+whID, nil).Status)
	require.Equal(t, 404, do(tenant, "DELETE", "/v1/webhooks/"+whID, nil).Status)

	// Check what was recorded.
	spec, err := openapitest.Load()
	require.NoError(t, err)
	api, err := url.Parse(st.APIURL)
	require.NoError(t, err)
	succeeded := map[string]bool{}
	statuses := map[int]int{}
	n := 0
	for _, x := range rec.Exchanges() {
		if x.Host != api.Host {
			continue // S3
		}
		n++
		statuses[x.Status]++
		op, err := spec.Check(x.Method, x.Path, x.Status, x.Header, x.Body)
		assert.NoError(t, err)
		if x.Status < 400 {
			succeeded[op] = true
		}
	}
	for _, op := range spec.Operations() {
		assert.True(t, succeeded[op], "no success of %s was recorded", op)
	}
	t.Logf("%d responses checked, by status %v", n, statuses)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func ignoreBody[T any](_ T, err error) error { return err }

package stack_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
	"github.com/fusillade/fusillade/shared/httpapi"
)

// routePath fills a route pattern's wildcards, each with the id of the collection before it.
func routePath(pattern string, ids map[string]string) string {
	return fillPath(pattern, func(collection string) string { return ids[collection] })
}

// Every route but /healthz answers 401 without a key, with a malformed or unknown key and with a
// revoked key; admin routes answer a tenant key exactly as a missing route does.
func TestEveryRouteAuthenticates(t *testing.T) {
	st := startStack(t, stack.Options{})
	revoked := callJSON(t, st, st.AdminKey, "POST", "/v1/admin/tenants/"+st.TenantID+"/keys", map[string]any{"name": "old"}).json(t)
	require.Equal(t, 200, callJSON(t, st, st.AdminKey, "DELETE", fmt.Sprintf("/v1/admin/keys/%d", int64(revoked["id"].(float64))), nil).Status)
	ids := map[string]string{"files": "file-x", "batches": "batch_x", "uploads": "upload_x", "models": "m", "tenants": st.TenantID, "keys": "1", "webhooks": "we_x",
		"messages/batches": "msgbatch_x"}

	routes := httpapi.Routes()
	require.Greater(t, len(routes), 20)
	for _, rt := range routes {
		path := routePath(rt.Pattern, ids)
		name := rt.Method + " " + rt.Pattern
		if rt.Public {
			require.Equal(t, 200, call(t, st, "", rt.Method, path, nil, "").Status, name)
			continue
		}
		anthropic := strings.HasPrefix(rt.Pattern, "/v1/messages/")
		for _, key := range []string{"", "not-a-key", "fsk_0000000000000000000000000000000000000000", revoked["key"].(string)} {
			r := call(t, st, key, rt.Method, path, strings.NewReader("{}"), "application/json")
			require.Equal(t, 401, r.Status, "%s with key %q", name, key)
			if anthropic {
				require.Equal(t, "authentication_error", r.anthropicErrorOf(t)["type"], name)
				// Anthropic's routes take the key as x-api-key too, with the same checks.
				r = call(t, st, "", rt.Method, path, strings.NewReader("{}"), "application/json", "X-Api-Key", key)
				require.Equal(t, 401, r.Status, "%s with x-api-key %q", name, key)
				require.Equal(t, "authentication_error", r.anthropicErrorOf(t)["type"], name)
				continue
			}
			e := r.errorOf(t)
			require.Equal(t, "invalid_api_key", e["code"], name)
			require.Equal(t, "invalid_request_error", e["type"], name)
		}
		if !anthropic {
			// x-api-key is Anthropic's header: the other routes ignore it, a valid key included.
			r := call(t, st, "", rt.Method, path, strings.NewReader("{}"), "application/json", "X-Api-Key", st.APIKey)
			require.Equal(t, 401, r.Status, "%s with a valid x-api-key", name)
		}
		if rt.Admin {
			r := call(t, st, st.APIKey, rt.Method, path, strings.NewReader("{}"), "application/json")
			require.Equal(t, 404, r.Status, name)
			require.JSONEq(t, fmt.Sprintf(`{"error":{"message":"Unknown request URL: %s %s.","type":"invalid_request_error","param":null,"code":null}}`,
				rt.Method, path), string(r.Body), name)
		}
	}
}

// Tenant B sees none of tenant A's objects: every route that takes an id answers B about A's
// object exactly as about an id that does not exist, and changes nothing.
func TestAnotherTenantsObjectsAnswerLikeMissingOnes(t *testing.T) {
	st := startStack(t, stack.Options{})
	ctx := context.Background()
	a := client(st, st.APIKey)
	f := uploadSDK(t, a, jsonlFile(3, "mock-chat"))
	done := waitBatch(t, a, newBatch(t, a, f.ID).ID, time.Minute)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	up, err := a.Uploads.New(ctx, openai.UploadNewParams{Bytes: 10, Filename: "u.jsonl", MimeType: "application/jsonl", Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	bKey, err := st.NewTenant(ctx, "b")
	require.NoError(t, err)

	hook := callJSON(t, st, st.APIKey, "POST", "/v1/webhooks", map[string]any{"url": "https://hooks.example.com/in", "event_types": []string{"batch.completed"}})
	require.Equal(t, 200, hook.Status, "%s", hook.Body)
	theirs := map[string]string{"files": f.ID, "batches": done.ID, "uploads": up.ID, "webhooks": hook.json(t)["id"].(string),
		"messages/batches": anthropicBatch(t, st)}
	missing := map[string]string{"files": "file-AAAAAAAAAAAAAAAAAAAAAAAA", "batches": "batch_00000000000000000000000000000000",
		"uploads": "upload_AAAAAAAAAAAAAAAAAAAAAAAA", "webhooks": "we_AAAAAAAAAAAAAAAAAAAAAAAA",
		"messages/batches": "msgbatch_00000000000000000000000000000000"}
	checked := 0
	for _, rt := range httpapi.Routes() {
		if rt.Public || rt.Admin || !strings.Contains(rt.Pattern, "{id}") {
			continue
		}
		segs := strings.Split(rt.Pattern, "/")
		kind := collectionOf(segs, slices.IndexFunc(segs, func(s string) bool { return strings.HasPrefix(s, "{") }))
		name := rt.Method + " " + rt.Pattern
		got := call(t, st, bKey, rt.Method, routePath(rt.Pattern, theirs), strings.NewReader("{}"), "application/json")
		want := call(t, st, bKey, rt.Method, routePath(rt.Pattern, missing), strings.NewReader("{}"), "application/json")
		require.Equal(t, want.Status, got.Status, name)
		require.Equal(t, string(want.Body), strings.ReplaceAll(string(got.Body), theirs[kind], missing[kind]), name)
		if rt.Method == "GET" {
			require.Equal(t, 404, got.Status, "%s: %s", name, got.Body)
		}
		checked++
	}
	require.GreaterOrEqual(t, checked, 10)

	// Output files, and creating a batch from A's file.
	r := call(t, st, bKey, "GET", "/v1/files/"+done.OutputFileID+"/content", nil, "")
	require.Equal(t, 404, r.Status)
	r = callJSON(t, st, bKey, "POST", "/v1/batches", map[string]any{"input_file_id": f.ID, "endpoint": "/v1/chat/completions", "completion_window": "24h"})
	require.Equal(t, 404, r.Status)
	require.Equal(t, "No such File object: "+f.ID, r.errorOf(t)["message"])

	// A's objects are intact.
	_, err = a.Files.Get(ctx, f.ID)
	require.NoError(t, err)
	got, err := a.Batches.Get(ctx, done.ID)
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusCompleted, got.Status)
	require.Len(t, readLines(t, a, done.OutputFileID), 3)
}

// presign starts the large-file path and PUTs content to the URL it returns.
func presign(t *testing.T, st *stack.Stack, key string, declared int64, content io.Reader, size int64) string {
	t.Helper()
	r := callJSON(t, st, key, "POST", "/v1/files", map[string]any{"filename": "big.jsonl", "purpose": "batch", "bytes": declared})
	require.Equal(t, 200, r.Status, string(r.Body))
	m := r.json(t)
	require.Equal(t, "uploaded", m["status"])
	if content != nil {
		req, err := http.NewRequest(http.MethodPut, m["upload_url"].(string), content)
		require.NoError(t, err)
		req.ContentLength = size
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
	}
	return m["id"].(string)
}

// Every validation rule, through the API: status, code, line and message; nothing partial kept.
func TestEveryValidationRuleThroughTheAPI(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "m", Limit: 0}}})
	line := func(id, method, url, body string) string {
		return fmt.Sprintf(`{"custom_id":%s,"method":%q,"url":%q,"body":%s}`, id, method, url, body)
	}
	ok := func(id string) string {
		return line(fmt.Sprintf("%q", id), "POST", "/v1/chat/completions", `{"model":"m"}`)
	}
	withURL := func(u string) []byte { return lines(ok("a"), line(`"b"`, "POST", u, `{"model":"m"}`)) }

	cases := []struct {
		name    string
		content []byte
		code    string
		line    int
		msg     string
	}{
		{"malformed JSON on line 3", lines(ok("a"), ok("b"), `{"custom_id":"c",`), "invalid_json_line", 3, "line 3: this line is not parseable as valid JSON"},
		{"blank lines count", []byte(ok("a") + "\n\n" + "nope\n"), "invalid_json_line", 3, "line 3:"},
		{"not an object", lines(`[1,2]`), "invalid_json_line", 1, "expected a JSON object"},
		{"invalid UTF-8", []byte(ok("a") + "\n" + `{"custom_id":"b` + "\xff" + `"}` + "\n"), "invalid_utf8", 2, "offset"},
		{"NUL byte", []byte(ok("a") + "\n" + "{\x00}\n"), "invalid_json_line", 2, "line 2:"},
		{"missing custom_id", lines(line("null", "POST", "/v1/chat/completions", `{"model":"m"}`)), "missing_custom_id", 1, "custom_id is missing"},
		{"empty custom_id", lines(line(`""`, "POST", "/v1/chat/completions", `{"model":"m"}`)), "missing_custom_id", 1, "must not be empty"},
		{"duplicate custom_id", lines(ok("a"), ok("b"), ok("a")), "duplicate_custom_id", 3, "first seen on line 1"},
		{"custom_id over 64", lines(ok(strings.Repeat("x", 65))), "invalid_custom_id", 1, "the limit is 64"},
		{"custom_id control char", lines(line(`"a\u0001b"`, "POST", "/v1/chat/completions", `{"model":"m"}`)), "invalid_custom_id", 1, "printable ASCII"},
		{"custom_id newline", lines(line(`"a\nb"`, "POST", "/v1/chat/completions", `{"model":"m"}`)), "invalid_custom_id", 1, "printable ASCII"},
		{"custom_id non-ASCII", lines(ok("café")), "invalid_custom_id", 1, "printable ASCII"},
		{"custom_id edge space", lines(ok(" a")), "invalid_custom_id", 1, "must not start or end with a space"},
		{"method GET", lines(line(`"a"`, "GET", "/v1/chat/completions", `{"model":"m"}`)), "invalid_method", 1, `method must be "POST"`},
		{"url metadata host", withURL("http://169.254.169.254/latest/meta-data"), "invalid_url", 2, "is not supported"},
		{"url absolute", withURL("https://api.openai.com/v1/chat/completions"), "invalid_url", 2, "is not supported"},
		{"url scheme-relative", withURL("//evil.com/v1/chat/completions"), "invalid_url", 2, "is not supported"},
		{"url dot segments", withURL("/v1/chat/completions/../../admin"), "invalid_url", 2, "is not supported"},
		{"url query", withURL("/v1/chat/completions?x=1"), "invalid_url", 2, "is not supported"},
		{"url encoded", withURL("%2Fv1%2Fchat%2Fcompletions"), "invalid_url", 2, "is not supported"},
		{"url trailing space", withURL("/v1/chat/completions "), "invalid_url", 2, "is not supported"},
		{"url upper case", withURL("/V1/CHAT/COMPLETIONS"), "invalid_url", 2, "is not supported"},
		{"body not an object", lines(line(`"a"`, "POST", "/v1/chat/completions", `"hi"`)), "invalid_body", 1, "body must be a JSON object"},
		{"model missing", lines(line(`"a"`, "POST", "/v1/chat/completions", `{"messages":[]}`)), "missing_model", 1, "body.model is missing"},
		{"model not a string", lines(line(`"a"`, "POST", "/v1/chat/completions", `{"model":7}`)), "missing_model", 1, "must be a string"},
		{"model not configured", lines(line(`"a"`, "POST", "/v1/chat/completions", `{"model":"gpt-9"}`)), "model_not_found", 1, `"gpt-9" does not exist`},
		{"stream true", lines(line(`"a"`, "POST", "/v1/chat/completions", `{"model":"m","stream":true}`)), "stream_not_supported", 1, "not supported in batches"},
		{"stream as string", lines(line(`"a"`, "POST", "/v1/chat/completions", `{"model":"m","stream":"true"}`)), "stream_not_supported", 1, "not supported"},
		{"empty file", []byte{}, "empty_file", 0, "no requests"},
		{"blank lines only", []byte("\n  \r\n\n"), "empty_file", 0, "no requests"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := uploadRaw(t, st, st.APIKey, tc.content)
			require.Equal(t, 400, r.Status, string(r.Body))
			e := r.errorOf(t)
			require.Equal(t, tc.code, e["code"])
			require.Contains(t, e["message"], tc.msg)
			if tc.line > 0 {
				require.EqualValues(t, tc.line, e["line"])
				require.True(t, strings.HasPrefix(e["message"].(string), fmt.Sprintf("line %d: ", tc.line)))
			} else {
				require.NotContains(t, e, "line")
			}
			require.Equal(t, "false", r.Header.Get("x-should-retry"))
		})
	}
	require.Empty(t, callJSON(t, st, st.APIKey, "GET", "/v1/files", nil).json(t)["data"], "no rejected file is kept")

	// Accepted shapes: CRLF, no final newline, a BOM, blank lines, a 100 KiB line (not truncated).
	big := line(`"big"`, "POST", "/v1/chat/completions", `{"model":"m","pad":"`+strings.Repeat("y", 100<<10)+`"}`)
	for name, content := range map[string][]byte{
		"crlf":            []byte(ok("a") + "\r\n" + ok("b") + "\r\n"),
		"no final":        []byte(ok("a") + "\n" + ok("b")),
		"bom":             append([]byte("\xEF\xBB\xBF"), lines(ok("a"), ok("b"))...),
		"blank lines":     []byte("\n" + ok("a") + "\n\n   \n" + ok("b") + "\n\n"),
		"100 KiB line":    lines(ok("a"), big),
		"unknown keys ok": lines(ok("a"), `{"custom_id":"b","method":"post","url":"/v1/chat/completions","body":{"model":"m"},"extra":1}`),
	} {
		r := uploadRaw(t, st, st.APIKey, content)
		require.Equal(t, 200, r.Status, "%s: %s", name, r.Body)
		id := r.json(t)["id"].(string)
		est := callJSON(t, st, st.APIKey, "GET", "/v1/files/"+id+"/cost-estimate", nil).json(t)
		require.EqualValues(t, 2, est["total_requests"], name)
		if name == "100 KiB line" {
			require.Greater(t, est["total_body_bytes"], float64(100<<10))
		}
	}

	// Form fields.
	for _, tc := range []struct {
		purpose, param string
	}{{"", "purpose"}, {"fine-tune", "purpose"}} {
		body, ct := multipartFile(lines(ok("a")), "x.jsonl", tc.purpose)
		r := call(t, st, st.APIKey, "POST", "/v1/files", body, ct)
		require.Equal(t, 400, r.Status)
		require.Equal(t, tc.param, r.errorOf(t)["param"])
	}
	r := call(t, st, st.APIKey, "POST", "/v1/files", strings.NewReader("purpose=batch"), "application/x-www-form-urlencoded")
	require.Equal(t, 400, r.Status)

	// Direct uploads over the cap: 413 naming the large-file paths.
	tooBig := jsonlFile(45_000, "m")
	require.Greater(t, len(tooBig), 4_600_000)
	r = uploadRaw(t, st, st.APIKey, tooBig)
	require.Equal(t, 413, r.Status)
	require.Contains(t, r.errorOf(t)["message"], "presigned upload_url")
	require.Contains(t, r.errorOf(t)["message"], "/v1/uploads")
	// The same without Content-Length (streamed as openai-node does).
	body, ct := multipartFile(tooBig, "x.jsonl", "batch")
	req, _ := http.NewRequest("POST", st.APIURL+"/v1/files", io.MultiReader(body))
	req.Header.Set("Authorization", "Bearer "+st.APIKey)
	req.Header.Set("Content-Type", ct)
	resp, err := http.DefaultClient.Do(req)
	if err == nil { // the server may close the connection before the client finishes sending
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, 413, resp.StatusCode, string(b))
	}
	require.Len(t, callJSON(t, st, st.APIKey, "GET", "/v1/files", nil).json(t)["data"], 6, "only the accepted files are kept")
}

// The rules that need files larger than a direct upload, through the presigned path; and the
// rules of batch creation.
func TestLargeFileRulesAndBatchCreationRules(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "m", Limit: 0}}})
	complete := func(id string) apiResp {
		return call(t, st, st.APIKey, "POST", "/v1/files/"+id+"/complete", nil, "")
	}
	gen := func(n int, f func(i int) string) []byte {
		var b bytes.Buffer
		for i := range n {
			b.WriteString(f(i))
			b.WriteByte('\n')
		}
		return b.Bytes()
	}
	for _, tc := range []struct {
		name    string
		content []byte
		code    string
		line    int
	}{
		{"body over 10 MiB", lines(`{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","p":"` + strings.Repeat("z", 10<<20) + `"}}`), "body_too_large", 1},
		{"line over 16 MiB", lines(chatLine("a", "m"), `{"custom_id":"b","pad":"`+strings.Repeat("z", 17<<20)+`"}`), "line_too_large", 2},
		{"50,001 lines", gen(50_001, func(i int) string { return chatLine(fmt.Sprint(i), "m") }), "too_many_lines", 50_001},
	} {
		id := presign(t, st, st.APIKey, int64(len(tc.content)), bytes.NewReader(tc.content), int64(len(tc.content)))
		r := complete(id)
		require.Equal(t, 400, r.Status, tc.name)
		e := r.errorOf(t)
		require.Equal(t, tc.code, e["code"], tc.name)
		require.EqualValues(t, tc.line, e["line"], tc.name)
		require.Equal(t, 404, callJSON(t, st, st.APIKey, "GET", "/v1/files/"+id, nil).Status, "%s: a rejected file is gone", tc.name)
	}

	r := callJSON(t, st, st.APIKey, "POST", "/v1/files", map[string]any{"filename": "x", "purpose": "batch", "bytes": 200_000_001})
	require.Equal(t, 413, r.Status)
	require.Equal(t, "file_too_large", r.errorOf(t)["code"])
	require.Equal(t, 400, callJSON(t, st, st.APIKey, "POST", "/v1/files", map[string]any{"filename": "x", "purpose": "batch", "bytes": 0}).Status)
	require.Equal(t, 400, callJSON(t, st, st.APIKey, "POST", "/v1/files", map[string]any{"filename": "x", "purpose": "batch", "bytes": 5, "status": "processed"}).Status)

	// Nothing uploaded yet; then fewer bytes than announced.
	content := lines(chatLine("a", "m"))
	id := presign(t, st, st.APIKey, int64(len(content))+5, nil, 0)
	r = complete(id)
	require.Equal(t, 400, r.Status)
	require.Equal(t, "upload_missing", r.errorOf(t)["code"])
	pending := map[string]any{"input_file_id": id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
	r = callJSON(t, st, st.APIKey, "POST", "/v1/batches", pending)
	require.Equal(t, 400, r.Status, "a pending file cannot make a batch")
	require.Equal(t, "file_not_ready", r.errorOf(t)["code"])
	require.Equal(t, 400, call(t, st, st.APIKey, "GET", "/v1/files/"+id+"/content", nil, "").Status)
	id = presign(t, st, st.APIKey, int64(len(content))+5, bytes.NewReader(content), int64(len(content)))
	r = complete(id)
	require.Equal(t, 400, r.Status)
	require.Equal(t, "size_mismatch", r.errorOf(t)["code"])

	// A good one completes once; completing again returns it.
	id = presign(t, st, st.APIKey, int64(len(content)), bytes.NewReader(content), int64(len(content)))
	r = complete(id)
	require.Equal(t, 200, r.Status, string(r.Body))
	require.Equal(t, "processed", r.json(t)["status"])
	require.Equal(t, 200, complete(id).Status)

	// Batch creation rules.
	meta := map[string]string{}
	for i := range 17 {
		meta[fmt.Sprint(i)] = "v"
	}
	base := func(kv ...any) map[string]any {
		m := map[string]any{"input_file_id": id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		req    map[string]any
		status int
		param  string
	}{
		{"no input_file_id", base("input_file_id", nil), 400, "input_file_id"},
		{"no endpoint", base("endpoint", nil), 400, "endpoint"},
		{"bad endpoint", base("endpoint", "/v1/images"), 400, "endpoint"},
		{"no window", base("completion_window", nil), 400, "completion_window"},
		{"bad window", base("completion_window", "3d"), 400, "completion_window"},
		{"17 metadata keys", base("metadata", meta), 400, "metadata"},
		{"long metadata key", base("metadata", map[string]string{strings.Repeat("k", 65): "v"}), 400, "metadata"},
		{"long metadata value", base("metadata", map[string]string{"k": strings.Repeat("v", 513)}), 400, "metadata"},
		{"server-owned field", base("output_file_id", "file-x"), 400, "output_file_id"},
		{"wrong type", base("metadata", "x"), 400, "metadata"},
		{"missing file", base("input_file_id", "file-AAAAAAAAAAAAAAAAAAAAAAAA"), 404, "id"},
		{"malformed file id", base("input_file_id", "file-nope"), 400, "input_file_id"},
	} {
		r := callJSON(t, st, st.APIKey, "POST", "/v1/batches", tc.req)
		require.Equal(t, tc.status, r.Status, "%s: %s", tc.name, r.Body)
		require.Equal(t, tc.param, r.errorOf(t)["param"], tc.name)
	}
	require.Empty(t, callJSON(t, st, st.APIKey, "GET", "/v1/batches", nil).json(t)["data"])
}

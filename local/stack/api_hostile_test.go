package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
	"github.com/fusillade/fusillade/shared/httpapi"
)

// hostile are values no id, cursor or parameter should ever turn into a 5xx: a NUL byte, 50 kB,
// literal percent-encoding, SQL, invalid UTF-8.
var hostile = map[string]string{
	"nul":     "\x00",
	"50kB":    strings.Repeat("A", 50_000),
	"percent": "%00%2F%41",
	"sql":     "' OR '1'='1' --",
	"latin1":  "\xff\xfe",
}

// notText are the hostile values that are not text at all: every route must refuse them (400).
var notText = map[string]string{"nul": "\x00", "latin1": "\xff\xfe", "nul-in-word": "batch\x00x"}

// idPrefixes are the prefixes of the id kinds, so that a hostile value also gets past a naive
// prefix check.
var idPrefixes = map[string]string{"files": "file-", "batches": "batch_", "uploads": "upload_", "tenants": "tenant_", "keys": "1", "models": "m", "webhooks": "we_",
	"messages/batches": "msgbatch_"}

// fillPath puts values into a route pattern: each wildcard gets value(collection before it);
// Anthropic's message batches (/v1/messages/batches/{id}) are the collection "messages/batches".
func fillPath(pattern string, value func(collection string) string) string {
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			segs[i] = url.PathEscape(value(collectionOf(segs, i)))
		}
	}
	return strings.Join(segs, "/")
}

// collectionOf names the collection of the wildcard segs[i], as fillPath's maps key it.
func collectionOf(segs []string, i int) string {
	if i >= 2 && segs[i-2] == "messages" {
		return "messages/" + segs[i-1]
	}
	return segs[i-1]
}

// anthropicBatch creates a message batch (of one request for claude-mock) and returns its id.
func anthropicBatch(t *testing.T, st *stack.Stack) string {
	t.Helper()
	r := callJSON(t, st, st.APIKey, "POST", "/v1/messages/batches", hostileBodies("")["POST /v1/messages/batches"])
	require.Equal(t, 200, r.Status, "%s", r.Body)
	return r.json(t)["id"].(string)
}

// keyFor is the key that reaches a route's handler.
func keyFor(st *stack.Stack, admin bool) string {
	if admin {
		return st.AdminKey
	}
	return st.APIKey
}

// isClientError checks a 4xx answer in OpenAI's error envelope (Anthropic's on its routes).
func isClientError(t *testing.T, r apiResp, what string) {
	t.Helper()
	require.True(t, r.Status >= 400 && r.Status < 500, "%s: status %d, body %.300s", what, r.Status, r.Body)
	if strings.Contains(what, "/v1/messages/") {
		r.anthropicErrorOf(t)
		return
	}
	r.errorOf(t)
}

// bodies are valid JSON bodies of every POST and PUT route that takes one; nil marks a route
// that takes none (or a multipart one). A new POST or PUT route must be added here.
func hostileBodies(fileID string) map[string]map[string]any {
	ids := []any{"batch_req_00000000000000000000000000000000"}
	return map[string]map[string]any{
		"POST /v1/files":                        {"filename": "in.jsonl", "purpose": "batch", "bytes": 10, "expires_after": map[string]any{"anchor": "created_at", "seconds": 3600}},
		"POST /v1/files/{id}/complete":          nil,
		"POST /v1/files/{id}/validate":          {"endpoint": "/v1/chat/completions"},
		"POST /v1/uploads":                      {"filename": "in.jsonl", "mime_type": "application/jsonl", "purpose": "batch", "bytes": 10},
		"POST /v1/uploads/{id}/parts":           nil,
		"POST /v1/uploads/{id}/complete":        {"part_ids": []any{"part_AAAAAAAAAAAAAAAAAAAAAAAA"}, "md5": "x"},
		"POST /v1/uploads/{id}/cancel":          nil,
		"POST /v1/batches":                      {"input_file_id": fileID, "endpoint": "/v1/chat/completions", "completion_window": "24h", "metadata": map[string]any{"k": "v"}},
		"POST /v1/batches/{id}/cancel":          nil,
		"POST /v1/batches/{id}/requests/cancel": {"request_ids": ids},
		"POST /v1/batches/{id}/retry":           nil,
		"POST /v1/batches/{id}/retry-requests":  {"request_ids": ids},
		"POST /v1/batches/{id}/extend":          {"completion_window": "24h"},
		"POST /v1/batches/{id}/rerun":           {"completion_window": "24h", "metadata": map[string]any{"k": "v"}},
		"PUT /v1/admin/models/{name}":           {"base_url": "http://127.0.0.1:1", "credential_ref": "", "concurrency_limit": 1, "escalation_model": ""},
		"POST /v1/admin/tenants":                {"name": "t"},
		"POST /v1/admin/tenants/{id}/keys":      {"name": "k"},
		"POST /v1/admin/tenants/{id}":           {"coalesce_default": false},
		"POST /v1/webhooks":                     {"url": "https://hooks.example.com/in", "event_types": []any{"batch.completed"}},
		"POST /v1/messages/batches": {"requests": []any{map[string]any{"custom_id": "a-1", "params": map[string]any{
			"model": stack.MessagesModel, "max_tokens": 8, "messages": []any{map[string]any{"role": "user", "content": "hi"}}}}}},
		"POST /v1/messages/batches/{id}/cancel": nil,
	}
}

// withNUL returns one variant of v per string in it (values and map keys), with a NUL in that
// string, each labelled with where it is.
func withNUL(v any, at string) map[string]any {
	out := map[string]any{}
	switch x := v.(type) {
	case string:
		out[at] = x + "\x00"
	case map[string]any:
		for k, e := range x {
			for where, ev := range withNUL(e, at+"."+k) {
				m := clone(x)
				m[k] = ev
				out[where] = m
			}
			m := clone(x)
			delete(m, k)
			m[k+"\x00"] = e
			out[at+".(key "+k+")"] = m
		}
	case []any:
		for i, e := range x {
			for where, ev := range withNUL(e, fmt.Sprintf("%s[%d]", at, i)) {
				s := append([]any(nil), x...)
				s[i] = ev
				out[where] = s
			}
		}
	}
	return out
}

func clone(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Every route of httpapi.Routes() answers hostile ids, cursors, query parameters and JSON
// strings with a 4xx OpenAI error, never a 5xx: a malformed id or a value that is not text is a
// 400, whatever route it reaches.
func TestHostileInputNeverAnswers5xx(t *testing.T) {
	st := startStack(t, stack.Options{})
	ctx := context.Background()
	c := client(st, st.APIKey)
	f := uploadSDK(t, c, lines(chatLine("a", "mock-chat")))
	done := waitBatch(t, c, newBatch(t, c, f.ID).ID, time.Minute)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	up, err := c.Uploads.New(ctx, openai.UploadNewParams{Bytes: 10, Filename: "u.jsonl", MimeType: "application/jsonl", Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	spare := callJSON(t, st, st.AdminKey, "POST", "/v1/admin/tenants/"+st.TenantID+"/keys", map[string]any{"name": "spare"}).json(t)
	hook := callJSON(t, st, st.APIKey, "POST", "/v1/webhooks", hostileBodies(f.ID)["POST /v1/webhooks"])
	require.Equal(t, 200, hook.Status, "%s", hook.Body)
	real := map[string]string{"files": f.ID, "batches": done.ID, "uploads": up.ID, "tenants": st.TenantID,
		"keys": fmt.Sprint(int64(spare["id"].(float64))), "models": "mock-chat", "webhooks": hook.json(t)["id"].(string),
		"messages/batches": anthropicBatch(t, st)}
	routes := httpapi.Routes()
	bodies := hostileBodies(f.ID)

	// Path ids: every wildcard of every route, bare and behind its kind's prefix, is a 400.
	for _, rt := range routes {
		if rt.Public || !strings.Contains(rt.Pattern, "{") {
			continue
		}
		for name, v := range hostile {
			for _, prefixed := range []bool{false, true} {
				path := fillPath(rt.Pattern, func(coll string) string {
					if prefixed {
						return idPrefixes[coll] + v
					}
					return v
				})
				what := fmt.Sprintf("%s %s with a %s id (prefixed %v)", rt.Method, rt.Pattern, name, prefixed)
				r := call(t, st, keyFor(st, rt.Admin), rt.Method, path, strings.NewReader("{}"), "application/json")
				require.Equal(t, 400, r.Status, "%s: %.300s", what, r.Body)
				isClientError(t, r, what)
			}
		}
	}

	// Query parameters, on every route with real ids: text that is not text is a 400 wherever it
	// goes; anything else may be accepted, or refused with a 4xx. Only GET routes take the
	// accepted values (the others would act on the real objects).
	params := []string{"after", "limit", "order", "purpose", "search", "status", "created_after", "created_before",
		"active_first", "offset", "windows"}
	for _, rt := range routes {
		if rt.Public {
			continue
		}
		path := fillPath(rt.Pattern, func(coll string) string { return real[coll] })
		for _, p := range params {
			for name, v := range notText {
				what := fmt.Sprintf("%s %s?%s=<%s>", rt.Method, rt.Pattern, p, name)
				r := call(t, st, keyFor(st, rt.Admin), rt.Method, path+"?"+p+"="+url.QueryEscape(v), nil, "")
				require.Equal(t, 400, r.Status, "%s: %.300s", what, r.Body)
				isClientError(t, r, what)
			}
			if rt.Method != "GET" {
				continue
			}
			for name, v := range hostile {
				what := fmt.Sprintf("%s %s?%s=<%s>", rt.Method, rt.Pattern, p, name)
				r := call(t, st, keyFor(st, rt.Admin), rt.Method, path+"?"+p+"="+url.QueryEscape(v), nil, "")
				require.Less(t, r.Status, 500, "%s: %.300s", what, r.Body)
				if r.Status >= 400 {
					isClientError(t, r, what)
				}
			}
		}
		for _, raw := range []string{"search=%zz", "a=1;b=2", "%00=1"} {
			r := call(t, st, keyFor(st, rt.Admin), rt.Method, path+"?"+raw, nil, "")
			require.Equal(t, 400, r.Status, "%s %s?%s", rt.Method, rt.Pattern, raw)
		}
	}

	// Cursors and timestamps that PostgreSQL cannot take.
	for _, q := range []string{"/v1/batches?search=%00", "/v1/batches?created_after=9999999999999", "/v1/batches?created_before=9999999999999",
		"/v1/batches?created_after=-1", "/v1/batches?after=%00", "/v1/batches?after=" + strings.Repeat("b", 50_000),
		"/v1/files?after=%27%20OR%201%3D1", "/v1/files?purpose=%FF", "/v1/batches/" + done.ID + "/results?search=%00",
		"/v1/files/" + done.OutputFileID + "/content?search=%FF"} {
		r := call(t, st, st.APIKey, "GET", q, nil, "")
		require.Equal(t, 400, r.Status, "%.100s: %.300s", q, r.Body)
		isClientError(t, r, q)
	}

	// JSON bodies: a NUL in any string (value or key) of a valid body is a 400.
	for _, rt := range routes {
		if rt.Method != "POST" && rt.Method != "PUT" {
			continue
		}
		name := rt.Method + " " + rt.Pattern
		body, ok := bodies[name]
		require.True(t, ok, "%s: declare its JSON body in hostileBodies", name)
		if body == nil {
			continue
		}
		path := fillPath(rt.Pattern, func(coll string) string { return real[coll] })
		variants := withNUL(body, "body")
		require.NotEmpty(t, variants, name)
		for where, v := range variants {
			b, err := json.Marshal(v)
			require.NoError(t, err)
			require.Contains(t, string(b), `\u0000`)
			what := fmt.Sprintf("%s with a NUL in %s", name, where)
			r := call(t, st, keyFor(st, rt.Admin), rt.Method, path, bytes.NewReader(b), "application/json")
			require.Equal(t, 400, r.Status, "%s: %.300s", what, r.Body)
			isClientError(t, r, what)
		}
	}

	// Multipart uploads: a filename that is not text, raw or RFC 2231-encoded, and an
	// Idempotency-Key that is not text.
	for _, disp := range []string{`form-data; name="file"; filename="a` + "\xff" + `.jsonl"`, `form-data; name="file"; filename*=UTF-8''a%00.jsonl`} {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		fw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Disposition": {disp}, "Content-Type": {"application/jsonl"}})
		require.NoError(t, err)
		_, _ = fw.Write(lines(chatLine("a", "mock-chat")))
		require.NoError(t, mw.WriteField("purpose", "batch"))
		require.NoError(t, mw.Close())
		r := call(t, st, st.APIKey, "POST", "/v1/files", &b, mw.FormDataContentType())
		require.Equal(t, 400, r.Status, "%s: %s", disp, r.Body)
		isClientError(t, r, disp)
	}
	r := callJSON(t, st, st.APIKey, "POST", "/v1/batches", bodies["POST /v1/batches"], "Idempotency-Key", "k\xff")
	require.Equal(t, 400, r.Status, "%s", r.Body)
	require.Equal(t, "Idempotency-Key", r.errorOf(t)["param"])

	// Nothing above changed the real objects.
	got, err := c.Batches.Get(ctx, done.ID)
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusCompleted, got.Status)
	_, err = c.Files.Get(ctx, f.ID)
	require.NoError(t, err)
	require.Len(t, callJSON(t, st, st.AdminKey, "GET", "/v1/admin/models", nil).json(t)["data"], len(stack.DefaultModels()))
}

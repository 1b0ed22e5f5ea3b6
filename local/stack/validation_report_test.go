package stack_test

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
)

// badLine is what a rejected upload's error.errors says about one line.
type badLine struct {
	Line     int
	CustomID string // "" when the line had no readable custom_id
	Code     string
}

// listedErrors checks a rejected upload's envelope (the first bad line in message, code and
// line, as before) and returns error.errors and error.truncated.
func listedErrors(t *testing.T, r apiResp) ([]badLine, bool) {
	t.Helper()
	require.Equal(t, http.StatusBadRequest, r.Status, string(r.Body))
	e := r.errorOf(t)
	list, ok := e["errors"].([]any)
	require.True(t, ok, "error.errors: %s", r.Body)
	require.NotEmpty(t, list)
	var out []badLine
	for i, item := range list {
		m := item.(map[string]any)
		for _, k := range []string{"line", "custom_id", "code", "message"} {
			require.Contains(t, m, k, "error.errors[%d]", i)
		}
		var bl badLine
		if n, ok := m["line"].(float64); ok {
			bl.Line = int(n)
			require.True(t, strings.HasPrefix(m["message"].(string), fmt.Sprintf("line %d: ", bl.Line)), m["message"])
		}
		if id, ok := m["custom_id"].(string); ok {
			bl.CustomID = id
		}
		bl.Code = m["code"].(string)
		out = append(out, bl)
		if i == 0 {
			require.Equal(t, m["message"], e["message"], "the first bad line is the error itself")
			require.Equal(t, m["code"], e["code"])
			require.Equal(t, m["line"], e["line"])
		}
	}
	truncated, ok := e["truncated"].(bool)
	require.True(t, ok, "error.truncated: %s", r.Body)
	return out, truncated
}

// uploadThroughParts sends content as one part of an Uploads-API upload and completes it.
func uploadThroughParts(t *testing.T, st *stack.Stack, content []byte) apiResp {
	t.Helper()
	r := callJSON(t, st, st.APIKey, "POST", "/v1/uploads", map[string]any{"bytes": len(content), "filename": "parts.jsonl",
		"mime_type": "application/jsonl", "purpose": "batch"})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	id := r.json(t)["id"].(string)
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fw, _ := mw.CreateFormFile("data", "blob")
	_, _ = fw.Write(content)
	_ = mw.Close()
	r = call(t, st, st.APIKey, "POST", "/v1/uploads/"+id+"/parts", &b, mw.FormDataContentType())
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	part := r.json(t)["id"].(string)
	return callJSON(t, st, st.APIKey, "POST", "/v1/uploads/"+id+"/complete", map[string]any{"part_ids": []string{part}})
}

// uploadPaths are the three ways content reaches validation at upload time.
func uploadPaths(st *stack.Stack) map[string]func(t *testing.T, content []byte) apiResp {
	return map[string]func(t *testing.T, content []byte) apiResp{
		"multipart": func(t *testing.T, content []byte) apiResp { return uploadRaw(t, st, st.APIKey, content) },
		"presigned complete": func(t *testing.T, content []byte) apiResp {
			id := presign(t, st, st.APIKey, int64(len(content)), bytes.NewReader(content), int64(len(content)))
			return call(t, st, st.APIKey, "POST", "/v1/files/"+id+"/complete", nil, "")
		},
		"uploads complete": func(t *testing.T, content []byte) apiResp { return uploadThroughParts(t, st, content) },
	}
}

// A rejected upload answers one 400 that lists every bad line with its number, custom_id and
// code, whichever way the file came in; nothing is kept.
func TestRejectedUploadListsEveryBadLine(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "m", Limit: 0}}})
	line := func(id, method, url, body string) string {
		return fmt.Sprintf(`{"custom_id":%s,"method":%q,"url":%q,"body":%s}`, id, method, url, body)
	}
	content := lines(
		line(`"a"`, "POST", "/v1/chat/completions", `{"model":"m"}`),
		`{"custom_id":"c",`,
		line("null", "POST", "/v1/chat/completions", `{"model":"m"}`),
		line(`"a"`, "POST", "/v1/chat/completions", `{"model":"m"}`),
		line(`"d"`, "POST", "/v1/chat/completions?x=1", `{"model":"m"}`),
		line(`"e"`, "POST", "/v1/chat/completions", `{"model":"gpt-9"}`),
		line(`"f"`, "POST", "/v1/chat/completions", `{"model":"m","stream":true}`),
		`{"custom_id":"g`+"\xff"+`"}`,
		line(`"h"`, "POST", "/v1/chat/completions", `{"model":"m"}`),
		line(`"i"`, "GET", "/v1/chat/completions", `{"model":"m"}`),
	)
	want := []badLine{
		{2, "", "invalid_json_line"},
		{3, "", "missing_custom_id"},
		{4, "a", "duplicate_custom_id"},
		{5, "d", "invalid_url"},
		{6, "e", "model_not_found"},
		{7, "f", "stream_not_supported"},
		{8, "", "invalid_utf8"},
		{10, "i", "invalid_method"},
	}
	for name, upload := range uploadPaths(st) {
		t.Run(name, func(t *testing.T) {
			got, truncated := listedErrors(t, upload(t, content))
			require.Equal(t, want, got)
			require.False(t, truncated)
		})
	}
	// A file-level problem is a list of one, without a line.
	got, truncated := listedErrors(t, uploadRaw(t, st, st.APIKey, []byte("\n\n")))
	require.Equal(t, []badLine{{0, "", "empty_file"}}, got)
	require.False(t, truncated)
	require.Empty(t, callJSON(t, st, st.APIKey, "GET", "/v1/files", nil).json(t)["data"], "no rejected file is kept")
}

// A file with more than 1,000 bad lines lists the first 1,000 and says the list was cut.
func TestRejectedUploadListsAtMostAThousandBadLines(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "m", Limit: 0}}})
	var b bytes.Buffer
	for i := range 1500 {
		fmt.Fprintf(&b, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gone"}}`+"\n", i)
	}
	for name, upload := range uploadPaths(st) {
		t.Run(name, func(t *testing.T) {
			got, truncated := listedErrors(t, upload(t, b.Bytes()))
			require.True(t, truncated)
			require.Len(t, got, 1000)
			for i, bl := range got {
				require.Equal(t, badLine{i + 1, fmt.Sprintf("r%d", i), "model_not_found"}, bl)
			}
		})
	}
}

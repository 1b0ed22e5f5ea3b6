package mockupstream

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// newTestServer starts the mock behind httptest with recording on. s.Close
// is registered last so it runs first, freeing any handler still waiting,
// otherwise httptest.Server.Close would wait for it forever.
func newTestServer(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	cfg.Record = true
	s := New(cfg)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	t.Cleanup(s.Close)
	return s, ts
}

// testCtx bounds every wait of a test so a bug fails fast instead of hanging.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// result is one finished HTTP exchange.
type result struct {
	Status int
	Header http.Header
	Body   []byte
	Err    error
}

// do posts body (a string is sent as is, anything else as JSON) and reads
// the whole answer. It does not use testing.T so goroutines can call it.
func do(ctx context.Context, client *http.Client, url string, body any) result {
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			return result{Err: err}
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return result{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return result{Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return result{Status: resp.StatusCode, Header: resp.Header, Body: data, Err: err}
}

func post(t *testing.T, url string, body any) result {
	t.Helper()
	r := do(testCtx(t), nil, url, body)
	require.NoError(t, r.Err)
	return r
}

func decodeObject(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m), "body: %s", data)
	return m
}

// sseData returns the payloads of the "data:" events of an SSE body.
func sseData(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	for _, ev := range strings.Split(string(body), "\n\n") {
		if ev == "" {
			continue
		}
		payload, ok := strings.CutPrefix(ev, "data: ")
		require.True(t, ok, "event without data prefix: %q", ev)
		out = append(out, payload)
	}
	return out
}

func chatBody(model, user string, extra map[string]any) map[string]any {
	m := map[string]any{
		"model": model,
		"messages": []map[string]any{
			{"role": "system", "content": "be brief"},
			{"role": "user", "content": user},
		},
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// obj and arr walk decoded JSON in assertions.
func obj(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	require.True(t, ok, "not an object: %#v", v)
	return m
}

func arr(t *testing.T, v any) []any {
	t.Helper()
	a, ok := v.([]any)
	require.True(t, ok, "not an array: %#v", v)
	return a
}

func requireOpenAIError(t *testing.T, r result, status int, typ string) map[string]any {
	t.Helper()
	require.Equal(t, status, r.Status, "body: %s", r.Body)
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	e := obj(t, decodeObject(t, r.Body)["error"])
	require.Contains(t, e, "message")
	require.NotEmpty(t, e["message"])
	require.Equal(t, typ, e["type"])
	require.Contains(t, e, "param")
	require.Nil(t, e["param"])
	require.Contains(t, e, "code")
	return e
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/mockupstream"
	"github.com/fusillade/fusillade/local/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// `fusillade run` configures real upstreams from --models-file and --upstream, and sends each
// the key its env: reference names in the process environment: a keyed server standing in for
// the upstream records the Authorization header it got.
func TestRunConfiguresRealUpstreamsFromFlagsWithTheirKeys(t *testing.T) {
	mock := mockupstream.New(mockupstream.Config{})
	var mu sync.Mutex
	got := map[string][]string{} // model → Authorization headers
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Model string `json:"model"`
		}
		_ = json.Unmarshal(body, &req)
		mu.Lock()
		got[req.Model] = append(got[req.Model], r.Header.Get("Authorization"))
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		mock.ServeHTTP(w, r)
	}))
	defer up.Close()

	dir := t.TempDir()
	modelsFile := filepath.Join(dir, "models.yaml")
	require.NoError(t, os.WriteFile(modelsFile, []byte(fmt.Sprintf(`models:
  - name: from-file
    base_url: %s
    credential_ref: env:FUSILLADE_UPSTREAM_KEY_FILE
    limit: 3
`, up.URL)), 0o600))
	env := map[string]string{
		"DATABASE_URL":                   pgtest.URL(t),
		"FUSILLADE_UPSTREAM_KEY_FILE":    "sk-file",
		"FUSILLADE_UPSTREAM_KEY_FLAGGED": "sk-flag",
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"run", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--models", "", "--example=false",
			"--models-file", modelsFile, "--upstream", "flagged=" + up.URL + ",key=env:FUSILLADE_UPSTREAM_KEY_FLAGGED,limit=2"},
			func(k string) string { return env[k] }, &out, io.Discard)
	}()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	var apiURL, key string
	deadline := time.Now().Add(time.Minute)
	for apiURL == "" {
		if m := regexp.MustCompile(`API base URL\s+(\S+)\s+API key\s+(\S+)`).FindStringSubmatch(out.String()); m != nil {
			apiURL, key = strings.TrimSuffix(m[1], "/v1"), m[2]
			break
		}
		select {
		case err := <-done:
			require.Failf(t, "run ended early", "%v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "the stack did not start: %s", out.String())
	}
	require.Contains(t, out.String(), "dashboard      "+apiURL+"/ui/", "the startup output links the dashboard")
	require.Contains(t, out.String(), "from-file=3 ("+up.URL+")")
	require.Contains(t, out.String(), "flagged=2 ("+up.URL+")")

	post := func(path, contentType string, body io.Reader) map[string]any {
		req, err := http.NewRequest("POST", apiURL+path, body)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var v map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
		require.Equal(t, 200, resp.StatusCode, "%v", v)
		return v
	}
	var lines strings.Builder
	for i, m := range []string{"from-file", "flagged", "from-file", "flagged"} {
		fmt.Fprintf(&lines, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[]}}`+"\n", i, m)
	}
	var form bytes.Buffer
	boundary := "fusillade-test-boundary"
	fmt.Fprintf(&form, "--%s\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n%s\r\n--%s--\r\n",
		boundary, boundary, lines.String(), boundary)
	file := post("/v1/files", "multipart/form-data; boundary="+boundary, &form)
	batch := post("/v1/batches", "application/json", strings.NewReader(fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, file["id"])))
	for {
		req, _ := http.NewRequest("GET", apiURL+"/v1/batches/"+batch["id"].(string), nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var b struct {
			Status string `json:"status"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
		resp.Body.Close()
		if b.Status == "completed" {
			break
		}
		require.NotContains(t, []string{"failed", "expired", "cancelled"}, b.Status)
		require.True(t, time.Now().Before(deadline), "batch still %s", b.Status)
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string][]string{"from-file": {"Bearer sk-file", "Bearer sk-file"}, "flagged": {"Bearer sk-flag", "Bearer sk-flag"}}, got)
}

func TestParseUpstreamRejectsWhatItCannotUse(t *testing.T) {
	m, err := parseUpstream("gpt-4o-mini=https://api.openai.com,key=env:FUSILLADE_UPSTREAM_KEY_OPENAI,limit=16,escalation=gpt-4o")
	require.NoError(t, err)
	require.Equal(t, "gpt-4o-mini", m.Name)
	require.Equal(t, "https://api.openai.com", m.BaseURL)
	require.Equal(t, "env:FUSILLADE_UPSTREAM_KEY_OPENAI", m.CredentialRef)
	require.Equal(t, 16, m.Limit)
	require.Equal(t, "gpt-4o", m.EscalationModel)
	for _, bad := range []string{"no-url", "m=ftp://x", "m=http://x,limit=many", "m=http://x,colour=red", "=http://x"} {
		_, err := parseUpstream(bad)
		require.Error(t, err, bad)
	}
}

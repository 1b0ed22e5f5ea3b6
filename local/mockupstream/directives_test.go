package mockupstream

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMockStatusDirective(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status     int
		retryAfter any
		typ        string
	}{
		{http.StatusBadRequest, nil, "invalid_request_error"},
		{http.StatusUnauthorized, nil, "authentication_error"},
		{http.StatusNotFound, nil, "invalid_request_error"},
		{http.StatusTooManyRequests, 3, "requests"},
		{http.StatusInternalServerError, nil, "server_error"},
		{http.StatusServiceUnavailable, 7, "server_error"},
	}
	s, ts := newTestServer(t, Config{})
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			extra := map[string]any{"mock_status": tt.status}
			if tt.retryAfter != nil {
				extra["mock_retry_after"] = tt.retryAfter
			}
			r := post(t, ts.URL+"/v1/chat/completions", chatBody("m1", "x", extra))
			e := requireOpenAIError(t, r, tt.status, tt.typ)
			if tt.status == http.StatusTooManyRequests {
				assert.Equal(t, "rate_limit_exceeded", e["code"])
			} else {
				assert.Nil(t, e["code"])
			}
			if tt.retryAfter != nil {
				assert.Equal(t, strings.TrimSpace(jsonString(tt.retryAfter)), r.Header.Get("Retry-After"))
			} else {
				assert.Empty(t, r.Header.Get("Retry-After"))
			}
		})
	}
	// Checked once the parallel subtests have all finished.
	t.Cleanup(func() {
		by := s.ModelStats("m1").ByStatus
		for _, tt := range tests {
			assert.Equal(t, int64(1), by[tt.status], "status %d", tt.status)
		}
	})

	// 2xx is accepted and means "answer normally".
	r := post(t, ts.URL+"/v1/embeddings", map[string]any{"model": "e", "input": "x", "mock_status": 200})
	assert.Equal(t, http.StatusOK, r.Status)
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestMockFailTimesDirective(t *testing.T) {
	t.Parallel()
	_, ts := newTestServer(t, Config{})
	url := ts.URL + "/v1/chat/completions"
	k1 := chatBody("m1", "x", map[string]any{"mock_fail_times": 2, "mock_key": "k1", "mock_status": 503, "mock_retry_after": 1})
	k2 := chatBody("m1", "x", map[string]any{"mock_fail_times": 1, "mock_key": "k2"})

	r := post(t, url, k1)
	requireOpenAIError(t, r, http.StatusServiceUnavailable, "server_error")
	assert.Equal(t, "1", r.Header.Get("Retry-After"))
	requireOpenAIError(t, post(t, url, k2), http.StatusInternalServerError, "server_error") // default status, own counter
	requireOpenAIError(t, post(t, url, k1), http.StatusServiceUnavailable, "server_error")
	for range 3 {
		r = post(t, url, k1)
		assert.Equal(t, http.StatusOK, r.Status)
		assert.Empty(t, r.Header.Get("Retry-After"))
	}
	assert.Equal(t, http.StatusOK, post(t, url, k2).Status)
}

func TestMockDelayDirective(t *testing.T) {
	t.Parallel()
	s, ts := newTestServer(t, Config{Latency: Fixed(time.Hour)})
	url := ts.URL + "/v1/chat/completions"

	// The directive replaces the configured hour: 0 means no delay at all.
	r := post(t, url, chatBody("m1", "x", map[string]any{"mock_delay_ms": 0}))
	assert.Equal(t, http.StatusOK, r.Status)

	start := time.Now()
	r = post(t, url, chatBody("m1", "x", map[string]any{"mock_delay_ms": 150}))
	assert.Equal(t, http.StatusOK, r.Status)
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
	assert.GreaterOrEqual(t, s.ModelStats("m1").BusyNanos, int64(150*time.Millisecond))

	// Errors wait too: latency applies before any answer.
	start = time.Now()
	r = post(t, url, chatBody("m1", "x", map[string]any{"mock_delay_ms": 80, "mock_status": 500}))
	assert.Equal(t, http.StatusInternalServerError, r.Status)
	assert.GreaterOrEqual(t, time.Since(start), 80*time.Millisecond)
}

func TestMockBlockDirective(t *testing.T) {
	t.Parallel()
	s, ts := newTestServer(t, Config{})
	ctx := testCtx(t)
	url := ts.URL + "/v1/chat/completions"

	results := make(chan result, 3)
	for range 3 {
		go func() { results <- do(ctx, nil, url, chatBody("m1", "x", map[string]any{"mock_block": "g"})) }()
	}
	require.NoError(t, s.WaitBlocked(ctx, "g", 3))
	assert.Equal(t, 3, s.Blocked("g"))
	select {
	case r := <-results:
		require.Failf(t, "a blocked request answered early", "%+v", r)
	default:
	}
	s.Release("g")
	for range 3 {
		r := <-results
		require.NoError(t, r.Err)
		assert.Equal(t, http.StatusOK, r.Status)
	}
	assert.Equal(t, 0, s.Blocked("g"))

	// Released names stay open; names released before anyone waits too.
	assert.Equal(t, http.StatusOK, post(t, url, chatBody("m1", "x", map[string]any{"mock_block": "g"})).Status)
	s.Release("early")
	assert.Equal(t, http.StatusOK, post(t, url, chatBody("m1", "x", map[string]any{"mock_block": "early"})).Status)

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.WaitBlocked(short, "nobody", 1), context.DeadlineExceeded)
}

func TestMockHangBodyDirective(t *testing.T) {
	t.Parallel()
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "sse"}[stream], func(t *testing.T) {
			t.Parallel()
			s, ts := newTestServer(t, Config{})
			ctx := testCtx(t)
			body := chatBody("m1", "x", map[string]any{"mock_hang_body": true, "stream": stream})
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/chat/completions", strings.NewReader(jsonString(body)))
			require.NoError(t, err)
			client := &http.Client{Timeout: 300 * time.Millisecond}
			resp, err := client.Do(req)
			require.NoError(t, err, "headers arrive")
			defer resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			got, err := io.ReadAll(resp.Body)
			require.Error(t, err, "the body never completes")
			if stream {
				assert.True(t, strings.HasPrefix(string(got), `data: {"id":"chatcmpl-`), "%q", got)
			} else {
				assert.True(t, strings.HasPrefix(string(got), `{"id":"chatcmpl-`), "%q", got)
				assert.False(t, json.Valid(got))
			}

			require.NoError(t, s.WaitIdle(ctx))
			assert.Equal(t, int64(1), s.Stats().Aborted)
			assert.Equal(t, int64(1), s.ModelStats("m1").ByStatus[StatusClientClosed])
		})
	}
}

func TestMockRedirectDirective(t *testing.T) {
	t.Parallel()
	s, ts := newTestServer(t, Config{})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	target := ts.URL + "/v1/elsewhere"
	r := do(testCtx(t), client, ts.URL+"/v1/chat/completions", chatBody("m1", "x", map[string]any{"mock_redirect": target}))
	require.NoError(t, r.Err)
	assert.Equal(t, http.StatusFound, r.Status)
	assert.Equal(t, target, r.Header.Get("Location"))
	assert.Equal(t, int64(1), s.Calls(), "the redirect was not followed")
}

func TestMockBigBodyDirective(t *testing.T) {
	t.Parallel()
	_, ts := newTestServer(t, Config{})
	for _, n := range []int{1 << 20, 5000} {
		r := post(t, ts.URL+"/v1/chat/completions", chatBody("m1", "x", map[string]any{"mock_big_body_bytes": n}))
		require.Equal(t, http.StatusOK, r.Status)
		assert.Len(t, r.Body, n)
		m := decodeObject(t, r.Body)
		assert.Equal(t, "chat.completion", m["object"])
		assert.Contains(t, m, "usage")
	}
	// Below the natural size the normal answer is sent.
	r := post(t, ts.URL+"/v1/embeddings", map[string]any{"model": "e", "input": "x", "mock_big_body_bytes": 10})
	assert.Equal(t, "list", decodeObject(t, r.Body)["object"])
}

func TestClientAbort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		extra map[string]any
		wait  func(ctx context.Context, s *Server) error
	}{
		{"blocked", map[string]any{"mock_block": "never"}, func(ctx context.Context, s *Server) error { return s.WaitBlocked(ctx, "never", 1) }},
		{"in latency", map[string]any{"mock_delay_ms": 60_000}, func(ctx context.Context, s *Server) error { return s.WaitCalls(ctx, 1) }},
		{"mid stream", map[string]any{"mock_delay_ms": 60_000, "stream": true}, func(ctx context.Context, s *Server) error { return s.WaitCalls(ctx, 1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, ts := newTestServer(t, Config{})
			ctx := testCtx(t)
			reqCtx, cancel := context.WithCancel(ctx)
			done := make(chan result, 1)
			go func() { done <- do(reqCtx, nil, ts.URL+"/v1/chat/completions", chatBody("m1", "x", tt.extra)) }()

			require.NoError(t, tt.wait(ctx, s))
			assert.Equal(t, 1, s.ModelStats("m1").InFlight)
			cancel()
			r := <-done
			assert.True(t, errors.Is(r.Err, context.Canceled), "client saw %v", r.Err)

			require.NoError(t, s.WaitIdle(ctx))
			st := s.Stats()
			assert.Equal(t, int64(1), st.Aborted)
			assert.Equal(t, 0, st.InFlight)
			ms := st.Models["m1"]
			assert.Equal(t, 0, ms.InFlight, "the abort frees the slot")
			assert.Equal(t, 1, ms.MaxInFlight)
			assert.Equal(t, map[int]int64{StatusClientClosed: 1}, ms.ByStatus)
			recs := s.Requests()
			require.Len(t, recs, 1)
			assert.True(t, recs[0].Aborted)
			assert.False(t, recs[0].Finished.IsZero())
		})
	}
}

func TestCloseFreesWaitingRequests(t *testing.T) {
	t.Parallel()
	s, ts := newTestServer(t, Config{})
	ctx := testCtx(t)
	var wg sync.WaitGroup
	results := make([]result, 2)
	wg.Go(func() {
		results[0] = do(ctx, nil, ts.URL+"/v1/chat/completions", chatBody("m1", "x", map[string]any{"mock_block": "forever"}))
	})
	wg.Go(func() {
		results[1] = do(ctx, nil, ts.URL+"/v1/completions", map[string]any{"model": "m1", "prompt": "x", "mock_delay_ms": 3_600_000})
	})
	require.NoError(t, s.WaitCalls(ctx, 2))
	require.NoError(t, s.WaitBlocked(ctx, "forever", 1))
	s.Close()
	wg.Wait()
	for _, r := range results {
		require.NoError(t, r.Err)
		requireOpenAIError(t, r, http.StatusServiceUnavailable, "server_error")
	}
	assert.Equal(t, int64(0), s.Stats().Aborted)
}

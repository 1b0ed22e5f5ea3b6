package mockupstream

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMaxInFlightExact(t *testing.T) {
	t.Parallel()
	s, ts := newTestServer(t, Config{})
	ctx := testCtx(t)
	groups := []struct {
		model, gate string
		n           int
	}{{"m1", "g1", 25}, {"m2", "g2", 7}}

	var wg sync.WaitGroup
	for _, g := range groups {
		for range g.n {
			wg.Go(func() {
				r := do(ctx, nil, ts.URL+"/v1/chat/completions", chatBody(g.model, "x", map[string]any{"mock_block": g.gate}))
				assert.NoError(t, r.Err)
				assert.Equal(t, http.StatusOK, r.Status)
			})
		}
	}
	for _, g := range groups {
		require.NoError(t, s.WaitBlocked(ctx, g.gate, g.n))
	}
	st := s.Stats()
	assert.Equal(t, 32, st.InFlight)
	for _, g := range groups {
		assert.Equal(t, g.n, st.Models[g.model].InFlight)
		assert.Equal(t, g.n, s.MaxInFlight(g.model))
	}

	// Releasing one group leaves the other's figures untouched.
	s.Release("g1")
	require.NoError(t, s.WaitModelIdle(ctx, "m1"))
	assert.Equal(t, 7, s.ModelStats("m2").InFlight)
	s.Release("g2")
	wg.Wait()
	require.NoError(t, s.WaitIdle(ctx))

	for _, g := range groups {
		ms := s.ModelStats(g.model)
		assert.Equal(t, 0, ms.InFlight)
		assert.Equal(t, g.n, ms.MaxInFlight)
		assert.Equal(t, int64(g.n), ms.Calls)
		assert.Equal(t, map[int]int64{http.StatusOK: int64(g.n)}, ms.ByStatus)
		assert.Positive(t, ms.BusyNanos)
	}
	assert.Equal(t, 0, s.MaxInFlight("unknown"))
	assert.Equal(t, ModelStats{ByStatus: map[int]int64{}}, s.ModelStats("unknown"))
}

// errorRun sends n requests to a fresh server at a 25% error rate and
// returns which arrival numbers failed.
func errorRun(t *testing.T, seed int64, n, parallel int) []int64 {
	t.Helper()
	s, ts := newTestServer(t, Config{ErrorRate: 0.25, ErrorStatus: http.StatusBadGateway, Seed: seed})
	ctx := testCtx(t)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := do(ctx, nil, ts.URL+"/v1/embeddings", map[string]any{"model": "e", "input": "x"})
			assert.NoError(t, r.Err)
		})
	}
	wg.Wait()
	var failed []int64
	for _, rec := range s.Requests() {
		if rec.Status == http.StatusBadGateway {
			failed = append(failed, rec.Seq)
		}
	}
	slices.Sort(failed)
	assert.Equal(t, int64(len(failed)), s.ModelStats("e").ByStatus[http.StatusBadGateway])
	assert.Equal(t, int64(n-len(failed)), s.ModelStats("e").ByStatus[http.StatusOK])
	return failed
}

func TestErrorRateSeeded(t *testing.T) {
	t.Parallel()
	const n = 1000
	seq := errorRun(t, 42, n, 1)
	assert.InDelta(t, 250, len(seq), 50, "roughly 25%% of %d", n)
	// Decisions hang on the seed and the arrival number only, so the same
	// requests fail whether they run one by one or 32 at a time.
	assert.Equal(t, seq, errorRun(t, 42, n, 32))
	assert.NotEqual(t, seq, errorRun(t, 43, n, 1))
}

func TestRuntimeSettings(t *testing.T) {
	t.Parallel()
	s, ts := newTestServer(t, Config{})
	url := ts.URL + "/v1/completions"
	body := map[string]any{"model": "m", "prompt": "x"}

	s.SetErrorRate(1, http.StatusTooManyRequests)
	requireOpenAIError(t, post(t, url, body), http.StatusTooManyRequests, "requests")
	s.SetErrorRate(1, 0)
	requireOpenAIError(t, post(t, url, body), http.StatusInternalServerError, "server_error")
	s.SetErrorRate(-3, 0)
	assert.Equal(t, http.StatusOK, post(t, url, body).Status)

	s.SetLatency(Fixed(100 * time.Millisecond))
	start := time.Now()
	assert.Equal(t, http.StatusOK, post(t, url, body).Status)
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
	s.SetLatency(nil)
	assert.Equal(t, http.StatusOK, post(t, url, body).Status)
}

func TestRecordedRequests(t *testing.T) {
	t.Parallel()
	s, ts := newTestServer(t, Config{RecordLimit: 3})
	ctx := testCtx(t)
	for i := range 5 {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/chat/completions",
			bytes.NewReader([]byte(jsonString(chatBody("m1", "x", map[string]any{"n": i})))))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer sk-test")
		req.Header.Set("Idempotency-Key", "line-"+jsonString(i))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	recs := s.Requests()
	require.Len(t, recs, 3, "only the most recent RecordLimit are kept")
	for i, rec := range recs {
		n := i + 2
		assert.Equal(t, int64(n+1), rec.Seq)
		assert.Equal(t, "req_"+jsonString(n+1), rec.RequestID)
		assert.Equal(t, http.MethodPost, rec.Method)
		assert.Equal(t, "/v1/chat/completions", rec.Path)
		assert.Equal(t, "m1", rec.Model)
		assert.Equal(t, "Bearer sk-test", rec.Header.Get("Authorization"))
		assert.Equal(t, "line-"+jsonString(n), rec.Header.Get("Idempotency-Key"))
		assert.Equal(t, http.StatusOK, rec.Status)
		assert.Equal(t, jsonString(n), jsonString(decodeObject(t, rec.Body)["n"]))
		assert.False(t, rec.Received.IsZero())
		assert.False(t, rec.Finished.Before(rec.Received))
	}
	// Snapshots are copies.
	recs[0].Header.Set("Authorization", "changed")
	assert.Equal(t, "Bearer sk-test", s.Requests()[0].Header.Get("Authorization"))

	off := New(Config{})
	offTS := httptest.NewServer(off)
	t.Cleanup(offTS.Close)
	post(t, offTS.URL+"/v1/embeddings", map[string]any{"model": "e", "input": "x"})
	assert.Nil(t, off.Requests())
	assert.Equal(t, int64(1), off.Calls())
}

func TestReset(t *testing.T) {
	t.Parallel()
	s, ts := newTestServer(t, Config{})
	ctx := testCtx(t)
	url := ts.URL + "/v1/chat/completions"
	failOnce := chatBody("m1", "x", map[string]any{"mock_fail_times": 1, "mock_key": "k"})
	assert.Equal(t, http.StatusInternalServerError, post(t, url, failOnce).Status)
	assert.Equal(t, http.StatusOK, post(t, url, failOnce).Status)

	// One request stays in flight across the Reset.
	done := make(chan result, 1)
	go func() { done <- do(ctx, nil, url, chatBody("m2", "x", map[string]any{"mock_block": "held"})) }()
	require.NoError(t, s.WaitBlocked(ctx, "held", 1))
	s.Release("unused")

	s.Reset()
	st := s.Stats()
	assert.Equal(t, int64(0), st.Calls)
	assert.Equal(t, int64(0), st.Aborted)
	assert.Equal(t, 1, st.InFlight)
	assert.NotContains(t, st.Models, "m1")
	assert.Equal(t, ModelStats{InFlight: 1, MaxInFlight: 1, ByStatus: map[int]int64{}}, st.Models["m2"])
	assert.Nil(t, s.Requests())

	// Counters, fail-times keys and the arrival sequence start over.
	r := post(t, url, failOnce)
	assert.Equal(t, http.StatusInternalServerError, r.Status)
	assert.Equal(t, "req_1", r.Header.Get("x-request-id"))

	s.Release("held")
	assert.Equal(t, http.StatusOK, (<-done).Status)
	require.NoError(t, s.WaitIdle(ctx))
	m2 := s.ModelStats("m2")
	assert.Equal(t, 0, m2.InFlight, "never negative")
	assert.Equal(t, int64(1), m2.ByStatus[http.StatusOK])
	assert.Equal(t, int64(1), s.Calls())
}

func TestWaitCalls(t *testing.T) {
	t.Parallel()
	s, ts := newTestServer(t, Config{})
	ctx := testCtx(t)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.WaitCalls(short, 1), context.DeadlineExceeded)

	go do(ctx, nil, ts.URL+"/v1/embeddings", map[string]any{"model": "e", "input": "x"})
	go do(ctx, nil, ts.URL+"/nowhere", "{}")
	require.NoError(t, s.WaitCalls(ctx, 2))
	assert.Equal(t, int64(2), s.Calls())
	require.NoError(t, s.WaitCalls(ctx, 0))
}

// syncBuffer lets the handler's logger and the test share a buffer.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLogger(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	logger := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, ts := newTestServer(t, Config{Logger: logger})
	post(t, ts.URL+"/v1/embeddings", map[string]any{"model": "e", "input": "x"})
	require.NoError(t, s.WaitIdle(testCtx(t)))
	assert.Contains(t, out.String(), "mock upstream request")
	assert.Contains(t, out.String(), "model=e")
	assert.Contains(t, out.String(), "status=200")
}

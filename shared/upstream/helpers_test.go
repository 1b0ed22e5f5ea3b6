package upstream

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testServer wraps httptest.Server with a call counter and a stop channel
// that blocking handlers select on. stop is closed before the server shuts
// down, so Close never waits on a stuck handler.
type testServer struct {
	*httptest.Server
	calls atomic.Int64
	stop  chan struct{}
}

func newTestServer(t *testing.T, h http.HandlerFunc) *testServer {
	t.Helper()
	ts := &testServer{stop: make(chan struct{})}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.calls.Add(1)
		// Consume the request body first: net/http only notices a client
		// that went away (and cancels r.Context) once the body was read.
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		h(w, r)
	}))
	// Cleanups run last-in first-out: stop is closed, then the server closes.
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(ts.stop) })
	return ts
}

// block waits until the client goes away or the test ends.
func (ts *testServer) block(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-ts.stop:
	}
}

// writeSSE writes a text/event-stream response with one "data:" event per
// payload, flushing after each.
func writeSSE(w http.ResponseWriter, payloads ...string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	for _, p := range payloads {
		fmt.Fprintf(w, "data: %s\n\n", p)
		w.(http.Flusher).Flush()
	}
}

func chatCall(base string) Call {
	return Call{
		BaseURL:   base,
		Path:      "/v1/chat/completions",
		Body:      []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`),
		RequestID: "req-1",
	}
}

// fastConfig has timeouts large enough never to fire by accident under the
// race detector; tests shrink the one they exercise.
func fastConfig() Config {
	return Config{
		FirstByteTimeout: 5 * time.Second,
		BodyTimeout:      5 * time.Second,
		ChunkTimeout:     5 * time.Second,
	}
}

// remoteAddrs records distinct client connections seen by a handler.
type remoteAddrs struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (ra *remoteAddrs) add(r *http.Request) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.seen == nil {
		ra.seen = map[string]bool{}
	}
	ra.seen[r.RemoteAddr] = true
}

func (ra *remoteAddrs) count() int {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	return len(ra.seen)
}

// countingReader counts bytes handed out by the underlying reader.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

package upstream

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatusClassification(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.Header.Get("X-Test-Status"))
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable || code == http.StatusInternalServerError || code == StatusOverloaded {
			w.Header().Set("Retry-After", "7")
		}
		if code >= 300 && code < 400 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.Header().Set("X-Request-Id", "up-"+strconv.Itoa(code))
		w.WriteHeader(code)
		if code != http.StatusNoContent && code != http.StatusNotModified {
			_, _ = io.WriteString(w, "body-"+strconv.Itoa(code))
		}
	})

	cases := []struct {
		status     int
		outcome    Verdict
		code       string
		retryAfter time.Duration
	}{
		{200, Success, "", 0},
		{201, Success, "", 0},
		{202, Success, "", 0},
		{204, Success, "", 0},
		{299, Success, "", 0},
		{301, Permanent, CodeHTTPStatus, 0},
		{302, Permanent, CodeHTTPStatus, 0},
		{304, Permanent, CodeHTTPStatus, 0},
		{307, Permanent, CodeHTTPStatus, 0},
		{308, Permanent, CodeHTTPStatus, 0},
		{400, Permanent, CodeHTTPStatus, 0},
		{401, Permanent, CodeHTTPStatus, 0},
		{403, Permanent, CodeHTTPStatus, 0},
		{404, Retriable, CodeHTTPStatus, 0}, // default RetriableStatuses
		{408, Retriable, CodeHTTPStatus, 0},
		{409, Permanent, CodeHTTPStatus, 0},
		{413, Permanent, CodeHTTPStatus, 0},
		{422, Permanent, CodeHTTPStatus, 0},
		{429, Retriable, CodeHTTPStatus, 7 * time.Second},
		{499, Retriable, CodeHTTPStatus, 0}, // default RetriableStatuses
		{500, Retriable, CodeHTTPStatus, 0}, // Retry-After only honoured on 429/503
		{501, Retriable, CodeHTTPStatus, 0},
		{502, Retriable, CodeHTTPStatus, 0},
		{503, Retriable, CodeHTTPStatus, 7 * time.Second},
		{504, Retriable, CodeHTTPStatus, 0},
		{529, Retriable, CodeHTTPStatus, 7 * time.Second}, // Anthropic's overloaded_error
		{599, Retriable, CodeHTTPStatus, 0},
	}
	c := New(fastConfig())
	for _, tc := range cases {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			t.Parallel()
			call := chatCall(ts.URL)
			call.Headers = map[string]string{"X-Test-Status": strconv.Itoa(tc.status)}
			res := c.Do(context.Background(), call)
			assert.Equal(t, tc.status, res.StatusCode)
			assert.Equal(t, tc.outcome, res.Verdict, res.Message)
			assert.Equal(t, tc.code, res.Code)
			assert.Equal(t, tc.retryAfter, res.RetryAfter)
			assert.Equal(t, "up-"+strconv.Itoa(tc.status), res.UpstreamRequestID)
			if tc.status != http.StatusNoContent && tc.status != http.StatusNotModified {
				assert.Equal(t, "body-"+strconv.Itoa(tc.status), string(res.Body), "raw body kept")
			}
			if tc.outcome == Success {
				assert.Empty(t, res.Message)
			} else {
				assert.Contains(t, res.Message, strconv.Itoa(tc.status))
			}
			assert.Positive(t, res.Duration)
		})
	}
}

func TestConfigurableRetriableStatuses(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.Header.Get("X-Test-Status"))
		w.WriteHeader(code)
	})
	cases := []struct {
		name      string
		statuses  []int
		status    int
		retriable bool
	}{
		{"empty list disables 404", []int{}, 404, false},
		{"empty list disables 499", []int{}, 499, false},
		{"empty list keeps 429", []int{}, 429, true},
		{"empty list keeps 408", []int{}, 408, true},
		{"empty list keeps 5xx", []int{}, 502, true},
		{"custom 409", []int{409}, 409, true},
		{"custom list replaces defaults", []int{409}, 404, false},
		{"nil means defaults", nil, 404, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := fastConfig()
			cfg.RetriableStatuses = tc.statuses
			call := chatCall(ts.URL)
			call.Headers = map[string]string{"X-Test-Status": strconv.Itoa(tc.status)}
			res := New(cfg).Do(context.Background(), call)
			want := Permanent
			if tc.retriable {
				want = Retriable
			}
			assert.Equal(t, want, res.Verdict)
			assert.Equal(t, CodeHTTPStatus, res.Code)
		})
	}
}

func TestNonJSONSuccessKeptRaw(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "not json <at all>")
	})
	res := New(fastConfig()).Do(context.Background(), chatCall(ts.URL))
	assert.Equal(t, Success, res.Verdict)
	assert.Equal(t, "not json <at all>", string(res.Body))
}

func TestBasePathJoin(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var gotPath string
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotPath = r.URL.Path
		mu.Unlock()
		_, _ = io.WriteString(w, "{}")
	})
	c := New(fastConfig())
	for _, tc := range []struct{ base, path, want string }{
		{ts.URL, "/v1/chat/completions", "/v1/chat/completions"},
		{ts.URL + "/", "/v1/embeddings", "/v1/embeddings"},
		{ts.URL + "/openai", "/v1/chat/completions", "/openai/v1/chat/completions"},
		{ts.URL + "/openai/", "/v1/chat/completions", "/openai/v1/chat/completions"},
		{ts.URL + "/a/b", "/v1/responses", "/a/b/v1/responses"},
	} {
		call := chatCall(tc.base)
		call.Path = tc.path
		res := c.Do(context.Background(), call)
		require.Equal(t, Success, res.Verdict, res.Message)
		mu.Lock()
		assert.Equal(t, tc.want, gotPath, tc.base+" + "+tc.path)
		mu.Unlock()
	}
}

func TestBuildURL(t *testing.T) {
	t.Parallel()
	good := []struct{ base, path, want string }{
		{"http://vllm:8000", "/v1/chat/completions", "http://vllm:8000/v1/chat/completions"},
		{"https://api.openai.com", "/v1/embeddings", "https://api.openai.com/v1/embeddings"},
		{"https://h/openai", "/v1/chat/completions", "https://h/openai/v1/chat/completions"},
		{"HTTPS://h/openai/", "/v1/chat/completions", "https://h/openai/v1/chat/completions"},
		{"http://[::1]:8000", "/v1/x", "http://[::1]:8000/v1/x"},
		{"http://h", "/v1/models/m:predict", "http://h/v1/models/m:predict"},
	}
	for _, tc := range good {
		got, err := buildURL(tc.base, tc.path)
		require.NoError(t, err, tc.base+tc.path)
		assert.Equal(t, tc.want, got)
	}
	badBases := []string{
		"", "vllm:8000", "/v1", "ftp://h", "file:///etc/passwd", "http://", "http://:8000",
		"http://user:pass@h", "http://h?x=1", "http://h?", "http://h#frag", "http://h/a#",
		"http://h\n", "mailto:a@b",
	}
	for _, b := range badBases {
		_, err := buildURL(b, "/v1/chat/completions")
		assert.Error(t, err, "base %q", b)
	}
}

func TestInvalidRequestsNeverHitTheNetwork(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "{}")
	})
	cfg := fastConfig()
	cfg.StreamablePaths = []string{"/v1/chat/completions"}
	c := New(cfg)

	badPaths := []string{
		"", "v1/chat/completions", "@evil.com/v1", "/v1/../admin", "/..", "/v1/chat?x=1",
		"/v1/chat#x", "//evil.com/v1", "/v1//chat", "/v1/%2e%2e/x", "/v1/chat%0d%0a",
		"/v1/chat completions", "/v1/./chat", "/v1\\chat", "/v1/\r\nHost: evil",
		"/v1/é",
	}
	for _, p := range badPaths {
		call := chatCall(ts.URL)
		call.Path = p
		res := c.Do(context.Background(), call)
		assert.Equal(t, Permanent, res.Verdict, "path %q", p)
		assert.Equal(t, CodeInvalidRequest, res.Code, "path %q", p)
		assert.Zero(t, res.StatusCode)
	}
	for _, b := range []string{"ftp://" + strings.TrimPrefix(ts.URL, "http://"), ts.URL + "?q=1", ts.URL + "#f",
		strings.Replace(ts.URL, "http://", "http://u:p@", 1), strings.TrimPrefix(ts.URL, "http://")} {
		res := c.Do(context.Background(), chatCall(b))
		assert.Equal(t, CodeInvalidRequest, res.Code, "base %q", b)
	}

	// A streamable path needs a JSON object body to inject stream options.
	for _, body := range []string{"", "[]", "null", `"x"`, "{", `{"a":1} trailing`} {
		call := chatCall(ts.URL)
		call.Body = []byte(body)
		res := c.Do(context.Background(), call)
		assert.Equal(t, CodeInvalidRequest, res.Code, "body %q", body)
	}

	// An API key that would break the header line is refused, and the key
	// never appears in the message.
	call := chatCall(ts.URL)
	call.APIKey = "sk-secret\r\nX-Evil: 1"
	res := c.Do(context.Background(), call)
	assert.Equal(t, CodeInvalidRequest, res.Code)
	assert.NotContains(t, res.Message, "sk-secret")

	assert.Zero(t, ts.calls.Load(), "no invalid call may reach the server")
}

func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	other := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"stolen":true}`)
	})
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			redirector := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+r.URL.Path, status)
			})
			call := chatCall(redirector.URL)
			call.APIKey = "sk-test"
			res := New(fastConfig()).Do(context.Background(), call)
			assert.Equal(t, status, res.StatusCode)
			assert.Equal(t, Permanent, res.Verdict)
			assert.Equal(t, CodeHTTPStatus, res.Code)
			assert.Equal(t, other.URL+"/v1/chat/completions", res.Header.Get("Location"))
			assert.EqualValues(t, 1, redirector.calls.Load())
		})
	}
	// Checked once the parallel subtests have all finished.
	t.Cleanup(func() { assert.Zero(t, other.calls.Load(), "redirect target must never be called") })
}

func TestResponseCap(t *testing.T) {
	t.Parallel()
	const limit = 100
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.Header.Get("X-Test-Size"))
		status, _ := strconv.Atoi(r.Header.Get("X-Test-Status"))
		if r.Header.Get("X-Test-Chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		w.WriteHeader(status)
		// Write in two parts with a flush so the chunked variant really is
		// chunked and the size is not known up front.
		half := n / 2
		_, _ = io.WriteString(w, strings.Repeat("a", half))
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, strings.Repeat("b", n-half))
	})
	cfg := fastConfig()
	cfg.MaxResponseBytes = limit
	c := New(cfg)
	cases := []struct {
		name    string
		size    int
		status  int
		chunked bool
		outcome Verdict
		code    string
		bodyLen int
	}{
		{"at cap", limit, 200, false, Success, "", limit},
		{"at cap chunked", limit, 200, true, Success, "", limit},
		{"one over", limit + 1, 200, false, Permanent, CodeResponseTooLarge, 0},
		{"one over chunked", limit + 1, 200, true, Permanent, CodeResponseTooLarge, 0},
		{"far over chunked", 1 << 20, 200, true, Permanent, CodeResponseTooLarge, 0},
		// Error statuses keep their classification; the body is cut.
		{"error over cap", 1000, 503, true, Retriable, CodeHTTPStatus, limit},
		{"client error over cap", 1000, 400, false, Permanent, CodeHTTPStatus, limit},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			call := chatCall(ts.URL)
			call.Headers = map[string]string{"X-Test-Size": strconv.Itoa(tc.size), "X-Test-Status": strconv.Itoa(tc.status)}
			if tc.chunked {
				call.Headers["X-Test-Chunked"] = "1"
			}
			res := c.Do(context.Background(), call)
			assert.Equal(t, tc.outcome, res.Verdict, res.Message)
			assert.Equal(t, tc.code, res.Code)
			assert.Equal(t, tc.status, res.StatusCode)
			assert.Len(t, res.Body, tc.bodyLen)
			assert.Equal(t, tc.code != CodeResponseTooLarge, res.Answered(), "an answer over the cap is not an answer")
		})
	}
}

func TestCappedReaderReadsAtMostCapPlusOne(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, 99, 100, 101, 5000} {
		src := &countingReader{r: strings.NewReader(strings.Repeat("x", size))}
		got, err := io.ReadAll(newCappedReader(src, 100))
		if size > 100 {
			assert.ErrorIs(t, err, errTooLarge)
			assert.Len(t, got, 100)
		} else {
			assert.NoError(t, err)
			assert.Len(t, got, size)
		}
		assert.LessOrEqual(t, src.n, int64(101), "size %d", size)
	}
}

func TestFirstByteTimeout(t *testing.T) {
	t.Parallel()
	var ts *testServer
	ts = newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		ts.block(r) // never answers; returns when the client gives up
	})
	cfg := fastConfig()
	cfg.FirstByteTimeout = 30 * time.Millisecond
	start := time.Now()
	res := New(cfg).Do(context.Background(), chatCall(ts.URL))
	assert.Equal(t, Retriable, res.Verdict)
	assert.Equal(t, CodeFirstByteTimeout, res.Code, res.Message)
	assert.Zero(t, res.StatusCode)
	assert.Less(t, time.Since(start), 3*time.Second)
}

func TestBodyTimeout(t *testing.T) {
	t.Parallel()
	var ts *testServer
	ts = newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, `{"partial":`)
		w.(http.Flusher).Flush()
		ts.block(r) // stall mid-body
	})
	cfg := fastConfig()
	cfg.BodyTimeout = 50 * time.Millisecond
	start := time.Now()
	res := New(cfg).Do(context.Background(), chatCall(ts.URL))
	assert.Equal(t, Retriable, res.Verdict)
	assert.Equal(t, CodeBodyTimeout, res.Code, res.Message)
	assert.Equal(t, "upstream_body_timeout", res.Code, "the stable code of the error line")
	assert.Equal(t, 200, res.StatusCode, "status of the response that stalled is kept")
	assert.False(t, res.Answered(), "a stalled body is not an answer")
	assert.Less(t, time.Since(start), 3*time.Second)
}

func TestNetworkErrors(t *testing.T) {
	t.Parallel()
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		dead := httptest.NewServer(http.NotFoundHandler())
		url := dead.URL
		dead.Close()
		res := New(fastConfig()).Do(context.Background(), chatCall(url))
		assert.Equal(t, Retriable, res.Verdict)
		assert.Equal(t, CodeNetworkError, res.Code, res.Message)
		assert.Zero(t, res.StatusCode)
	})
	t.Run("EOF mid-body", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"part")
			_ = buf.Flush()
			_ = conn.Close()
		})
		res := New(fastConfig()).Do(context.Background(), chatCall(ts.URL))
		assert.Equal(t, Retriable, res.Verdict)
		assert.Equal(t, CodeNetworkError, res.Code, res.Message)
		assert.Equal(t, 200, res.StatusCode)
	})
	t.Run("connection closed before response", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		})
		res := New(fastConfig()).Do(context.Background(), chatCall(ts.URL))
		assert.Equal(t, Retriable, res.Verdict)
		assert.Equal(t, CodeNetworkError, res.Code, res.Message)
		assert.NotContains(t, res.Message, "Post \"", "URL prefix is stripped")
	})
}

func TestDeadline(t *testing.T) {
	t.Parallel()
	t.Run("clips first-byte wait", func(t *testing.T) {
		t.Parallel()
		var ts *testServer
		ts = newTestServer(t, func(w http.ResponseWriter, r *http.Request) { ts.block(r) })
		call := chatCall(ts.URL)
		call.Deadline = time.Now().Add(50 * time.Millisecond)
		start := time.Now()
		res := New(fastConfig()).Do(context.Background(), call) // FirstByteTimeout is 5s
		assert.Equal(t, Retriable, res.Verdict)
		assert.Equal(t, CodeTimeout, res.Code, res.Message)
		assert.Less(t, time.Since(start), 3*time.Second)
	})
	t.Run("clips body read", func(t *testing.T) {
		t.Parallel()
		var ts *testServer
		ts = newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(200)
			_, _ = io.WriteString(w, "{")
			w.(http.Flusher).Flush()
			ts.block(r)
		})
		call := chatCall(ts.URL)
		call.Deadline = time.Now().Add(80 * time.Millisecond)
		res := New(fastConfig()).Do(context.Background(), call)
		assert.Equal(t, CodeTimeout, res.Code, res.Message)
		assert.Equal(t, 200, res.StatusCode)
	})
	t.Run("already passed: no network call", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {})
		call := chatCall(ts.URL)
		call.Deadline = time.Now().Add(-time.Second)
		res := New(fastConfig()).Do(context.Background(), call)
		assert.Equal(t, Retriable, res.Verdict)
		assert.Equal(t, CodeTimeout, res.Code)
		assert.Zero(t, ts.calls.Load())
	})
	t.Run("caller context deadline", func(t *testing.T) {
		t.Parallel()
		var ts *testServer
		ts = newTestServer(t, func(w http.ResponseWriter, r *http.Request) { ts.block(r) })
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		res := New(fastConfig()).Do(ctx, chatCall(ts.URL))
		assert.Equal(t, Retriable, res.Verdict)
		assert.Equal(t, CodeTimeout, res.Code, res.Message)
	})
	t.Run("far deadline does not interfere", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "{}") })
		call := chatCall(ts.URL)
		call.Deadline = time.Now().Add(time.Minute)
		res := New(fastConfig()).Do(context.Background(), call)
		assert.Equal(t, Success, res.Verdict, res.Message)
	})
}

func TestCancelAbortsPromptly(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	var ts *testServer
	ts = newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		ts.block(r)
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	start := time.Now()
	res := New(fastConfig()).Do(ctx, chatCall(ts.URL))
	assert.Equal(t, CodeCanceled, res.Code, res.Message)
	assert.Equal(t, Permanent, res.Verdict)
	assert.Less(t, time.Since(start), 3*time.Second)
}

func TestCancelDuringBody(t *testing.T) {
	t.Parallel()
	var ts *testServer
	wrote := make(chan struct{})
	ts = newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "{")
		w.(http.Flusher).Flush()
		close(wrote)
		ts.block(r)
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-wrote
		cancel()
	}()
	res := New(fastConfig()).Do(ctx, chatCall(ts.URL))
	assert.Equal(t, CodeCanceled, res.Code, res.Message)
}

func TestAlreadyCanceledContext(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := New(fastConfig()).Do(ctx, chatCall(ts.URL))
	assert.Equal(t, CodeCanceled, res.Code)
	assert.Zero(t, ts.calls.Load())
}

//nolint:paralleltest // the subtests read what the one server last received, so they run in turn
func TestHeadersSent(t *testing.T) {
	var mu sync.Mutex
	var got http.Header
	var gotBody []byte
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, gotBody = r.Header.Clone(), b
		mu.Unlock()
		_, _ = io.WriteString(w, "{}")
	})
	c := New(fastConfig())
	last := func() (http.Header, []byte) {
		mu.Lock()
		defer mu.Unlock()
		return got, gotBody
	}

	t.Run("full set", func(t *testing.T) {
		call := chatCall(ts.URL)
		call.APIKey = "sk-abc"
		call.CustomID = "row-42"
		call.Headers = map[string]string{
			"x-fusillade-batch-id":  "batch_1",
			"X-Bad-Value":           "a\nb",
			"Bad Name":              "v",
			"Authorization":         "Bearer other",
			"Host":                  "evil.example",
			"Content-Type":          "text/plain",
			"X-Fusillade-Custom-Id": "spoof",
			"X-Empty":               "",
		}
		res := c.Do(context.Background(), call)
		require.Equal(t, Success, res.Verdict, res.Message)
		h, body := last()
		assert.Equal(t, "application/json", h.Get("Content-Type"))
		assert.Equal(t, "application/json", h.Get("Accept"))
		assert.Equal(t, "Bearer sk-abc", h.Get("Authorization"))
		assert.Equal(t, "fusillade", h.Get("User-Agent"))
		assert.Equal(t, "req-1", h.Get("X-Fusillade-Request-Id"))
		assert.Equal(t, "row-42", h.Get("X-Fusillade-Custom-Id"))
		assert.Equal(t, "batch_1", h.Get("X-Fusillade-Batch-Id"))
		assert.Empty(t, h.Values("X-Bad-Value"))
		assert.Empty(t, h.Values("X-Empty"))
		assert.Len(t, h.Values("Authorization"), 1)
		assert.Equal(t, string(call.Body), string(body), "non-streamed body sent verbatim")
	})
	t.Run("no key, unsafe custom ids", func(t *testing.T) {
		for _, id := range []string{"a\nb", "a\rb", "caf\u00e9", "tab\there", "nul\x00"} {
			call := chatCall(ts.URL)
			call.CustomID = id
			res := c.Do(context.Background(), call)
			require.Equal(t, Success, res.Verdict, "unsafe custom id is not an error")
			h, _ := last()
			assert.Empty(t, h.Values("Authorization"))
			assert.Empty(t, h.Values("X-Fusillade-Custom-Id"), "custom id %q", id)
		}
	})
	t.Run("messages API: x-api-key and anthropic-version", func(t *testing.T) {
		call := chatCall(ts.URL)
		call.Path = MessagesPath
		call.APIKey = "sk-ant-abc"
		call.Headers = map[string]string{"x-api-key": "spoof"}
		res := c.Do(context.Background(), call)
		require.Equal(t, Success, res.Verdict, res.Message)
		h, _ := last()
		assert.Equal(t, []string{"sk-ant-abc"}, h.Values("X-Api-Key"), "the model's key, never one from the call's headers")
		assert.Empty(t, h.Values("Authorization"))
		assert.Equal(t, DefaultAnthropicVersion, h.Get("Anthropic-Version"))

		call.Headers = map[string]string{"anthropic-version": "2026-10-21"}
		res = c.Do(context.Background(), call)
		require.Equal(t, Success, res.Verdict, res.Message)
		h, _ = last()
		assert.Equal(t, []string{"2026-10-21"}, h.Values("Anthropic-Version"), "a version the call names is sent instead")
	})
	t.Run("x-api-key is protected on every path", func(t *testing.T) {
		call := chatCall(ts.URL)
		call.Headers = map[string]string{"X-Api-Key": "spoof"}
		res := c.Do(context.Background(), call)
		require.Equal(t, Success, res.Verdict, res.Message)
		h, _ := last()
		assert.Empty(t, h.Values("X-Api-Key"))
	})
	t.Run("custom user agent", func(t *testing.T) {
		cfg := fastConfig()
		cfg.UserAgent = "fusillade-worker/1.0"
		res := New(cfg).Do(context.Background(), chatCall(ts.URL))
		require.Equal(t, Success, res.Verdict)
		h, _ := last()
		assert.Equal(t, "fusillade-worker/1.0", h.Get("User-Agent"))
	})
}

func TestConcurrentUseAndConnectionReuse(t *testing.T) {
	t.Parallel()
	var addrs remoteAddrs
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		addrs.add(r)
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	c := New(fastConfig())

	// Sequential calls share one keep-alive connection.
	for i := 0; i < 5; i++ {
		res := c.Do(context.Background(), chatCall(ts.URL))
		require.Equal(t, Success, res.Verdict, res.Message)
	}
	assert.Equal(t, 1, addrs.count(), "sequential calls should reuse the connection")

	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for g := 0; g < 40; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				call := chatCall(ts.URL)
				call.CustomID = "g" + strconv.Itoa(g)
				res := c.Do(context.Background(), call)
				if res.Verdict != Success || string(res.Body) != `{"ok":true}` {
					errs <- res.Code + ": " + res.Message
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		assert.Fail(t, e)
	}
	assert.EqualValues(t, 5+200, ts.calls.Load())
}

func TestCleanMessage(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "bad key [redacted] here", cleanMessage("bad key sk-123 here", "sk-123"))
	long := strings.Repeat("x", 1000)
	assert.LessOrEqual(t, len(cleanMessage(long, "")), maxMessageLen+3)
	assert.Equal(t, "plain", cleanMessage("plain", ""))
}

func TestOutcomeString(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "success", Success.String())
	assert.Equal(t, "retriable", Retriable.String())
	assert.Equal(t, "permanent", Permanent.String())
	assert.Equal(t, "unknown", Verdict(0).String())
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c := New(Config{})
	assert.Equal(t, 540*time.Second, c.firstByteTimeout)
	assert.Equal(t, 300*time.Second, c.bodyTimeout)
	assert.Equal(t, 540*time.Second, c.chunkTimeout)
	assert.EqualValues(t, 32<<20, c.maxBytes)
	assert.Equal(t, "fusillade", c.userAgent)
	assert.True(t, c.retriable[404])
	assert.True(t, c.retriable[499])
	assert.Empty(t, c.streamable)
	tr, ok := c.hc.Transport.(*http.Transport)
	require.True(t, ok)
	assert.Equal(t, 256, tr.MaxIdleConnsPerHost)
	assert.False(t, tr.DisableKeepAlives)
	require.NotNil(t, c.hc.CheckRedirect)
	assert.ErrorIs(t, c.hc.CheckRedirect(nil, nil), http.ErrUseLastResponse)
}

func TestInjectStreamOptions(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{`{"model":"m","messages":[]}`, `{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}`},
		{`{"model":"m","stream":false}`, `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`},
		{`{"stream_options":{"continuous_usage_stats":true,"include_usage":false}}`,
			`{"stream":true,"stream_options":{"continuous_usage_stats":true,"include_usage":true}}`},
		{`{"stream_options":null}`, `{"stream":true,"stream_options":{"include_usage":true}}`},
		{`{"prompt":"<b>&</b>","n":12345678901234567890}`,
			`{"prompt":"<b>&</b>","n":12345678901234567890,"stream":true,"stream_options":{"include_usage":true}}`},
	}
	for _, tc := range cases {
		out, err := injectStreamOptions([]byte(tc.in))
		require.NoError(t, err)
		assert.JSONEq(t, tc.want, string(out))
		assert.NotContains(t, string(out), `\u003c`, "no HTML escaping")
	}
	var m map[string]json.RawMessage
	out, _ := injectStreamOptions([]byte(`{"n":12345678901234567890}`))
	require.NoError(t, json.Unmarshal(out, &m))
	assert.Equal(t, "12345678901234567890", string(m["n"]), "numbers pass through untouched")
}

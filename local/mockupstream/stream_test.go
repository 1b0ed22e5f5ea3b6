package mockupstream

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStreamChatShape(t *testing.T) {
	t.Parallel()
	_, ts := newTestServer(t, Config{})
	url := ts.URL + "/v1/chat/completions"
	plain := decodeObject(t, post(t, url, chatBody("m1", "stream me", nil)).Body)
	wantContent := obj(t, obj(t, arr(t, plain["choices"])[0])["message"])["content"]

	r := post(t, url, chatBody("m1", "stream me", map[string]any{
		"stream": true, "stream_options": map[string]any{"include_usage": true},
	}))
	require.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, "text/event-stream", r.Header.Get("Content-Type"))
	assert.NotEmpty(t, r.Header.Get("x-request-id"))

	events := sseData(t, r.Body)
	require.Greater(t, len(events), 4, "several chunks")
	require.Equal(t, "[DONE]", events[len(events)-1])

	var content strings.Builder
	var finishes int
	for i, ev := range events[:len(events)-2] {
		m := decodeObject(t, []byte(ev))
		assert.Equal(t, "chat.completion.chunk", m["object"])
		assert.Equal(t, "m1", m["model"])
		assert.Contains(t, m, "usage", "include_usage puts usage:null on every chunk")
		assert.Nil(t, m["usage"])
		c := obj(t, arr(t, m["choices"])[0])
		delta := obj(t, c["delta"])
		if i == 0 {
			assert.Equal(t, "assistant", delta["role"])
		} else {
			assert.NotContains(t, delta, "role")
		}
		if s, ok := delta["content"].(string); ok {
			content.WriteString(s)
		}
		if c["finish_reason"] != nil {
			finishes++
			assert.Equal(t, "stop", c["finish_reason"])
			assert.Equal(t, len(events)-3, i, "finish_reason on the last choice chunk")
		}
	}
	assert.Equal(t, 1, finishes)
	assert.Equal(t, wantContent, content.String(), "streamed deltas add up to the plain answer")

	usageChunk := decodeObject(t, []byte(events[len(events)-2]))
	assert.Empty(t, arr(t, usageChunk["choices"]))
	u := obj(t, usageChunk["usage"])
	assert.Equal(t, plain["usage"], u)

	// Without include_usage: no usage chunk and no usage key.
	r = post(t, url, chatBody("m1", "stream me", map[string]any{"stream": true}))
	events = sseData(t, r.Body)
	require.Equal(t, "[DONE]", events[len(events)-1])
	for _, ev := range events[:len(events)-1] {
		m := decodeObject(t, []byte(ev))
		assert.NotContains(t, m, "usage")
		assert.Len(t, arr(t, m["choices"]), 1)
	}
}

func TestStreamCompletionsShape(t *testing.T) {
	t.Parallel()
	_, ts := newTestServer(t, Config{})
	url := ts.URL + "/v1/completions"
	plain := decodeObject(t, post(t, url, map[string]any{"model": "base", "prompt": "Once"}).Body)

	r := post(t, url, map[string]any{"model": "base", "prompt": "Once", "stream": true, "stream_options": map[string]any{"include_usage": true}})
	require.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, "text/event-stream", r.Header.Get("Content-Type"))
	events := sseData(t, r.Body)
	require.Equal(t, "[DONE]", events[len(events)-1])
	var text strings.Builder
	for _, ev := range events[:len(events)-2] {
		m := decodeObject(t, []byte(ev))
		assert.Equal(t, "text_completion", m["object"])
		text.WriteString(obj(t, arr(t, m["choices"])[0])["text"].(string))
	}
	last := obj(t, arr(t, decodeObject(t, []byte(events[len(events)-3]))["choices"])[0])
	assert.Equal(t, "stop", last["finish_reason"])
	assert.Equal(t, obj(t, arr(t, plain["choices"])[0])["text"], text.String())
	assert.Equal(t, plain["usage"], decodeObject(t, []byte(events[len(events)-2]))["usage"])
}

func TestStreamLatencySpread(t *testing.T) {
	t.Parallel()
	const total = 200 * time.Millisecond
	_, ts := newTestServer(t, Config{Latency: Fixed(total)})
	start := time.Now()
	r := post(t, ts.URL+"/v1/chat/completions", chatBody("m1", "slow", map[string]any{"stream": true}))
	elapsed := time.Since(start)
	require.Equal(t, http.StatusOK, r.Status)
	// Each event waits total/len(events), rounded down to the nanosecond.
	assert.GreaterOrEqual(t, elapsed, total-time.Millisecond)
	events := sseData(t, r.Body)
	assert.Equal(t, "[DONE]", events[len(events)-1])
}

func TestSSEErrorDirective(t *testing.T) {
	t.Parallel()
	s, ts := newTestServer(t, Config{})
	r := post(t, ts.URL+"/v1/chat/completions", chatBody("m1", "x", map[string]any{"stream": true, "mock_sse_error": true}))
	require.Equal(t, http.StatusOK, r.Status, "the error arrives after a 200 stream started")
	events := sseData(t, r.Body)
	require.Len(t, events, 3)
	first := decodeObject(t, []byte(events[0]))
	assert.Equal(t, "chat.completion.chunk", first["object"])

	var e struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    int    `json:"code"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(events[1]), &e))
	assert.Equal(t, "engine crashed", e.Error.Message)
	assert.Equal(t, "server_error", e.Error.Type)
	assert.Equal(t, 503, e.Error.Code)
	assert.Equal(t, "[DONE]", events[2])
	assert.Equal(t, int64(1), s.ModelStats("m1").ByStatus[http.StatusOK])

	// Without stream the directive has nothing to act on.
	r = post(t, ts.URL+"/v1/chat/completions", chatBody("m1", "x", map[string]any{"mock_sse_error": true}))
	assert.Equal(t, http.StatusOK, r.Status)
	assert.Contains(t, decodeObject(t, r.Body), "choices")
}

func TestStreamFailuresAnswerJSON(t *testing.T) {
	t.Parallel()
	s, ts := newTestServer(t, Config{})
	url := ts.URL + "/v1/chat/completions"
	r := post(t, url, chatBody("m1", "x", map[string]any{"stream": true, "mock_status": 429, "mock_retry_after": 2}))
	requireOpenAIError(t, r, http.StatusTooManyRequests, "requests")
	assert.Equal(t, "2", r.Header.Get("Retry-After"))

	s.SetErrorRate(1, http.StatusServiceUnavailable)
	requireOpenAIError(t, post(t, url, chatBody("m1", "x", map[string]any{"stream": true})), http.StatusServiceUnavailable, "server_error")
}

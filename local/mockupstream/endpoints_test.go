package mockupstream

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChatCompletionShape(t *testing.T) {
	t.Parallel()
	_, ts := newTestServer(t, Config{})
	r := post(t, ts.URL+"/v1/chat/completions", chatBody("m1", "hello there", nil))
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
	assert.Equal(t, "req_1", r.Header.Get("x-request-id"))

	m := decodeObject(t, r.Body)
	assert.True(t, strings.HasPrefix(m["id"].(string), "chatcmpl-"), m["id"])
	assert.Equal(t, "chat.completion", m["object"])
	assert.Greater(t, m["created"], float64(0))
	assert.Equal(t, "m1", m["model"])
	choices := arr(t, m["choices"])
	require.Len(t, choices, 1)
	c := obj(t, choices[0])
	assert.Equal(t, float64(0), c["index"])
	assert.Equal(t, "stop", c["finish_reason"])
	msg := obj(t, c["message"])
	assert.Equal(t, "assistant", msg["role"])
	content := msg["content"].(string)
	assert.Contains(t, content, "Mock reply")
	u := obj(t, m["usage"])
	assert.Greater(t, u["prompt_tokens"], float64(0))
	assert.Greater(t, u["completion_tokens"], float64(0))
	assert.Equal(t, u["prompt_tokens"].(float64)+u["completion_tokens"].(float64), u["total_tokens"])

	// The answer is a function of the last user message only.
	again := decodeObject(t, post(t, ts.URL+"/v1/chat/completions", chatBody("m1", "hello there", nil)).Body)
	assert.Equal(t, content, obj(t, arr(t, again["choices"])[0])["message"].(map[string]any)["content"])
	other := decodeObject(t, post(t, ts.URL+"/v1/chat/completions", chatBody("m1", "something else", nil)).Body)
	assert.NotEqual(t, content, obj(t, arr(t, other["choices"])[0])["message"].(map[string]any)["content"])

	// Content given as parts reads the same as the plain string.
	parts := post(t, ts.URL+"/v1/chat/completions", map[string]any{
		"model":    "m1",
		"messages": []any{map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": "hello there"}}}},
	})
	require.Equal(t, http.StatusOK, parts.Status)
	assert.Equal(t, content, obj(t, arr(t, decodeObject(t, parts.Body)["choices"])[0])["message"].(map[string]any)["content"])
}

func TestCompletionsShape(t *testing.T) {
	t.Parallel()
	_, ts := newTestServer(t, Config{})
	m := decodeObject(t, post(t, ts.URL+"/v1/completions", map[string]any{"model": "base", "prompt": "Once upon"}).Body)
	assert.True(t, strings.HasPrefix(m["id"].(string), "cmpl-"))
	assert.Equal(t, "text_completion", m["object"])
	assert.Equal(t, "base", m["model"])
	choices := arr(t, m["choices"])
	require.Len(t, choices, 1)
	c := obj(t, choices[0])
	assert.NotEmpty(t, c["text"])
	assert.Equal(t, "stop", c["finish_reason"])
	assert.Contains(t, c, "logprobs")
	u := obj(t, m["usage"])
	assert.Equal(t, u["prompt_tokens"].(float64)+u["completion_tokens"].(float64), u["total_tokens"])

	// One choice per prompt of an array prompt.
	m = decodeObject(t, post(t, ts.URL+"/v1/completions", map[string]any{"model": "base", "prompt": []string{"a", "b"}}).Body)
	choices = arr(t, m["choices"])
	require.Len(t, choices, 2)
	assert.Equal(t, float64(1), obj(t, choices[1])["index"])
	assert.NotEqual(t, obj(t, choices[0])["text"], obj(t, choices[1])["text"])
}

func TestEmbeddingsShape(t *testing.T) {
	t.Parallel()
	_, ts := newTestServer(t, Config{})
	url := ts.URL + "/v1/embeddings"

	m := decodeObject(t, post(t, url, map[string]any{"model": "emb", "input": "hello"}).Body)
	assert.Equal(t, "list", m["object"])
	assert.Equal(t, "emb", m["model"])
	data := arr(t, m["data"])
	require.Len(t, data, 1)
	d := obj(t, data[0])
	assert.Equal(t, "embedding", d["object"])
	assert.Equal(t, float64(0), d["index"])
	vec := arr(t, d["embedding"])
	require.Len(t, vec, 8)
	var norm float64
	for _, x := range vec {
		norm += x.(float64) * x.(float64)
	}
	assert.InDelta(t, 1, norm, 1e-5, "unit vector")
	u := obj(t, m["usage"])
	assert.Greater(t, u["prompt_tokens"], float64(0))
	assert.Equal(t, u["prompt_tokens"], u["total_tokens"])

	m = decodeObject(t, post(t, url, map[string]any{"model": "emb", "input": []string{"a", "b", "hello"}}).Body)
	data = arr(t, m["data"])
	require.Len(t, data, 3)
	assert.Equal(t, float64(2), obj(t, data[2])["index"])
	assert.Equal(t, vec, obj(t, data[2])["embedding"], "same input, same vector")

	// Token-array inputs are accepted too.
	m = decodeObject(t, post(t, url, map[string]any{"model": "emb", "input": [][]int{{1, 2}, {3}}}).Body)
	assert.Len(t, arr(t, m["data"]), 2)

	// base64 is little-endian float32, as OpenAI sends it.
	m = decodeObject(t, post(t, url, map[string]any{"model": "emb", "input": "hello", "encoding_format": "base64"}).Body)
	raw, err := base64.StdEncoding.DecodeString(obj(t, arr(t, m["data"])[0])["embedding"].(string))
	require.NoError(t, err)
	require.Len(t, raw, 32)
	for i, x := range vec {
		got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		assert.InDelta(t, x.(float64), float64(got), 1e-7)
	}

	requireOpenAIError(t, post(t, url, map[string]any{"model": "emb"}), http.StatusBadRequest, "invalid_request_error")
}

func TestResponsesShape(t *testing.T) {
	t.Parallel()
	_, ts := newTestServer(t, Config{})
	url := ts.URL + "/v1/responses"
	for name, input := range map[string]any{
		"string": "tell me a joke",
		"items":  []any{map[string]any{"role": "user", "content": []any{map[string]any{"type": "input_text", "text": "tell me a joke"}}}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := decodeObject(t, post(t, url, map[string]any{"model": "r1", "input": input}).Body)
			assert.True(t, strings.HasPrefix(m["id"].(string), "resp_"))
			assert.Equal(t, "response", m["object"])
			assert.Equal(t, "completed", m["status"])
			assert.Equal(t, "r1", m["model"])
			out := arr(t, m["output"])
			require.Len(t, out, 1)
			msg := obj(t, out[0])
			assert.Equal(t, "message", msg["type"])
			assert.Equal(t, "assistant", msg["role"])
			part := obj(t, arr(t, msg["content"])[0])
			assert.Equal(t, "output_text", part["type"])
			assert.Contains(t, part["text"], "Mock reply")
			u := obj(t, m["usage"])
			assert.Greater(t, u["input_tokens"], float64(0))
			assert.Greater(t, u["output_tokens"], float64(0))
			assert.Equal(t, u["input_tokens"].(float64)+u["output_tokens"].(float64), u["total_tokens"])
		})
	}

	requireOpenAIError(t, post(t, url, map[string]any{"model": "r1", "input": "x", "stream": true}), http.StatusBadRequest, "invalid_request_error")
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	s, ts := newTestServer(t, Config{})

	e := requireOpenAIError(t, post(t, ts.URL+"/v1/models", "{}"), http.StatusNotFound, "invalid_request_error")
	assert.Nil(t, e["code"])
	requireOpenAIError(t, post(t, ts.URL+"/chat/completions", "{}"), http.StatusNotFound, "invalid_request_error")

	resp, err := http.Get(ts.URL + "/v1/chat/completions")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, http.MethodPost, resp.Header.Get("Allow"))

	for name, body := range map[string]string{
		"not json":         "model=m1",
		"truncated":        `{"model": "m1"`,
		"not an object":    `[1, 2]`,
		"null":             `null`,
		"model not string": `{"model": 3}`,
		"bad mock_status":  `{"model": "m1", "mock_status": 302}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			requireOpenAIError(t, post(t, ts.URL+"/v1/chat/completions", body), http.StatusBadRequest, "invalid_request_error")
		})
	}

	// Every request counts globally; only parsed bodies count per model. Checked once the
	// parallel subtests have all finished.
	t.Cleanup(func() {
		st := s.Stats()
		assert.Equal(t, int64(9), st.Calls)
		assert.Equal(t, int64(1), st.Models["m1"].Calls)
		assert.Equal(t, int64(1), st.Models["m1"].ByStatus[http.StatusBadRequest])
	})
}

func TestMessagesShape(t *testing.T) {
	t.Parallel()
	_, ts := newTestServer(t, Config{})
	url := ts.URL + "/v1/messages"
	body := map[string]any{"model": "claude-mock", "max_tokens": 16, "system": "be brief",
		"messages": []any{map[string]any{"role": "user", "content": "hello there"}}}
	r := post(t, url, body)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
	m := decodeObject(t, r.Body)
	assert.True(t, strings.HasPrefix(m["id"].(string), "msg_"), m["id"])
	assert.Equal(t, "message", m["type"])
	assert.Equal(t, "assistant", m["role"])
	assert.Equal(t, "claude-mock", m["model"])
	assert.Equal(t, "end_turn", m["stop_reason"])
	assert.Contains(t, m, "stop_sequence")
	part := obj(t, arr(t, m["content"])[0])
	assert.Equal(t, "text", part["type"])
	assert.Contains(t, part["text"], "Mock reply")
	u := obj(t, m["usage"])
	assert.Greater(t, u["input_tokens"], float64(0))
	assert.Greater(t, u["output_tokens"], float64(0))
	assert.Equal(t, "batch", u["service_tier"])

	// The reply is the chat endpoint's for the same last user message.
	chat := decodeObject(t, post(t, ts.URL+"/v1/chat/completions", chatBody("m1", "hello there", nil)).Body)
	assert.Equal(t, obj(t, arr(t, chat["choices"])[0])["message"].(map[string]any)["content"], part["text"])

	// Failures are Anthropic's envelope.
	body["mock_status"] = 529
	e := post(t, url, body)
	require.Equal(t, 529, e.Status)
	em := decodeObject(t, e.Body)
	assert.Equal(t, "error", em["type"])
	assert.Equal(t, "overloaded_error", obj(t, em["error"])["type"])
	body["mock_status"] = 400
	assert.Equal(t, "invalid_request_error", obj(t, decodeObject(t, post(t, url, body).Body)["error"])["type"])
}

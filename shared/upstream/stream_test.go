package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func streamConfig() Config {
	cfg := fastConfig()
	cfg.StreamablePaths = []string{"/v1/chat/completions", "/v1/completions"}
	return cfg
}

func TestStreamChatReassembly(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var gotBody map[string]any
	var gotAccept string
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		_ = json.Unmarshal(b, &gotBody)
		gotAccept = r.Header.Get("Accept")
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.Header().Set("X-Request-Id", "up-123")
		w.WriteHeader(200)
		// CRLF line endings, a comment, an event field and a field with no
		// space after the colon are all part of the SSE grammar.
		_, _ = io.WriteString(w, ": keep-alive\r\n\r\n")
		_, _ = io.WriteString(w, "event: message\r\n")
		_, _ = io.WriteString(w, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"llama","system_fingerprint":"fp1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}`+"\r\n\r\n")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, `data:{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"llama","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}`+"\n\n")
		_, _ = io.WriteString(w, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"llama","choices":[{"index":0,"delta":{"content":"lo <world> & \"you\""},"finish_reason":null}]}`+"\n\n")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"llama","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\n")
		_, _ = io.WriteString(w, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"llama","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}`+"\n\n")
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	})
	call := chatCall(ts.URL)
	call.Body = []byte(`{"model":"llama","messages":[{"role":"user","content":"hi"}],"temperature":0}`)
	res := New(streamConfig()).Do(context.Background(), call)
	require.Equal(t, Success, res.Verdict, res.Message)
	assert.Equal(t, 200, res.StatusCode)
	assert.Equal(t, "up-123", res.UpstreamRequestID)
	assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
	assert.JSONEq(t, `{
		"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"llama",
		"system_fingerprint":"fp1",
		"choices":[{"index":0,"message":{"role":"assistant","content":"Hello <world> & \"you\"","refusal":null},
		            "logprobs":null,"finish_reason":"stop"}],
		"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}
	}`, string(res.Body))

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, "text/event-stream", gotAccept)
	assert.Equal(t, true, gotBody["stream"])
	assert.Equal(t, map[string]any{"include_usage": true}, gotBody["stream_options"])
	assert.Equal(t, "llama", gotBody["model"])
	assert.Equal(t, float64(0), gotBody["temperature"])
	assert.NotNil(t, gotBody["messages"])
}

func TestStreamChatToolCallsAndMultipleChoices(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		head := `"id":"c2","object":"chat.completion.chunk","created":1,"model":"m"`
		writeSSE(w,
			`{`+head+`,"choices":[{"index":1,"delta":{"role":"assistant","content":"B"}},{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}`,
			`{`+head+`,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}`,
			`{`+head+`,"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]}}]}`,
			`{`+head+`,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]}`,
			`{`+head+`,"choices":[{"index":1,"delta":{"content":"C"},"logprobs":{"content":[{"token":"C","logprob":-0.1}],"refusal":null}}]}`,
			`{`+head+`,"choices":[{"index":1,"delta":{"content":"D"},"logprobs":{"content":[{"token":"D","logprob":-0.2}],"refusal":null},"finish_reason":"length"}]}`,
			`{`+head+`,"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
			`{`+head+`,"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`,
			`[DONE]`,
		)
	})
	res := New(streamConfig()).Do(context.Background(), chatCall(ts.URL))
	require.Equal(t, Success, res.Verdict, res.Message)
	assert.JSONEq(t, `{
		"id":"c2","object":"chat.completion","created":1,"model":"m",
		"choices":[
		  {"index":0,"message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[
		      {"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
		      {"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
		   "logprobs":null,"finish_reason":"tool_calls"},
		  {"index":1,"message":{"role":"assistant","content":"BCD","refusal":null},
		   "logprobs":{"content":[{"token":"C","logprob":-0.1},{"token":"D","logprob":-0.2}],"refusal":null},
		   "finish_reason":"length"}],
		"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}
	}`, string(res.Body))
}

func TestStreamCompletionsReassembly(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		head := `"id":"cmpl-9","object":"text_completion","created":1700000001,"model":"gpt-3.5-turbo-instruct"`
		writeSSE(w,
			`{`+head+`,"choices":[{"index":0,"text":"Once","logprobs":{"tokens":["Once"],"token_logprobs":[-0.5],"top_logprobs":null,"text_offset":[0]},"finish_reason":null}]}`,
			`{`+head+`,"choices":[{"index":0,"text":" upon","logprobs":{"tokens":[" upon"],"token_logprobs":[-0.25],"top_logprobs":null,"text_offset":[4]},"finish_reason":null,"stop_reason":null}]}`,
			`{`+head+`,"choices":[{"index":0,"text":"","logprobs":null,"finish_reason":"stop","stop_reason":"\n"}]}`,
			`{`+head+`,"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}`,
			`[DONE]`,
		)
	})
	call := chatCall(ts.URL)
	call.Path = "/v1/completions"
	call.Body = []byte(`{"model":"gpt-3.5-turbo-instruct","prompt":"tell"}`)
	res := New(streamConfig()).Do(context.Background(), call)
	require.Equal(t, Success, res.Verdict, res.Message)
	assert.JSONEq(t, `{
		"id":"cmpl-9","object":"text_completion","created":1700000001,"model":"gpt-3.5-turbo-instruct",
		"choices":[{"index":0,"text":"Once upon",
		  "logprobs":{"tokens":["Once"," upon"],"token_logprobs":[-0.5,-0.25],"top_logprobs":null,"text_offset":[0,4]},
		  "finish_reason":"stop","stop_reason":"\n"}],
		"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}
	}`, string(res.Body))
}

func TestStreamUnknownShapeJoined(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\ndata: second line\n\n")
		_, _ = io.WriteString(w, "data: {\"type\":\"response.created\"}\n\n")
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	})
	res := New(streamConfig()).Do(context.Background(), chatCall(ts.URL))
	require.Equal(t, Success, res.Verdict, res.Message)
	assert.Equal(t, "first\nsecond line\n{\"type\":\"response.created\"}", string(res.Body))
	assert.Equal(t, "text/event-stream", res.Header.Get("Content-Type"), "joined text is not relabelled as JSON")
}

func TestStreamErrorEvent(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		event   string
		status  int
		outcome Verdict
	}{
		{"code 503", `{"error":{"message":"overloaded","type":"ServiceUnavailable","code":503}}`, 503, Retriable},
		{"code 400", `{"error":{"object":"error","message":"bad input","type":"BadRequestError","param":null,"code":400}}`, 400, Permanent},
		{"string code", `{"error":{"message":"boom","code":"internal_error"}}`, 500, Retriable},
		{"no code", `{"error":{"message":"boom"}}`, 500, Retriable},
		{"code out of range", `{"error":{"message":"x","code":200}}`, 500, Retriable},
		{"fractional code", `{"error":{"message":"x","code":503.5}}`, 500, Retriable},
		{"string error", `{"error":"engine died"}`, 500, Retriable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				writeSSE(w,
					`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"par"}}]}`,
					tc.event,
					`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"never read"}}]}`,
					`[DONE]`,
				)
			})
			res := New(streamConfig()).Do(context.Background(), chatCall(ts.URL))
			assert.Equal(t, tc.status, res.StatusCode)
			assert.Equal(t, tc.outcome, res.Verdict)
			assert.Equal(t, CodeUpstreamStreamError, res.Code)
			assert.JSONEq(t, tc.event, string(res.Body), "body is the error event")
			assert.True(t, res.Answered(), "an error event is the upstream's answer")
		})
	}
}

func TestStreamNullErrorIsNotAnError(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeSSE(w,
			`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","error":null,"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}`,
			`[DONE]`)
	})
	res := New(streamConfig()).Do(context.Background(), chatCall(ts.URL))
	require.Equal(t, Success, res.Verdict, res.Message)
	assert.Contains(t, string(res.Body), `"content":"ok"`)
}

func TestStreamablePathNonSSEAnswer(t *testing.T) {
	t.Parallel()
	t.Run("JSON error keeps status and body", func(t *testing.T) {
		t.Parallel()
		const errBody = `{"error":{"message":"max_tokens too large","type":"invalid_request_error","code":null}}`
		ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			_, _ = io.WriteString(w, errBody)
		})
		res := New(streamConfig()).Do(context.Background(), chatCall(ts.URL))
		assert.Equal(t, 400, res.StatusCode)
		assert.Equal(t, Permanent, res.Verdict)
		assert.Equal(t, CodeHTTPStatus, res.Code)
		assert.Equal(t, errBody, string(res.Body))
	})
	t.Run("SSE-typed error status is read raw", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(429)
			_, _ = io.WriteString(w, `{"error":"slow down"}`)
		})
		res := New(streamConfig()).Do(context.Background(), chatCall(ts.URL))
		assert.Equal(t, 429, res.StatusCode)
		assert.Equal(t, Retriable, res.Verdict)
		assert.Equal(t, 3*time.Second, res.RetryAfter)
		assert.Equal(t, `{"error":"slow down"}`, string(res.Body))
	})
	t.Run("upstream ignored stream flag", func(t *testing.T) {
		t.Parallel()
		const body = `{"id":"x","object":"chat.completion","choices":[]}`
		ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, body)
		})
		res := New(streamConfig()).Do(context.Background(), chatCall(ts.URL))
		assert.Equal(t, Success, res.Verdict)
		assert.Equal(t, body, string(res.Body))
	})
}

func TestStreamWithoutEvents(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeSSE(w, "[DONE]")
	})
	res := New(streamConfig()).Do(context.Background(), chatCall(ts.URL))
	assert.Equal(t, Retriable, res.Verdict)
	assert.Equal(t, CodeUpstreamStreamError, res.Code)
	assert.Equal(t, 200, res.StatusCode)
	assert.False(t, res.Answered(), "a stream without data answered nothing")
}

func TestStreamEndsWithoutDone(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		// The final event is not followed by a blank line either.
		_, _ = io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"a"}}]}`+"\n\n")
		_, _ = io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}]}`)
	})
	res := New(streamConfig()).Do(context.Background(), chatCall(ts.URL))
	require.Equal(t, Success, res.Verdict, res.Message)
	assert.Contains(t, string(res.Body), `"content":"ab"`)
}

func TestStreamTimeouts(t *testing.T) {
	t.Parallel()
	chunk := func(s string) string {
		return `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"` + s + `"}}]}`
	}
	t.Run("first event never arrives", func(t *testing.T) {
		t.Parallel()
		var ts *testServer
		ts = newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			// Headers and comments are not events: the first-byte timer
			// keeps running until real data shows up.
			_, _ = io.WriteString(w, ": processing\n\n")
			w.(http.Flusher).Flush()
			ts.block(r)
		})
		cfg := streamConfig()
		cfg.FirstByteTimeout = 50 * time.Millisecond
		start := time.Now()
		res := New(cfg).Do(context.Background(), chatCall(ts.URL))
		assert.Equal(t, Retriable, res.Verdict)
		assert.Equal(t, CodeFirstByteTimeout, res.Code, res.Message)
		assert.Equal(t, 200, res.StatusCode)
		assert.Less(t, time.Since(start), 3*time.Second)
	})
	t.Run("gap between events", func(t *testing.T) {
		t.Parallel()
		var ts *testServer
		ts = newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			writeSSE(w, chunk("a"))
			ts.block(r)
		})
		cfg := streamConfig()
		cfg.ChunkTimeout = 50 * time.Millisecond
		start := time.Now()
		res := New(cfg).Do(context.Background(), chatCall(ts.URL))
		assert.Equal(t, Retriable, res.Verdict)
		assert.Equal(t, CodeChunkTimeout, res.Code, res.Message)
		assert.Less(t, time.Since(start), 3*time.Second)
	})
	t.Run("first-byte timer stops at first event", func(t *testing.T) {
		t.Parallel()
		// FirstByteTimeout is shorter than the whole stream: once the first
		// event is in, only the chunk gap matters.
		next := make(chan struct{})
		ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			writeSSE(w, chunk("a"))
			<-next
			writeSSE(w, chunk("b"), "[DONE]")
		})
		cfg := streamConfig()
		cfg.FirstByteTimeout = 100 * time.Millisecond
		go func() {
			time.Sleep(250 * time.Millisecond)
			close(next)
		}()
		res := New(cfg).Do(context.Background(), chatCall(ts.URL))
		require.Equal(t, Success, res.Verdict, res.Message)
		assert.Contains(t, string(res.Body), `"content":"ab"`)
	})
	t.Run("steady events reset the chunk timer", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 0; i < 6; i++ {
				fmt.Fprintf(w, "data: %s\n\n", chunk("x"))
				w.(http.Flusher).Flush()
				time.Sleep(40 * time.Millisecond)
			}
			_, _ = io.WriteString(w, "data: [DONE]\n\n")
		})
		cfg := streamConfig()
		cfg.ChunkTimeout = 400 * time.Millisecond // each gap ~40ms; the whole stream ~240ms
		res := New(cfg).Do(context.Background(), chatCall(ts.URL))
		require.Equal(t, Success, res.Verdict, res.Message)
		assert.Contains(t, string(res.Body), `"content":"xxxxxx"`)
	})
	t.Run("body timeout bounds the whole stream", func(t *testing.T) {
		t.Parallel()
		stop := make(chan struct{})
		ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-r.Context().Done():
					return
				case <-stop:
					return
				case <-tick.C:
					fmt.Fprintf(w, "data: %s\n\n", chunk("x"))
					w.(http.Flusher).Flush()
				}
			}
		})
		t.Cleanup(func() { close(stop) })
		cfg := streamConfig()
		cfg.BodyTimeout = 100 * time.Millisecond
		cfg.ChunkTimeout = time.Second
		res := New(cfg).Do(context.Background(), chatCall(ts.URL))
		assert.Equal(t, Retriable, res.Verdict)
		assert.Equal(t, CodeBodyTimeout, res.Code, res.Message)
		assert.False(t, res.Answered())
	})
	t.Run("deadline clips the chunk wait", func(t *testing.T) {
		t.Parallel()
		var ts *testServer
		ts = newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			writeSSE(w, chunk("a"))
			ts.block(r)
		})
		call := chatCall(ts.URL)
		call.Deadline = time.Now().Add(80 * time.Millisecond)
		res := New(streamConfig()).Do(context.Background(), call)
		assert.Equal(t, CodeTimeout, res.Code, res.Message)
	})
}

func TestStreamCapAndReuse(t *testing.T) {
	t.Parallel()
	t.Run("stream over the cap", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 0; i < 100; i++ {
				fmt.Fprintf(w, "data: %s\n\n", strings.Repeat("y", 100))
			}
		})
		cfg := streamConfig()
		cfg.MaxResponseBytes = 1000
		res := New(cfg).Do(context.Background(), chatCall(ts.URL))
		assert.Equal(t, Permanent, res.Verdict)
		assert.Equal(t, CodeResponseTooLarge, res.Code)
		assert.False(t, res.Answered())
	})
	t.Run("streams reuse the connection", func(t *testing.T) {
		t.Parallel()
		var addrs remoteAddrs
		ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			addrs.add(r)
			_, _ = io.Copy(io.Discard, r.Body)
			writeSSE(w,
				`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}`,
				"[DONE]")
		})
		c := New(streamConfig())
		for i := 0; i < 5; i++ {
			res := c.Do(context.Background(), chatCall(ts.URL))
			require.Equal(t, Success, res.Verdict, res.Message)
		}
		assert.Equal(t, 1, addrs.count())
	})
}

func TestSSEReader(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
		want []string
	}{
		{"lf", "data: a\n\ndata: b\n\n", []string{"a", "b"}},
		{"crlf", "data: a\r\n\r\ndata: b\r\n\r\n", []string{"a", "b"}},
		{"cr", "data: a\r\rdata: b\r\r", []string{"a", "b"}},
		{"multi-line data", "data: a\ndata: b\ndata:\n\n", []string{"a\nb\n"}},
		{"no space and extra spaces", "data:a\ndata:  b\n\n", []string{"a\n b"}},
		{"comments and other fields", ": hi\nevent: x\nid: 1\nretry: 5\ndata: a\n\n", []string{"a"}},
		{"blank lines without data", "\n\n\n: c\n\ndata: a\n\n", []string{"a"}},
		{"bom", "\xef\xbb\xbfdata: a\n\n", []string{"a"}},
		{"unterminated last event", "data: a\n\ndata: b", []string{"a", "b"}},
		{"field without colon", "data\n\n", []string{""}},
		{"unknown field ignored", "foo: bar\n\n", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newSSEReader(strings.NewReader(tc.in), 1<<20)
			var got []string
			for {
				ev, err := r.next()
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(t, err)
				got = append(got, ev)
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestReassembleFallbacks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		events []string
		isJSON bool
	}{
		{"plain text", []string{"a", "b"}, false},
		{"mixed kinds", []string{`{"object":"chat.completion.chunk","choices":[]}`, `{"object":"text_completion","choices":[]}`}, false},
		{"unknown object", []string{`{"object":"response.chunk"}`}, false},
		{"no object at all", []string{`{"a":1}`}, false},
		{"array payload", []string{`[1,2]`}, false},
		{"bad field type", []string{`{"object":"chat.completion.chunk","choices":"nope"}`}, false},
		{"usage chunk without object", []string{
			`{"object":"chat.completion.chunk","id":"x","model":"m","created":2,"choices":[{"index":0,"delta":{"content":"hi"}}]}`,
			`{"id":"x","choices":[],"usage":{"total_tokens":1}}`}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body, isJSON := reassemble(tc.events)
			assert.Equal(t, tc.isJSON, isJSON)
			if !tc.isJSON {
				assert.Equal(t, strings.Join(tc.events, "\n"), string(body))
			} else {
				assert.True(t, json.Valid(body))
			}
		})
	}
}

func TestReassembleChatDefaults(t *testing.T) {
	t.Parallel()
	// No role, no created, reasoning fields, no usage.
	body, ok := reassemble([]string{
		`{"id":"r","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"reasoning_content":"think "}}]}`,
		`{"id":"r","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"reasoning_content":"more","content":"answer"},"finish_reason":"stop"}]}`,
	})
	require.True(t, ok)
	assert.JSONEq(t, `{"id":"r","object":"chat.completion","created":0,"model":"m",
		"choices":[{"index":0,"message":{"role":"assistant","content":"answer","refusal":null,"reasoning_content":"think more"},
		"logprobs":null,"finish_reason":"stop"}],"usage":null}`, string(body))
}

// Package mockupstream is a fake OpenAI-compatible upstream (vLLM, OpenAI…)
// for local runs, tests and benchmarks. It answers the inference endpoints
// the batch runner forwards to and measures what the runner does to it:
// concurrency per model, calls by status, aborted requests and the exact
// requests received.
//
// Served routes (POST only; other methods get 405, other paths 404):
//
//	/v1/chat/completions   chat.completion, or SSE chat.completion.chunk when "stream": true
//	/v1/completions        text_completion, streamable the same way
//	/v1/embeddings         list of 8-dimensional embeddings ("float" or "base64")
//	/v1/responses          a minimal completed response object (no streaming)
//	/v1/messages           an Anthropic Message (no streaming); its errors are Anthropic's envelope
//
// The "model" field of the JSON body is the key for per-model accounting.
// Answers are deterministic: content is derived from a hash of the last user
// message and token counts from byte lengths, so tests can compare them.
//
// Besides the configured latency and error rate, a request can steer its own
// fate with top-level body keys, which real upstreams would ignore. Because
// the batch runner forwards a user's line unchanged, tests can put these
// directives straight into batch input lines:
//
//	"mock_status": 503           answer that status (4xx/5xx) with an OpenAI error body
//	"mock_retry_after": 3        with a failure above, also send "Retry-After: 3"
//	"mock_fail_times": 2         the first 2 requests carrying the same "mock_key"
//	"mock_key": "k1"             fail with mock_status (default 500), later ones succeed
//	"mock_delay_ms": 1500        latency for this request instead of the configured one
//	"mock_block": "name"         wait until Release("name") (see WaitBlocked)
//	"mock_sse_error": true       with "stream": one chunk, then an in-stream error event
//	"mock_hang_body": true       send headers and part of the body, then stall
//	"mock_redirect": "http://…"  answer 302 with that Location
//	"mock_big_body_bytes": N     answer 200 with a JSON body of exactly N bytes
//
// Order of evaluation: the failure counters of mock_fail_times are taken when
// the request arrives; then the request waits on mock_block, then for its
// latency (spread over the events when it streams); then the first matching
// outcome wins: redirect, directive failure, injected error (ErrorRate),
// hang, big body, stream, plain JSON.
package mockupstream

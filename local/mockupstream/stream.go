package mockupstream

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// nullJSON is what OpenAI puts in "usage" of every chunk but the last when
// stream_options.include_usage is set.
var nullJSON = json.RawMessage("null")

type chatChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"`
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []chatChunkChoice `json:"choices"`
	Usage   any               `json:"usage,omitempty"`
}

type chatChunkChoice struct {
	Index        int       `json:"index"`
	Delta        chatDelta `json:"delta"`
	Logprobs     any       `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type chatDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// sseEngineError is the in-stream error vLLM emits when the engine dies
// after the response has started.
var sseEngineError = apiError{Error: apiErrorBody{Message: "engine crashed", Type: "server_error", Code: 503}}

// streamEvents builds the data payloads of a streamed answer, without the
// final [DONE]: chat sends a role chunk, one chunk per word, a chunk with
// finish_reason and, when asked, a usage chunk with no choices; completions
// send the words of each choice, then finish_reason, then usage.
func streamEvents(ep endpoint, req *requestBody, seq int64) []any {
	now := time.Now().Unix()
	suffix := strconv.FormatInt(seq, 10)
	withUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	var chunkUsage any
	if withUsage {
		chunkUsage = nullJSON
	}
	var events []any

	if ep == epChat {
		prompt, lastUser := chatText(req.Messages)
		reply := replyText(lastUser)
		chunk := func(d chatDelta, finish *string) chatChunk {
			return chatChunk{
				ID: "chatcmpl-mock" + suffix, Object: "chat.completion.chunk", Created: now, Model: req.Model,
				Choices: []chatChunkChoice{{Delta: d, FinishReason: finish}}, Usage: chunkUsage,
			}
		}
		events = append(events, chunk(chatDelta{Role: "assistant", Content: ptr("")}, nil))
		for _, piece := range words(reply) {
			events = append(events, chunk(chatDelta{Content: ptr(piece)}, nil))
		}
		events = append(events, chunk(chatDelta{}, ptr("stop")))
		if withUsage {
			events = append(events, chatChunk{
				ID: "chatcmpl-mock" + suffix, Object: "chat.completion.chunk", Created: now, Model: req.Model,
				Choices: []chatChunkChoice{}, Usage: newUsage(tokens(prompt), tokens(reply)),
			})
		}
		return events
	}

	chunk := func(i int, text string, finish *string) textCompletion {
		return textCompletion{
			ID: "cmpl-mock" + suffix, Object: "text_completion", Created: now, Model: req.Model,
			Choices: []textChoice{{Index: i, Text: text, FinishReason: finish}}, Usage: chunkUsage,
		}
	}
	var pt, ct int
	for i, p := range inputList(req.Prompt) {
		reply := replyText(p)
		pt += tokens(p)
		ct += tokens(reply)
		for _, piece := range words(reply) {
			events = append(events, chunk(i, piece, nil))
		}
		events = append(events, chunk(i, "", ptr("stop")))
	}
	if withUsage {
		events = append(events, textCompletion{
			ID: "cmpl-mock" + suffix, Object: "text_completion", Created: now, Model: req.Model,
			Choices: []textChoice{}, Usage: newUsage(pt, ct),
		})
	}
	return events
}

// words splits s into pieces that concatenate back to s, one word each with
// its leading space, like token deltas.
func words(s string) []string {
	var out []string
	for len(s) > 0 {
		i := strings.IndexByte(s[1:], ' ')
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i+1])
		s = s[i+1:]
	}
	return out
}

// writeStream answers with server-sent events. Headers go out at once, as
// vLLM does, and the request's latency is spread evenly before each event so
// the total matches a non-streamed answer.
func (c *call) writeStream(ep endpoint, req *requestBody, delay time.Duration) {
	events := streamEvents(ep, req, c.seq)
	if req.SSEError {
		events = []any{events[0], sseEngineError}
	}
	step := delay / time.Duration(len(events))
	c.startStream()
	for _, ev := range events {
		if !c.pause(step) || !c.writeEvent(ev) {
			return
		}
	}
	// vLLM ends the stream with [DONE] even after an in-stream error.
	c.writeData([]byte("[DONE]"))
}

func (c *call) startStream() {
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	c.writeHeader(http.StatusOK)
	_ = c.rc.Flush()
}

func (c *call) writeEvent(v any) bool { return c.writeData(c.marshal(v)) }

// writeData sends one "data:" event and flushes it; false means the client
// is gone.
func (c *call) writeData(payload []byte) bool {
	buf := make([]byte, 0, len(payload)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, payload...)
	buf = append(buf, '\n', '\n')
	if _, err := c.w.Write(buf); err != nil {
		c.aborted = true
		return false
	}
	if err := c.rc.Flush(); err != nil {
		c.aborted = true
		return false
	}
	return true
}

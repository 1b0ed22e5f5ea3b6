package upstream

import (
	"encoding/json"
	"sort"
	"strings"
)

// Stream object kinds understood by reassemble.
const (
	objectChatChunk      = "chat.completion.chunk"
	objectChatCompletion = "chat.completion"
	objectTextCompletion = "text_completion"
)

// reassemble turns the data payloads of a stream into the body the same
// request would have produced without streaming. Chat chunks become a
// chat.completion and text_completion chunks a text_completion. Anything
// else (or a stream mixing kinds, or a payload that does not decode) is
// returned as the payloads joined with newlines, and isJSON is false.
func reassemble(events []string) (body []byte, isJSON bool) {
	var (
		out []byte
		err error
	)
	switch streamKind(events) {
	case objectChatChunk:
		out, err = reassembleChat(events)
	case objectTextCompletion:
		out, err = reassembleText(events)
	default:
		return []byte(strings.Join(events, "\n")), false
	}
	if err != nil {
		return []byte(strings.Join(events, "\n")), false
	}
	return out, true
}

// streamKind returns the single "object" value shared by the events, or ""
// when any event is not a JSON object or the events disagree. Events with
// no "object" field (rare, but seen on usage-only chunks of some servers)
// do not count against the kind.
func streamKind(events []string) string {
	kind := ""
	for _, e := range events {
		if e == "" || e[0] != '{' {
			return ""
		}
		var head struct {
			Object string `json:"object"`
		}
		if json.Unmarshal([]byte(e), &head) != nil {
			return ""
		}
		switch {
		case head.Object == "":
		case kind == "":
			kind = head.Object
		case kind != head.Object:
			return ""
		}
	}
	return kind
}

// streamHeader holds the top-level fields common to both chunk kinds.
type streamHeader struct {
	ID                string          `json:"id"`
	Created           json.RawMessage `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint json.RawMessage `json:"system_fingerprint"`
	ServiceTier       json.RawMessage `json:"service_tier"`
	Usage             json.RawMessage `json:"usage"`
}

// headerAcc keeps the first non-empty identity fields and the last usage.
// vLLM with continuous usage stats repeats usage on every chunk, so the
// last one is the total.
type headerAcc struct {
	id                string
	created           json.RawMessage
	model             string
	systemFingerprint json.RawMessage
	serviceTier       json.RawMessage
	usage             json.RawMessage
}

func (h *headerAcc) add(s streamHeader) {
	if h.id == "" {
		h.id = s.ID
	}
	if h.model == "" {
		h.model = s.Model
	}
	if isNull(h.created) {
		h.created = s.Created
	}
	if isNull(h.systemFingerprint) {
		h.systemFingerprint = s.SystemFingerprint
	}
	if isNull(h.serviceTier) {
		h.serviceTier = s.ServiceTier
	}
	if !isNull(s.Usage) {
		h.usage = s.Usage
	}
}

func (h *headerAcc) createdOrZero() json.RawMessage {
	if isNull(h.created) {
		return json.RawMessage("0")
	}
	return h.created
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

func nonNull(raw json.RawMessage) json.RawMessage {
	if isNull(raw) {
		return nil
	}
	return raw
}

// logprobsAcc concatenates logprobs objects field by field: every array
// field (chat: content, refusal; completions: tokens, token_logprobs,
// top_logprobs, text_offset) is appended, other fields keep their last
// value.
type logprobsAcc struct {
	seen    bool
	arrays  map[string][]json.RawMessage
	scalars map[string]json.RawMessage
}

func (l *logprobsAcc) add(raw json.RawMessage) {
	if isNull(raw) {
		return
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil || obj == nil {
		return
	}
	if !l.seen {
		l.seen = true
		l.arrays = map[string][]json.RawMessage{}
		l.scalars = map[string]json.RawMessage{}
	}
	for k, v := range obj {
		var arr []json.RawMessage
		if json.Unmarshal(v, &arr) == nil && arr != nil {
			l.arrays[k] = append(l.arrays[k], arr...)
			continue
		}
		l.scalars[k] = v
	}
}

func (l *logprobsAcc) result() (json.RawMessage, error) {
	if !l.seen {
		return nil, nil
	}
	out := make(map[string]json.RawMessage, len(l.arrays)+len(l.scalars))
	for k, v := range l.scalars {
		out[k] = v
	}
	for k, arr := range l.arrays {
		b, err := marshalNoEscape(arr)
		if err != nil {
			return nil, err
		}
		out[k] = b
	}
	return marshalNoEscape(out)
}

// ---- chat.completion.chunk ----

type chatChunk struct {
	streamHeader
	Choices []struct {
		Index *int `json:"index"`
		Delta struct {
			Role             string           `json:"role"`
			Content          *string          `json:"content"`
			Refusal          *string          `json:"refusal"`
			ReasoningContent *string          `json:"reasoning_content"`
			Reasoning        *string          `json:"reasoning"`
			ToolCalls        []toolCallDelta  `json:"tool_calls"`
			FunctionCall     *functionCallOut `json:"function_call"`
		} `json:"delta"`
		Logprobs     json.RawMessage `json:"logprobs"`
		FinishReason json.RawMessage `json:"finish_reason"`
		StopReason   json.RawMessage `json:"stop_reason"`
	} `json:"choices"`
}

type toolCallDelta struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type functionCallOut struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type toolCallOut struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Function functionCallOut `json:"function"`
}

type chatMessageOut struct {
	Role             string           `json:"role"`
	Content          *string          `json:"content"`
	Refusal          *string          `json:"refusal"`
	ReasoningContent *string          `json:"reasoning_content,omitempty"`
	Reasoning        *string          `json:"reasoning,omitempty"`
	ToolCalls        []toolCallOut    `json:"tool_calls,omitempty"`
	FunctionCall     *functionCallOut `json:"function_call,omitempty"`
}

type chatChoiceOut struct {
	Index        int             `json:"index"`
	Message      chatMessageOut  `json:"message"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason json.RawMessage `json:"finish_reason"`
	StopReason   json.RawMessage `json:"stop_reason,omitempty"`
}

type chatCompletionOut struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           json.RawMessage `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint json.RawMessage `json:"system_fingerprint,omitempty"`
	ServiceTier       json.RawMessage `json:"service_tier,omitempty"`
	Choices           []chatChoiceOut `json:"choices"`
	Usage             json.RawMessage `json:"usage"`
}

// optText concatenates string deltas and remembers whether any arrived, so
// "never sent" (null) differs from "sent empty" ("").
type optText struct {
	b   strings.Builder
	set bool
}

func (t *optText) add(s *string) {
	if s != nil {
		t.b.WriteString(*s)
		t.set = true
	}
}

func (t *optText) ptr() *string {
	if !t.set {
		return nil
	}
	s := t.b.String()
	return &s
}

type toolCallAcc struct {
	id, typ, name string
	args          strings.Builder
}

type chatChoiceAcc struct {
	role                                  string
	content, refusal, reasoningC, reasonR optText
	toolCalls                             map[int]*toolCallAcc
	fn                                    *functionCallOut
	logprobs                              logprobsAcc
	finishReason, stopReason              json.RawMessage
}

func reassembleChat(events []string) ([]byte, error) {
	var head headerAcc
	choices := map[int]*chatChoiceAcc{}
	for _, e := range events {
		var ch chatChunk
		if err := json.Unmarshal([]byte(e), &ch); err != nil {
			return nil, err
		}
		head.add(ch.streamHeader)
		for pos, c := range ch.Choices {
			idx := pos
			if c.Index != nil {
				idx = *c.Index
			}
			acc := choices[idx]
			if acc == nil {
				acc = &chatChoiceAcc{toolCalls: map[int]*toolCallAcc{}}
				choices[idx] = acc
			}
			d := c.Delta
			if acc.role == "" {
				acc.role = d.Role
			}
			acc.content.add(d.Content)
			acc.refusal.add(d.Refusal)
			acc.reasoningC.add(d.ReasoningContent)
			acc.reasonR.add(d.Reasoning)
			for tpos, tc := range d.ToolCalls {
				ti := tpos
				if tc.Index != nil {
					ti = *tc.Index
				}
				t := acc.toolCalls[ti]
				if t == nil {
					t = &toolCallAcc{}
					acc.toolCalls[ti] = t
				}
				// id and type arrive once; some servers repeat them, so the
				// first value wins. Name and arguments are fragments.
				if t.id == "" {
					t.id = tc.ID
				}
				if t.typ == "" {
					t.typ = tc.Type
				}
				t.name += tc.Function.Name
				t.args.WriteString(tc.Function.Arguments)
			}
			if d.FunctionCall != nil {
				if acc.fn == nil {
					acc.fn = &functionCallOut{}
				}
				acc.fn.Name += d.FunctionCall.Name
				acc.fn.Arguments += d.FunctionCall.Arguments
			}
			acc.logprobs.add(c.Logprobs)
			if !isNull(c.FinishReason) {
				acc.finishReason = c.FinishReason
			}
			if !isNull(c.StopReason) {
				acc.stopReason = c.StopReason
			}
		}
	}

	out := chatCompletionOut{
		ID:                head.id,
		Object:            objectChatCompletion,
		Created:           head.createdOrZero(),
		Model:             head.model,
		SystemFingerprint: nonNull(head.systemFingerprint),
		ServiceTier:       nonNull(head.serviceTier),
		Choices:           make([]chatChoiceOut, 0, len(choices)),
		Usage:             nonNull(head.usage),
	}
	for _, idx := range sortedKeys(choices) {
		acc := choices[idx]
		role := acc.role
		if role == "" {
			role = "assistant"
		}
		msg := chatMessageOut{
			Role:             role,
			Content:          acc.content.ptr(),
			Refusal:          acc.refusal.ptr(),
			ReasoningContent: acc.reasoningC.ptr(),
			Reasoning:        acc.reasonR.ptr(),
			FunctionCall:     acc.fn,
		}
		for _, ti := range sortedKeys(acc.toolCalls) {
			t := acc.toolCalls[ti]
			typ := t.typ
			if typ == "" {
				typ = "function"
			}
			msg.ToolCalls = append(msg.ToolCalls, toolCallOut{
				ID:       t.id,
				Type:     typ,
				Function: functionCallOut{Name: t.name, Arguments: t.args.String()},
			})
		}
		lp, err := acc.logprobs.result()
		if err != nil {
			return nil, err
		}
		out.Choices = append(out.Choices, chatChoiceOut{
			Index:        idx,
			Message:      msg,
			Logprobs:     lp,
			FinishReason: nonNull(acc.finishReason),
			StopReason:   nonNull(acc.stopReason),
		})
	}
	return marshalNoEscape(out)
}

// ---- text_completion ----

type textChunk struct {
	streamHeader
	Choices []struct {
		Index        *int            `json:"index"`
		Text         *string         `json:"text"`
		Logprobs     json.RawMessage `json:"logprobs"`
		FinishReason json.RawMessage `json:"finish_reason"`
		StopReason   json.RawMessage `json:"stop_reason"`
	} `json:"choices"`
}

type textChoiceOut struct {
	Index        int             `json:"index"`
	Text         string          `json:"text"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason json.RawMessage `json:"finish_reason"`
	StopReason   json.RawMessage `json:"stop_reason,omitempty"`
}

type textCompletionOut struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           json.RawMessage `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint json.RawMessage `json:"system_fingerprint,omitempty"`
	Choices           []textChoiceOut `json:"choices"`
	Usage             json.RawMessage `json:"usage"`
}

type textChoiceAcc struct {
	text                     strings.Builder
	logprobs                 logprobsAcc
	finishReason, stopReason json.RawMessage
}

func reassembleText(events []string) ([]byte, error) {
	var head headerAcc
	choices := map[int]*textChoiceAcc{}
	for _, e := range events {
		var ch textChunk
		if err := json.Unmarshal([]byte(e), &ch); err != nil {
			return nil, err
		}
		head.add(ch.streamHeader)
		for pos, c := range ch.Choices {
			idx := pos
			if c.Index != nil {
				idx = *c.Index
			}
			acc := choices[idx]
			if acc == nil {
				acc = &textChoiceAcc{}
				choices[idx] = acc
			}
			if c.Text != nil {
				acc.text.WriteString(*c.Text)
			}
			acc.logprobs.add(c.Logprobs)
			if !isNull(c.FinishReason) {
				acc.finishReason = c.FinishReason
			}
			if !isNull(c.StopReason) {
				acc.stopReason = c.StopReason
			}
		}
	}
	out := textCompletionOut{
		ID:                head.id,
		Object:            objectTextCompletion,
		Created:           head.createdOrZero(),
		Model:             head.model,
		SystemFingerprint: nonNull(head.systemFingerprint),
		Choices:           make([]textChoiceOut, 0, len(choices)),
		Usage:             nonNull(head.usage),
	}
	for _, idx := range sortedKeys(choices) {
		acc := choices[idx]
		lp, err := acc.logprobs.result()
		if err != nil {
			return nil, err
		}
		out.Choices = append(out.Choices, textChoiceOut{
			Index:        idx,
			Text:         acc.text.String(),
			Logprobs:     lp,
			FinishReason: nonNull(acc.finishReason),
			StopReason:   nonNull(acc.stopReason),
		})
	}
	return marshalNoEscape(out)
}

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}

package mockupstream

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"time"
)

// embeddingDims is the size of the mock's embeddings: big enough to look
// like a vector, small enough to keep bodies and tests light.
const embeddingDims = 8

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func newUsage(prompt, completion int) *usage {
	return &usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
}

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage"`
}

type chatChoice struct {
	Index        int           `json:"index"`
	Message      assistantText `json:"message"`
	Logprobs     any           `json:"logprobs"`
	FinishReason string        `json:"finish_reason"`
}

type assistantText struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type textCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []textChoice `json:"choices"`
	Usage   any          `json:"usage,omitempty"`
}

type textChoice struct {
	Index        int     `json:"index"`
	Text         string  `json:"text"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

type embeddingList struct {
	Object string         `json:"object"`
	Data   []embedding    `json:"data"`
	Model  string         `json:"model"`
	Usage  embeddingUsage `json:"usage"`
}

type embedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string
}

type embeddingUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

type response struct {
	ID                string           `json:"id"`
	Object            string           `json:"object"`
	CreatedAt         int64            `json:"created_at"`
	Status            string           `json:"status"`
	Model             string           `json:"model"`
	Output            []responseOutput `json:"output"`
	Error             any              `json:"error"`
	IncompleteDetails any              `json:"incomplete_details"`
	Usage             responseUsage    `json:"usage"`
}

type responseOutput struct {
	Type    string            `json:"type"`
	ID      string            `json:"id"`
	Status  string            `json:"status"`
	Role    string            `json:"role"`
	Content []responseContent `json:"content"`
}

type responseContent struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	Annotations []any  `json:"annotations"`
}

type responseUsage struct {
	InputTokens         int            `json:"input_tokens"`
	InputTokensDetails  map[string]int `json:"input_tokens_details"`
	OutputTokens        int            `json:"output_tokens"`
	OutputTokensDetails map[string]int `json:"output_tokens_details"`
	TotalTokens         int            `json:"total_tokens"`
}

// message is Anthropic's Message (/v1/messages), with every key its SDKs type.
type message struct {
	ID           string           `json:"id"`
	Type         string           `json:"type"`
	Role         string           `json:"role"`
	Model        string           `json:"model"`
	Content      []messageContent `json:"content"`
	StopReason   string           `json:"stop_reason"`
	StopSequence *string          `json:"stop_sequence"`
	Usage        messageUsage     `json:"usage"`
}

type messageContent struct {
	Type      string `json:"type"`
	Text      string `json:"text"`
	Citations []any  `json:"citations"`
}

type messageUsage struct {
	InputTokens              int    `json:"input_tokens"`
	OutputTokens             int    `json:"output_tokens"`
	CacheCreationInputTokens *int   `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int   `json:"cache_read_input_tokens"`
	ServiceTier              string `json:"service_tier"`
}

// answer builds the non-streaming success body of ep.
func answer(ep endpoint, req *requestBody, seq int64) any {
	now := time.Now().Unix()
	suffix := strconv.FormatInt(seq, 10)
	switch ep {
	case epChat:
		prompt, lastUser := chatText(req.Messages)
		reply := replyText(lastUser)
		return chatCompletion{
			ID: "chatcmpl-mock" + suffix, Object: "chat.completion", Created: now, Model: req.Model,
			Choices: []chatChoice{{Message: assistantText{Role: "assistant", Content: reply}, FinishReason: "stop"}},
			Usage:   newUsage(tokens(prompt), tokens(reply)),
		}
	case epCompletions:
		prompts := inputList(req.Prompt)
		out := textCompletion{ID: "cmpl-mock" + suffix, Object: "text_completion", Created: now, Model: req.Model}
		var pt, ct int
		for i, p := range prompts {
			reply := replyText(p)
			out.Choices = append(out.Choices, textChoice{Index: i, Text: reply, FinishReason: ptr("stop")})
			pt += tokens(p)
			ct += tokens(reply)
		}
		out.Usage = newUsage(pt, ct)
		return out
	case epEmbeddings:
		inputs := inputList(req.Input)
		out := embeddingList{Object: "list", Model: req.Model, Data: make([]embedding, len(inputs))}
		for i, in := range inputs {
			out.Data[i] = embedding{Object: "embedding", Index: i, Embedding: embed(in, req.EncodingFormat == "base64")}
			out.Usage.PromptTokens += tokens(in)
		}
		out.Usage.TotalTokens = out.Usage.PromptTokens
		return out
	case epMessages:
		prompt, lastUser := chatText(req.Messages)
		prompt = contentText(req.System) + prompt
		reply := replyText(lastUser)
		return message{ID: "msg_mock" + suffix, Type: "message", Role: "assistant", Model: req.Model,
			Content:    []messageContent{{Type: "text", Text: reply}},
			StopReason: "end_turn",
			Usage:      messageUsage{InputTokens: tokens(prompt), OutputTokens: tokens(reply), ServiceTier: "batch"}}
	default:
		prompt, lastUser := responsesText(req.Input)
		prompt = req.Instructions + prompt
		reply := replyText(lastUser)
		in, outTok := tokens(prompt), tokens(reply)
		return response{
			ID: "resp_mock" + suffix, Object: "response", CreatedAt: now, Status: "completed", Model: req.Model,
			Output: []responseOutput{{
				Type: "message", ID: "msg_mock" + suffix, Status: "completed", Role: "assistant",
				Content: []responseContent{{Type: "output_text", Text: reply, Annotations: []any{}}},
			}},
			Usage: responseUsage{
				InputTokens: in, InputTokensDetails: map[string]int{"cached_tokens": 0},
				OutputTokens: outTok, OutputTokensDetails: map[string]int{"reasoning_tokens": 0},
				TotalTokens: in + outTok,
			},
		}
	}
}

// tokens approximates a token count from bytes (about four per token, as
// for English text with GPT tokenizers), deterministically.
func tokens(s string) int {
	if s == "" {
		return 0
	}
	return (len(s) + 3) / 4
}

// replyText is the mock's deterministic answer to prompt; the digest lets a
// test tell which line an output belongs to.
func replyText(prompt string) string {
	return fmt.Sprintf("Mock reply %08x: the quick brown fox jumps over the lazy dog.", digest(prompt))
}

func digest(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// chatText returns all message text (for prompt tokens) and the text of the
// last user message (for the reply digest).
func chatText(msgs []chatMessage) (all, lastUser string) {
	var b strings.Builder
	for _, m := range msgs {
		t := contentText(m.Content)
		b.WriteString(t)
		if m.Role == "user" {
			lastUser = t
		}
	}
	return b.String(), lastUser
}

// contentText flattens a message content: a string, or an array of parts
// whose "text" fields are concatenated; anything else counts as its JSON.
func contentText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) == nil {
		var b strings.Builder
		for _, p := range parts {
			b.WriteString(p.Text)
		}
		return b.String()
	}
	return string(raw)
}

// inputList splits a completions prompt or embeddings input into its items:
// a string is one item, an array of strings or of token arrays is one item
// per element, and anything else (a single token array) is one item.
func inputList(raw json.RawMessage) []string {
	if len(raw) == 0 || string(raw) == "null" {
		return []string{""}
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) == nil && len(items) > 0 && (items[0][0] == '"' || items[0][0] == '[') {
		out := make([]string, len(items))
		for i, it := range items {
			if json.Unmarshal(it, &out[i]) != nil {
				out[i] = string(it)
			}
		}
		return out
	}
	return []string{string(raw)}
}

// responsesText reads a Responses API input: a string, or a list of items
// whose content is a string or a list of parts.
func responsesText(raw json.RawMessage) (all, lastUser string) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, s
	}
	var items []chatMessage
	if json.Unmarshal(raw, &items) == nil {
		return chatText(items)
	}
	return string(raw), string(raw)
}

// embed derives a unit-length vector from text, so equal inputs embed
// equally. base64 is what OpenAI sends for encoding_format "base64":
// little-endian float32s.
func embed(text string, asBase64 bool) any {
	h := fnv.New64a()
	h.Write([]byte(text))
	x := h.Sum64()
	v := make([]float32, embeddingDims)
	var norm float64
	for i := range v {
		x = splitmix64(x)
		f := float64(x>>11)/(1<<53)*2 - 1
		v[i] = float32(f)
		norm += f * f
	}
	norm = math.Sqrt(norm)
	for i := range v {
		if norm > 0 {
			v[i] = float32(float64(v[i]) / norm)
		}
	}
	if !asBase64 {
		return v
	}
	buf := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(f))
	}
	return base64.StdEncoding.EncodeToString(buf)
}

func ptr[T any](v T) *T { return &v }

package mockupstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// maxRequestBody caps what the mock reads of a request (64 MiB), far above
// any single batch line, so a runaway client cannot exhaust test memory.
const maxRequestBody = 64 << 20

type endpoint int

const (
	epChat endpoint = iota + 1
	epCompletions
	epEmbeddings
	epResponses
	epMessages
)

var routes = map[string]endpoint{
	"/v1/chat/completions": epChat,
	"/v1/completions":      epCompletions,
	"/v1/embeddings":       epEmbeddings,
	"/v1/responses":        epResponses,
	"/v1/messages":         epMessages,
}

// requestBody holds the fields of any of the four endpoints that the mock
// reads; everything else in the body is ignored, as a real upstream would.
type requestBody struct {
	Model          string          `json:"model"`
	Stream         bool            `json:"stream"`
	StreamOptions  *streamOptions  `json:"stream_options"`
	Messages       []chatMessage   `json:"messages"`
	Prompt         json.RawMessage `json:"prompt"`
	Input          json.RawMessage `json:"input"`
	Instructions   string          `json:"instructions"`
	EncodingFormat string          `json:"encoding_format"`
	System         json.RawMessage `json:"system"`
	directives
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// directives are the mock_* body keys described in the package doc.
type directives struct {
	Status       int      `json:"mock_status"`
	RetryAfter   *int     `json:"mock_retry_after"`
	FailTimes    int      `json:"mock_fail_times"`
	Key          string   `json:"mock_key"`
	DelayMS      *float64 `json:"mock_delay_ms"`
	Block        string   `json:"mock_block"`
	SSEError     bool     `json:"mock_sse_error"`
	HangBody     bool     `json:"mock_hang_body"`
	Redirect     string   `json:"mock_redirect"`
	BigBodyBytes int      `json:"mock_big_body_bytes"`
}

// call is the state of one request while it is handled.
type call struct {
	s       *Server
	w       http.ResponseWriter
	r       *http.Request
	rc      *http.ResponseController
	path    string
	start   time.Time
	seq     int64
	id      string
	model   string
	stream  bool
	tracked bool // body parsed: counted per model
	rec     *Recorded

	status      int
	wroteHeader bool
	aborted     bool
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{s: s, w: w, r: r, rc: http.NewResponseController(w), path: r.URL.Path, start: time.Now()}
	ep, known := routes[r.URL.Path]

	var (
		body   []byte
		req    requestBody
		badReq string
		bigReq bool
	)
	if known && r.Method == http.MethodPost {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			bigReq = true
		case err != nil:
			// The client went away (or broke the stream) mid-body.
			c.aborted = r.Context().Err() != nil
			badReq = "could not read request body: " + err.Error()
		default:
			if msg := parseBody(body, &req); msg != "" {
				badReq = msg
			} else {
				c.tracked = true
				c.model = req.Model
				c.stream = req.Stream
				badReq = req.directives.validate()
			}
		}
	}

	s.begin(c, r, body)
	defer s.end(c)
	c.id = requestID(c.seq)
	w.Header().Set("x-request-id", c.id)

	switch {
	case !known:
		c.writeError(http.StatusNotFound, fmt.Sprintf("Unknown request URL: %s %s", r.Method, r.URL.Path))
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		c.writeError(http.StatusMethodNotAllowed, fmt.Sprintf("Method %s not allowed on %s; use POST", r.Method, r.URL.Path))
	case bigReq:
		c.writeError(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", maxRequestBody))
	case c.aborted:
		// Nobody is left to answer.
	case badReq != "":
		c.writeError(http.StatusBadRequest, badReq)
	default:
		s.serve(c, ep, &req)
	}
}

// parseBody decodes a request body and returns a client-facing message when
// it is not a JSON object with fields of the expected types.
func parseBody(body []byte, req *requestBody) string {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return "We could not parse the JSON body of your request: expected a JSON object."
	}
	if err := json.Unmarshal(body, req); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return fmt.Sprintf("Invalid type for '%s': expected %s, got %s.", typeErr.Field, typeErr.Type, typeErr.Value)
		}
		return "We could not parse the JSON body of your request: " + err.Error()
	}
	return ""
}

// validate rejects directives the mock cannot honour, so a typo in a test
// fails loudly instead of silently answering 200.
func (d *directives) validate() string {
	if s := d.Status; s != 0 && (s < 200 || s > 599 || (s >= 300 && s < 400)) {
		return fmt.Sprintf("mock_status must be 2xx, 4xx or 5xx, got %d", s)
	}
	return ""
}

// serve answers a well-formed request on one of the four endpoints.
func (s *Server) serve(c *call, ep endpoint, req *requestBody) {
	d := &req.directives
	latency, errRate, errStatus := s.config()
	rng := s.requestRand(c.seq)
	// The error draw comes first and always happens, so a request's latency
	// sample does not depend on whether an error rate is configured.
	injectErr := rng.Float64() < errRate
	var delay time.Duration
	switch {
	case d.DelayMS != nil:
		delay = time.Duration(*d.DelayMS * float64(time.Millisecond))
	case latency != nil:
		delay = latency.Sample(rng)
	}
	delay = max(delay, 0)

	// Failure counters are taken on arrival so that "the first N requests"
	// means arrival order even when the requests then wait.
	failStatus := 0
	if d.FailTimes > 0 {
		if s.takeFailure(d.Key, d.FailTimes) {
			failStatus = d.Status
			if failStatus < 400 {
				failStatus = defaultErrorStatus
			}
		}
	} else if d.Status >= 400 {
		failStatus = d.Status
	}

	if d.Block != "" && !c.waitGate(d.Block) {
		return
	}

	streamable := ep == epChat || ep == epCompletions
	plainStream := req.Stream && streamable && d.Redirect == "" && failStatus == 0 && !injectErr &&
		!d.HangBody && d.BigBodyBytes <= 0
	if plainStream {
		c.writeStream(ep, req, delay)
		return
	}
	if !c.pause(delay) {
		return
	}

	switch {
	case d.Redirect != "":
		c.w.Header().Set("Location", d.Redirect)
		c.writeHeader(http.StatusFound)
	case failStatus != 0:
		if d.RetryAfter != nil {
			c.w.Header().Set("Retry-After", strconv.Itoa(*d.RetryAfter))
		}
		c.writeError(failStatus, fmt.Sprintf("mock failure (status %d requested by the request)", failStatus))
	case injectErr:
		c.writeError(errStatus, fmt.Sprintf("mock injected error (status %d)", errStatus))
	case req.Stream && (ep == epResponses || ep == epMessages):
		c.writeError(http.StatusBadRequest, "the mock upstream does not stream "+c.path)
	case ep == epEmbeddings && (len(req.Input) == 0 || string(req.Input) == "null"):
		c.writeError(http.StatusBadRequest, "'input' is a required property")
	case d.HangBody:
		c.hang(ep, req)
	case d.BigBodyBytes > 0:
		c.writeBytes(http.StatusOK, padJSON(c.marshal(answer(ep, req, c.seq)), d.BigBodyBytes))
	default:
		c.writeBytes(http.StatusOK, c.marshal(answer(ep, req, c.seq)))
	}
}

// waitGate waits on mock_block name; false means the request must stop.
func (c *call) waitGate(name string) bool {
	open := c.s.gate(name)
	if open == nil {
		return true
	}
	defer c.s.leave(name)
	return waitFor(c, open)
}

// pause sleeps for d unless the client leaves or the server closes first;
// false means the request must stop.
func (c *call) pause(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	return waitFor(c, t.C)
}

// waitFor waits for ch, the end of the request context (counted as an
// abort) or Server.Close (answered 503 when nothing was sent yet).
func waitFor[T any](c *call, ch <-chan T) bool {
	select {
	case <-ch:
		return true
	case <-c.r.Context().Done():
		c.aborted = true
		return false
	case <-c.s.closed:
		if !c.wroteHeader {
			c.writeError(http.StatusServiceUnavailable, "mock upstream is shutting down")
		}
		return false
	}
}

// hang sends the status line, headers and part of the body, then stalls
// until the client gives up (or the server closes), to exercise body-read
// timeouts.
func (c *call) hang(ep endpoint, req *requestBody) {
	if req.Stream && (ep == epChat || ep == epCompletions) {
		events := streamEvents(ep, req, c.seq)
		c.startStream()
		if !c.writeEvent(events[0]) {
			return
		}
	} else {
		full := c.marshal(answer(ep, req, c.seq))
		h := c.w.Header()
		h.Set("Content-Type", "application/json")
		// Announcing the full length makes the client expect the rest.
		h.Set("Content-Length", strconv.Itoa(len(full)))
		c.writeHeader(http.StatusOK)
		if _, err := c.w.Write(full[:len(full)/2]); err != nil {
			c.aborted = true
			return
		}
		_ = c.rc.Flush()
	}
	waitFor[struct{}](c, nil) // a nil channel never fires: only the client or Close ends this
}

func (c *call) writeHeader(status int) {
	c.status = status
	c.wroteHeader = true
	c.w.WriteHeader(status)
}

func (c *call) writeBytes(status int, body []byte) {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	c.writeHeader(status)
	if _, err := c.w.Write(body); err != nil && c.r.Context().Err() != nil {
		c.aborted = true
	}
}

func (c *call) marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the mock's own types are marshalled; failing here is a bug.
		panic(fmt.Sprintf("mockupstream: marshal response: %v", err))
	}
	return b
}

// apiError is the OpenAI error envelope.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    any     `json:"code"`
}

func (c *call) writeError(status int, msg string) {
	if c.path == "/v1/messages" {
		c.writeBytes(status, c.marshal(anthropicErrorBody(status, msg)))
		return
	}
	c.writeBytes(status, c.marshal(errorBody(status, msg)))
}

// anthropicError is Anthropic's error envelope, which /v1/messages answers.
type anthropicError struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// anthropicErrorBody builds the error Anthropic would send for status.
func anthropicErrorBody(status int, msg string) anthropicError {
	e := anthropicError{Type: "error"}
	e.Error.Message = msg
	switch {
	case status == http.StatusUnauthorized:
		e.Error.Type = "authentication_error"
	case status == http.StatusForbidden:
		e.Error.Type = "permission_error"
	case status == http.StatusNotFound:
		e.Error.Type = "not_found_error"
	case status == http.StatusTooManyRequests:
		e.Error.Type = "rate_limit_error"
	case status == 529:
		e.Error.Type = "overloaded_error"
	case status >= 500:
		e.Error.Type = "api_error"
	default:
		e.Error.Type = "invalid_request_error"
	}
	return e
}

// errorBody builds the error OpenAI would send for status; the type and
// code are the ones clients branch on (429 carries OpenAI's rate-limit code).
func errorBody(status int, msg string) apiError {
	e := apiErrorBody{Message: msg, Type: "invalid_request_error"}
	switch {
	case status == http.StatusUnauthorized:
		e.Type = "authentication_error"
	case status == http.StatusForbidden:
		e.Type = "permission_error"
	case status == http.StatusTooManyRequests:
		e.Type, e.Code = "requests", "rate_limit_exceeded"
	case status >= 500:
		e.Type = "server_error"
	}
	return apiError{Error: e}
}

// padJSON grows a JSON object to exactly n bytes by appending a
// "mock_padding" string member, which decoders of the real shape ignore. A
// body already at least n bytes long is returned as is.
func padJSON(obj []byte, n int) []byte {
	const member = `,"mock_padding":""`
	pad := n - len(obj) - len(member)
	if pad < 0 {
		return obj
	}
	out := make([]byte, 0, n)
	out = append(out, obj[:len(obj)-1]...)
	out = append(out, member[:len(member)-1]...)
	out = append(out, bytes.Repeat([]byte{'x'}, pad)...)
	out = append(out, '"', '}')
	return out
}

// Package upstream sends one request of a batch to an OpenAI-compatible
// inference server (vLLM, SGLang, OpenAI, ...) and turns whatever happens
// into a Result with a stable outcome and failure code.
//
// The package is pure HTTP logic: it builds the outbound call from
// server-configured pieces only (the host always comes from Call.BaseURL),
// bounds every phase of the exchange with a timeout, caps how much of the
// response it reads, reassembles server-sent-event streams into the ordinary
// JSON body, and classifies failures so the caller can decide whether to
// retry. It knows nothing about storage or queues.
//
// A Client is safe for concurrent use and should be shared so that
// connections to the upstream are reused.
package upstream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultFirstByteTimeout = 540 * time.Second
	DefaultBodyTimeout      = 300 * time.Second
	DefaultChunkTimeout     = 540 * time.Second
	DefaultMaxResponseBytes = 32 << 20 // 32 MiB
	DefaultUserAgent        = "fusillade"

	// defaultMaxIdleConnsPerHost is high because one upstream usually serves
	// every concurrent call of a worker; the net/http default of 2 would make
	// most calls open a fresh connection.
	defaultMaxIdleConnsPerHost = 256

	// drainTimeout bounds how long we keep reading after a stream's [DONE]
	// so the connection can go back to the pool. A well-behaved server ends
	// the response right after [DONE], so this almost never waits.
	drainTimeout = 100 * time.Millisecond
	// drainLimit bounds how many trailing bytes we are willing to discard
	// for the sake of connection reuse.
	drainLimit = 64 << 10

	// maxMessageLen keeps Result.Message short enough to log and store.
	maxMessageLen = 300
)

// DefaultRetriableStatuses are the statuses retried in addition to 408, 429
// and 5xx when Config.RetriableStatuses is nil ({404, 499}). Some upstreams answer 404
// while a model is still loading, and 499 is what nginx-style proxies log
// when they gave up on a slow backend. A function so that no caller can
// change the default for everyone.
func DefaultRetriableStatuses() []int { return []int{404, 499} }

// Failure codes reported in Result.Code. They are stable: callers store and
// match on them, so they are declared in shared/domain; these are their names here.
const (
	CodeHTTPStatus          = domain.CodeHTTPStatus
	CodeNetworkError        = domain.CodeNetworkError
	CodeTimeout             = domain.CodeTimeout
	CodeFirstByteTimeout    = domain.CodeFirstByteTimeout
	CodeBodyTimeout         = domain.CodeUpstreamBodyTimeout
	CodeChunkTimeout        = domain.CodeChunkTimeout
	CodeResponseTooLarge    = domain.CodeResponseTooLarge
	CodeInvalidRequest      = domain.CodeInvalidRequest
	CodeCanceled            = domain.CodeCanceled
	CodeUpstreamStreamError = domain.CodeUpstreamStreamError
)

// Verdict is the caller-facing verdict of a call (the engine turns it into a domain.Outcome,
// the request's next state). The zero value is not a
// valid verdict, so a Result that was never filled in is never mistaken for
// a success.
type Verdict int

const (
	// Success: the upstream answered 2xx and the body was read in full.
	Success Verdict = iota + 1
	// Retriable: the same call may succeed later (5xx, 429, timeouts,
	// network trouble, ...).
	Retriable
	// Permanent: repeating the same call will not help (4xx, redirects,
	// oversized response, a call that could not be built, caller cancel).
	Permanent
)

func (o Verdict) String() string {
	switch o {
	case Success:
		return "success"
	case Retriable:
		return "retriable"
	case Permanent:
		return "permanent"
	default:
		return "unknown"
	}
}

// Config tunes a Client. Zero values mean "use the default".
type Config struct {
	// FirstByteTimeout bounds connecting, sending the request and receiving
	// the response headers; on streamed calls it also covers the wait for
	// the first SSE event (time to first token). Default 540s.
	FirstByteTimeout time.Duration
	// BodyTimeout bounds reading the whole body once headers arrived, for
	// streamed calls too. Default 300s.
	BodyTimeout time.Duration
	// ChunkTimeout is the longest allowed gap between two SSE events on a
	// streamed call. Default 540s.
	ChunkTimeout time.Duration
	// MaxResponseBytes caps the bytes read from the upstream (after
	// transparent decompression). A 2xx body over the cap fails with
	// response_too_large (Permanent). Default 32 MiB.
	MaxResponseBytes int64
	// RetriableStatuses are retried in addition to 408, 429 and 5xx, which
	// always are. nil means the default {404, 499}; an empty
	// non-nil slice means none.
	RetriableStatuses []int
	// StreamablePaths are exact Call.Path values that are sent as SSE
	// ("stream":true plus "stream_options":{"include_usage":true} injected
	// into the body) and reassembled into the ordinary JSON body. Streaming
	// keeps long generations from sitting silently behind proxies and load
	// balancers that cut idle connections. Default none.
	StreamablePaths []string
	// UserAgent is sent as User-Agent. Default "fusillade".
	UserAgent string
	// Transport carries the requests. nil means a tuned clone of
	// http.DefaultTransport (keep-alives on, MaxIdleConnsPerHost 256).
	Transport http.RoundTripper
}

// Call is one outbound request.
type Call struct {
	// BaseURL comes from server configuration, e.g. "http://vllm:8000" or
	// "https://api.openai.com". It must be http or https with a host and
	// carry no user info, query or fragment.
	BaseURL string
	// Path is one of the allow-listed endpoint paths, e.g.
	// "/v1/chat/completions". It is joined to BaseURL with url.JoinPath
	// semantics, so a base path prefix is kept. It must start with "/" and
	// contain no "..", "?", "#", "//" or "%".
	Path string
	// APIKey is sent as "Authorization: Bearer <key>" when non-empty; to Anthropic's Messages
	// API (Path MessagesPath) as "x-api-key: <key>", with anthropic-version.
	APIKey string
	// Body is the JSON object sent as the request body.
	Body []byte
	// RequestID is sent as X-Fusillade-Request-Id when header-safe.
	RequestID string
	// CustomID is sent as X-Fusillade-Custom-Id only when header-safe;
	// otherwise it is silently omitted, because custom ids are user input.
	CustomID string
	// Headers are extra headers (e.g. x-fusillade-batch-id). Entries whose
	// name is not a valid token, whose value is not header-safe, or that
	// would override a header this package controls are dropped.
	Headers map[string]string
	// Deadline is a hard limit for the whole call (e.g. the function's
	// remaining time minus a margin); every timeout is clipped to it.
	// Reaching it reports code "timeout". Zero means none.
	Deadline time.Time
}

// Result describes what happened. It is always filled in; Do never panics
// on upstream misbehaviour and returns no separate error.
type Result struct {
	// StatusCode is the HTTP status, or the status derived from an SSE error
	// event; 0 when no HTTP response was received.
	StatusCode int
	// Body is the response body: the reassembled JSON for streamed calls,
	// the raw body otherwise (also for non-2xx answers).
	Body []byte
	// Header holds the response headers, nil when there was no response.
	Header http.Header
	// UpstreamRequestID is the upstream's x-request-id, when present.
	UpstreamRequestID string
	// Verdict is Success, Retriable or Permanent; never the zero value.
	Verdict Verdict
	// Code is a stable failure code (see the Code* constants); empty on
	// Success.
	Code string
	// Message is a short human-readable explanation. It never contains the
	// API key.
	Message string
	// RetryAfter is the upstream's requested back-off on 429/503/529, 0 if none.
	RetryAfter time.Duration
	// Duration is the wall time Do spent.
	Duration time.Duration

	// answered is set when StatusCode and Body are the upstream's whole answer (see Answered).
	answered bool
}

// Answered reports whether the upstream's answer was received whole: a success, or a failure
// status with its body (also one reported by an SSE error event). A call that got a status line
// but not the answer (over the size cap, a body that stalled, broke off or a stream without data)
// was not answered, whatever StatusCode says: like a call that got no response, it is described
// by Code and Message only.
func (r Result) Answered() bool { return r.answered }

// StatusOverloaded is Anthropic's 529 (overloaded_error): a 5xx, so retried, with its
// Retry-After honoured like a 429's or a 503's.
const StatusOverloaded = 529

// Client sends Calls. It is immutable after New and safe for concurrent use.
type Client struct {
	hc               *http.Client
	firstByteTimeout time.Duration
	bodyTimeout      time.Duration
	chunkTimeout     time.Duration
	maxBytes         int64
	retriable        map[int]bool
	streamable       map[string]bool
	userAgent        string
}

// New builds a Client, applying defaults to zero-valued Config fields.
func New(cfg Config) *Client {
	c := &Client{
		firstByteTimeout: orDuration(cfg.FirstByteTimeout, DefaultFirstByteTimeout),
		bodyTimeout:      orDuration(cfg.BodyTimeout, DefaultBodyTimeout),
		chunkTimeout:     orDuration(cfg.ChunkTimeout, DefaultChunkTimeout),
		maxBytes:         cfg.MaxResponseBytes,
		retriable:        map[int]bool{},
		streamable:       map[string]bool{},
		userAgent:        cfg.UserAgent,
	}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxResponseBytes
	}
	if c.userAgent == "" || !HeaderSafe(c.userAgent) {
		c.userAgent = DefaultUserAgent
	}
	statuses := cfg.RetriableStatuses
	if statuses == nil {
		statuses = DefaultRetriableStatuses()
	}
	for _, s := range statuses {
		c.retriable[s] = true
	}
	for _, p := range cfg.StreamablePaths {
		c.streamable[p] = true
	}
	rt := cfg.Transport
	if rt == nil {
		rt = newTransport()
	}
	c.hc = &http.Client{
		Transport: rt,
		// Redirects are never followed: the host must come from server
		// configuration, and a redirect could point the API key elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		// No http.Client.Timeout: Do enforces per-phase timeouts itself.
	}
	return c
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 2 * defaultMaxIdleConnsPerHost
	t.MaxIdleConnsPerHost = defaultMaxIdleConnsPerHost
	t.IdleConnTimeout = 90 * time.Second
	t.DisableKeepAlives = false
	// Response-header waiting is bounded by FirstByteTimeout in Do; a
	// transport-level limit would fire with a less specific error.
	t.ResponseHeaderTimeout = 0
	return t
}

// Sentinel causes attached to the request context so a failed read can be
// attributed to the timer that fired.
var (
	errFirstByteTimeout = errors.New("no response before the first-byte timeout")
	errBodyTimeout      = errors.New("body not received before the body timeout")
	errChunkTimeout     = errors.New("no stream event within the chunk timeout")
	errDeadline         = errors.New("call deadline reached")
	errDrainDone        = errors.New("drain finished")
	errTooLarge         = errors.New("response exceeds the size cap")
)

// Do performs the call. It never returns an error: every failure is
// reported through Result.Verdict and Result.Code.
func (c *Client) Do(ctx context.Context, call Call) (res Result) {
	start := time.Now()
	defer func() {
		res.Duration = time.Since(start)
		res.Message = cleanMessage(res.Message, call.APIKey)
	}()
	if ctx == nil {
		ctx = context.Background()
	}

	stream := c.streamable[call.Path]
	target, err := buildURL(call.BaseURL, call.Path)
	if err != nil {
		return permanent(CodeInvalidRequest, err.Error())
	}
	body := call.Body
	if stream {
		if body, err = injectStreamOptions(call.Body); err != nil {
			return permanent(CodeInvalidRequest, err.Error())
		}
	}
	if call.APIKey != "" && !HeaderSafe(call.APIKey) {
		return permanent(CodeInvalidRequest, "API key contains characters not allowed in a header")
	}

	if err := ctx.Err(); err != nil {
		return parentContextResult(ctx, "before sending")
	}
	if !call.Deadline.IsZero() && !start.Before(call.Deadline) {
		return Result{Verdict: Retriable, Code: CodeTimeout, Message: "call deadline already passed before sending"}
	}

	// Context layering: caller ctx -> hard deadline -> phase timers. Each
	// timer cancels with its own cause, so whichever limit ends the call is
	// the one reported. Clipping every timeout to the deadline falls out of
	// the layering: the deadline cancels the shared context first.
	base := ctx
	if !call.Deadline.IsZero() {
		var stop context.CancelFunc
		base, stop = context.WithDeadlineCause(ctx, call.Deadline, errDeadline)
		defer stop()
	}
	reqCtx, cancel := context.WithCancelCause(base)
	defer cancel(nil)

	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return permanent(CodeInvalidRequest, "cannot build request")
	}
	c.setHeaders(req.Header, call, stream)

	firstByte := time.AfterFunc(c.firstByteTimeout, func() { cancel(errFirstByteTimeout) })
	defer firstByte.Stop()

	resp, err := c.hc.Do(req)
	if err != nil {
		return c.errorResult(ctx, reqCtx, err, "waiting for response headers")
	}
	defer resp.Body.Close()

	sse := stream && isSuccess(resp.StatusCode) && isEventStream(resp.Header)
	if !sse {
		// Headers are in; for a plain body the first-byte phase is over.
		firstByte.Stop()
	}
	bodyTimer := time.AfterFunc(c.bodyTimeout, func() { cancel(errBodyTimeout) })
	defer bodyTimer.Stop()

	res = Result{
		StatusCode:        resp.StatusCode,
		Header:            resp.Header,
		UpstreamRequestID: resp.Header.Get("X-Request-Id"),
	}
	if sse {
		return c.readStream(ctx, reqCtx, cancel, resp, firstByte, res)
	}
	return c.readPlain(ctx, reqCtx, resp, res)
}

// readPlain reads a non-streamed body (or any non-2xx/non-SSE answer) and
// classifies it by status.
func (c *Client) readPlain(parent, reqCtx context.Context, resp *http.Response, res Result) Result {
	ok := isSuccess(resp.StatusCode)
	if ok && resp.ContentLength > c.maxBytes {
		// Refuse before reading anything: the answer is known to be too big.
		return tooLarge(res, c.maxBytes)
	}
	var buf bytes.Buffer
	if resp.ContentLength > 0 && resp.ContentLength <= c.maxBytes {
		buf.Grow(int(resp.ContentLength))
	}
	_, err := buf.ReadFrom(newCappedReader(resp.Body, c.maxBytes))
	truncated := false
	if err != nil {
		if !errors.Is(err, errTooLarge) {
			failed := c.errorResult(parent, reqCtx, err, "reading the response body")
			failed.StatusCode, failed.Header, failed.UpstreamRequestID = res.StatusCode, res.Header, res.UpstreamRequestID
			failed.Body = buf.Bytes()
			return failed
		}
		if ok {
			return tooLarge(res, c.maxBytes)
		}
		// For an error status the status is what matters for retrying; an
		// oversized error page is cut at the cap rather than turned into a
		// permanent failure.
		truncated = true
	}
	res.Body = buf.Bytes()
	return c.classifyStatus(res, CodeHTTPStatus, truncated)
}

// classifyStatus fills Verdict, Code, Message and RetryAfter from
// res.StatusCode. code is the failure code used for non-2xx statuses.
func (c *Client) classifyStatus(res Result, code string, truncated bool) Result {
	res.answered = true
	res.Verdict = c.verdictFor(res.StatusCode)
	if res.Verdict == Success {
		res.Code, res.Message = "", ""
		return res
	}
	res.Code = code
	if code == CodeUpstreamStreamError {
		res.Message = "upstream stream reported an error (status " + itoa(res.StatusCode) + ")"
	} else {
		res.Message = "upstream returned HTTP " + itoa(res.StatusCode)
	}
	if res.StatusCode >= 300 && res.StatusCode < 400 {
		res.Message += " (redirects are not followed)"
	}
	if truncated {
		res.Message += "; error body truncated at the size cap"
	}
	if res.Header != nil && (res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable || res.StatusCode == StatusOverloaded) {
		res.RetryAfter = ParseRetryAfter(res.Header, time.Now())
	}
	return res
}

func (c *Client) verdictFor(status int) Verdict {
	switch {
	case isSuccess(status):
		return Success
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests,
		status >= 500 && status <= 599, c.retriable[status]:
		return Retriable
	default:
		return Permanent
	}
}

// errorResult turns a transport or read error into a Result. parent is the
// caller's context, reqCtx the one carrying the timer causes.
func (c *Client) errorResult(parent, reqCtx context.Context, err error, phase string) Result {
	if errors.Is(err, errTooLarge) {
		return Result{Verdict: Permanent, Code: CodeResponseTooLarge,
			Message: "response exceeds " + itoa64(c.maxBytes) + " bytes"}
	}
	if reqCtx.Err() != nil {
		switch cause := context.Cause(reqCtx); {
		case errors.Is(cause, errFirstByteTimeout):
			return Result{Verdict: Retriable, Code: CodeFirstByteTimeout,
				Message: "first-byte timeout (" + c.firstByteTimeout.String() + ") while " + phase}
		case errors.Is(cause, errBodyTimeout):
			return Result{Verdict: Retriable, Code: CodeBodyTimeout,
				Message: "body timeout (" + c.bodyTimeout.String() + ") while " + phase}
		case errors.Is(cause, errChunkTimeout):
			return Result{Verdict: Retriable, Code: CodeChunkTimeout,
				Message: "chunk timeout (" + c.chunkTimeout.String() + ") while " + phase}
		case errors.Is(cause, errDeadline):
			return Result{Verdict: Retriable, Code: CodeTimeout,
				Message: "call deadline reached while " + phase}
		}
		if parent.Err() != nil {
			return parentContextResult(parent, phase)
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return Result{Verdict: Retriable, Code: CodeTimeout, Message: "timeout while " + phase + ": " + describe(err)}
	}
	return Result{Verdict: Retriable, Code: CodeNetworkError, Message: "network error while " + phase + ": " + describe(err)}
}

// parentContextResult reports the caller's own cancellation or deadline.
// A caller cancel is Permanent with code "canceled": the caller chose to
// stop and decides what happens next. The caller's deadline is a timeout.
func parentContextResult(ctx context.Context, phase string) Result {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return Result{Verdict: Retriable, Code: CodeTimeout, Message: "caller deadline exceeded " + phase}
	}
	return Result{Verdict: Permanent, Code: CodeCanceled, Message: "call canceled by caller " + phase}
}

func permanent(code, msg string) Result {
	return Result{Verdict: Permanent, Code: code, Message: msg}
}

func tooLarge(res Result, limit int64) Result {
	res.Body = nil
	res.Verdict = Permanent
	res.Code = CodeResponseTooLarge
	res.Message = "response exceeds " + itoa64(limit) + " bytes"
	return res
}

func isSuccess(status int) bool { return status >= 200 && status <= 299 }

func isEventStream(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && strings.EqualFold(mt, "text/event-stream")
}

// describe renders an error without the `Post "url":` prefix that net/http
// adds, keeping messages short.
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "connection closed mid-response"
	}
	return err.Error()
}

// cleanMessage removes the API key should any error text echo it and keeps
// the message short.
func cleanMessage(msg, apiKey string) string {
	if apiKey != "" {
		msg = strings.ReplaceAll(msg, apiKey, "[redacted]")
	}
	if len(msg) > maxMessageLen {
		msg = strings.ToValidUTF8(msg[:maxMessageLen], "") + "..."
	}
	return msg
}

package fakesqs

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// DefaultAccountID is the account id used in queue URLs and ARNs unless
	// WithAccountID overrides it. It matches the value other local AWS
	// emulators use, so ARNs written into configuration work unchanged.
	DefaultAccountID = "000000000000"
	// DefaultRegion is the region used in queue ARNs unless WithRegion
	// overrides it.
	DefaultRegion = "us-east-1"

	// maxRequestBody bounds how much of a request body is read. A batch may
	// carry up to 1 MiB of payload, which JSON escaping can inflate several
	// times; 16 MiB leaves headroom while still refusing runaway uploads.
	maxRequestBody = 16 << 20

	// realClockRecheck bounds how long a long-polling receive sleeps without
	// re-examining its queue when the real clock is in use. Wake-ups are
	// normally driven by events and exact deadlines; this is only a safety
	// net, so it can be generous.
	realClockRecheck = time.Second
	// injectedClockRecheck is the same bound when a test clock is injected.
	// Deadlines measured on a test clock say nothing about how long to sleep
	// in real time, so waiters poll the clock this often instead.
	injectedClockRecheck = 50 * time.Millisecond
)

// Server is an in-memory emulation of Amazon SQS standard queues that speaks
// the AWS JSON 1.0 protocol used by current AWS SDKs. It is safe for
// concurrent use and implements http.Handler.
//
// Locking: mu guards the queue registry and each queue has its own lock. A
// queue lock may be held while taking mu (to resolve a dead-letter queue),
// never the reverse, and two queue locks are never held at once.
type Server struct {
	accountID string
	region    string
	now       func() time.Time
	recheck   time.Duration
	log       *slog.Logger

	mu     sync.RWMutex
	queues map[string]*queue // keyed by queue name

	requests map[string]*opCounter // by action, for Requests
}

var _ http.Handler = (*Server)(nil)

// Option configures a Server.
type Option func(*Server)

// WithAccountID sets the account id that appears in queue URLs and ARNs.
// Default: DefaultAccountID ("000000000000").
func WithAccountID(id string) Option {
	return func(s *Server) {
		if id != "" {
			s.accountID = id
		}
	}
}

// WithRegion sets the region that appears in queue ARNs.
// Default: DefaultRegion ("us-east-1").
func WithRegion(r string) Option {
	return func(s *Server) {
		if r != "" {
			s.region = r
		}
	}
}

// WithClock replaces time.Now for everything the queues measure: delays,
// visibility timeouts, retention, receive timestamps. Long polling still
// waits on real timers, but re-reads the injected clock at least every 50ms
// while waiting so that a test advancing the clock wakes receivers promptly.
func WithClock(now func() time.Time) Option {
	return func(s *Server) {
		if now != nil {
			s.now = now
			s.recheck = injectedClockRecheck
		}
	}
}

// WithLogger sets the logger used for per-request debug lines and internal
// errors. Default: a logger that discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) {
		if l != nil {
			s.log = l
		}
	}
}

// New returns an SQS emulator; serve it with net/http
// (httptest.NewServer(New()) in tests).
func New(opts ...Option) *Server {
	s := &Server{
		accountID: DefaultAccountID,
		region:    DefaultRegion,
		now:       time.Now,
		recheck:   realClockRecheck,
		log:       slog.New(slog.DiscardHandler),
		queues:    make(map[string]*queue),
		requests:  newCounters(),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// handlerFunc serves one SQS operation. It returns the value to encode as the
// JSON response body, or an error (an *apiError for anything the client did
// wrong).
type handlerFunc func(s *Server, r *http.Request, body []byte) (any, error)

var handlers = map[string]handlerFunc{
	"CreateQueue":                  (*Server).createQueue,
	"GetQueueUrl":                  (*Server).getQueueURL,
	"ListQueues":                   (*Server).listQueues,
	"DeleteQueue":                  (*Server).deleteQueue,
	"PurgeQueue":                   (*Server).purgeQueue,
	"GetQueueAttributes":           (*Server).getQueueAttributes,
	"SetQueueAttributes":           (*Server).setQueueAttributes,
	"ListDeadLetterSourceQueues":   (*Server).listDeadLetterSourceQueues,
	"TagQueue":                     (*Server).tagQueue,
	"UntagQueue":                   (*Server).untagQueue,
	"ListQueueTags":                (*Server).listQueueTags,
	"SendMessage":                  (*Server).sendMessage,
	"SendMessageBatch":             (*Server).sendMessageBatch,
	"ReceiveMessage":               (*Server).receiveMessage,
	"DeleteMessage":                (*Server).deleteMessage,
	"DeleteMessageBatch":           (*Server).deleteMessageBatch,
	"ChangeMessageVisibility":      (*Server).changeMessageVisibility,
	"ChangeMessageVisibilityBatch": (*Server).changeMessageVisibilityBatch,
}

const targetPrefix = "AmazonSQS."

// ServeHTTP implements http.Handler. Every operation is a POST to any path
// with the operation named in the X-Amz-Target header; request signatures are
// not checked.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := newUUID()
	w.Header().Set("x-amzn-RequestId", reqID)

	target := r.Header.Get("X-Amz-Target")
	op, _ := strings.CutPrefix(target, targetPrefix)

	var (
		resp any
		err  error
	)
	switch h, ok := handlers[op]; {
	case r.Method != http.MethodPost:
		err = &apiError{status: http.StatusMethodNotAllowed, code: "UnsupportedOperation",
			queryCode: "AWS.SimpleQueueService.UnsupportedOperation",
			message:   "Only POST requests using the AWS JSON 1.0 protocol are supported."}
	case !ok:
		err = errUnsupportedOperation(target)
	default:
		var body []byte
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		s.count(op, len(body))
		if err == nil {
			resp, err = h(s, r, body)
		} else {
			err = errInvalidParameter("The request body could not be read: %v", err)
		}
	}

	status := http.StatusOK
	switch {
	case err != nil && r.Context().Err() != nil:
		// The client hung up (typically during a long poll); nobody is
		// left to read a response.
		status = 0
	case err != nil:
		status = s.writeError(w, op, err)
	default:
		s.writeJSON(w, op, resp)
	}
	s.log.Debug("sqs request", "op", op, "status", status, "duration", time.Since(start), "request_id", reqID)
}

func (s *Server) writeJSON(w http.ResponseWriter, op string, v any) {
	if v == nil {
		v = struct{}{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encode sqs response", "op", op, "error", err)
		s.writeError(w, op, err)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

// writeError renders err in the AWS JSON 1.0 error shape and returns the HTTP
// status used.
func (s *Server) writeError(w http.ResponseWriter, op string, err error) int {
	var ae *apiError
	if !errors.As(err, &ae) {
		s.log.Error("sqs internal error", "op", op, "error", err)
		ae = &apiError{status: http.StatusInternalServerError, code: "InternalFailure",
			queryCode: "InternalFailure", message: "internal error: " + err.Error(), receiver: true}
	}
	s.log.Debug("sqs error", "op", op, "type", ae.code, "message", ae.message)
	ae.write(w)
	return ae.status
}

const contentType = "application/x-amz-json-1.0"

// decode unmarshals a request body. An empty body is treated as an empty
// object so that operations with only optional members work with clients
// that send nothing.
func decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errSerialization(err)
	}
	return nil
}

// queueURL renders the URL of a queue as seen by the client that made r, so
// that clients reaching the emulator through different host names each get
// URLs they can use.
func (s *Server) queueURL(r *http.Request, name string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/" + s.accountID + "/" + name
}

func (s *Server) queueARN(name string) string {
	return "arn:aws:sqs:" + s.region + ":" + s.accountID + ":" + name
}

// queueNameFromURL extracts the queue name from a queue URL. Only the last
// path segment matters: clients may reach the emulator as localhost,
// 127.0.0.1 or a container host name and must all address the same queue.
func queueNameFromURL(u string) string {
	u, _, _ = strings.Cut(u, "?")
	u = strings.TrimRight(u, "/")
	if i := strings.LastIndexByte(u, '/'); i >= 0 {
		return u[i+1:]
	}
	return u
}

// lookupURL resolves a QueueUrl request member.
// lockQueue finds the queue named by a QueueUrl and locks it; a queue deleted meanwhile reads as
// missing. The caller must call unlock.
func (s *Server) lockQueue(u string) (q *queue, unlock func(), err error) {
	if q, err = s.lookupURL(u); err != nil {
		return nil, nil, err
	}
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return nil, nil, errQueueDoesNotExist()
	}
	return q, q.mu.Unlock, nil
}

func (s *Server) lookupURL(u string) (*queue, error) {
	if u == "" {
		return nil, errMissingParameter("QueueUrl")
	}
	q := s.lookup(queueNameFromURL(u))
	if q == nil {
		return nil, errQueueDoesNotExist()
	}
	return q, nil
}

func (s *Server) lookup(name string) *queue {
	s.mu.RLock()
	q := s.queues[name]
	s.mu.RUnlock()
	return q
}

// lookupARN resolves a queue ARN issued by this server, or returns nil.
func (s *Server) lookupARN(arn string) *queue {
	name, ok := strings.CutPrefix(arn, "arn:aws:sqs:"+s.region+":"+s.accountID+":")
	if !ok {
		return nil
	}
	return s.lookup(name)
}

// sortedQueues returns a snapshot of all queues ordered by name.
func (s *Server) sortedQueues() []*queue {
	s.mu.RLock()
	qs := make([]*queue, 0, len(s.queues))
	for _, q := range s.queues {
		qs = append(qs, q)
	}
	s.mu.RUnlock()
	sort.Slice(qs, func(i, j int) bool { return qs[i].name < qs[j].name })
	return qs
}

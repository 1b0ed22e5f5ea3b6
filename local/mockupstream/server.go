package mockupstream

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	defaultErrorStatus = http.StatusInternalServerError
	defaultSeed        = 1
	defaultRecordLimit = 10000
)

// StatusClientClosed is the pseudo status (nginx's 499) under which
// ModelStats.ByStatus counts requests whose client went away before the
// answer was complete, whatever status line was already sent.
const StatusClientClosed = 499

// Config configures a Server. The zero value is a usable instant, error-free
// upstream.
type Config struct {
	Latency     Latency      // nil = no delay
	ErrorRate   float64      // fraction of requests answered with ErrorStatus; default 0, clamped to [0,1]
	ErrorStatus int          // default 500
	Seed        int64        // default 1 (0 means the default)
	Logger      *slog.Logger // nil = discard
	Record      bool         // keep a bounded log of received requests (default off; on in tests)
	RecordLimit int          // most recent requests kept when Record is on; default 10000
}

// Stats is a snapshot of everything the server counted since New or Reset.
type Stats struct {
	Calls    int64 // requests received on any path, including 404/405/400 ones
	Aborted  int64 // requests whose client went away before the answer was complete
	InFlight int   // requests being handled now, all models together
	Models   map[string]ModelStats
}

// ModelStats counts the requests that carried a parseable JSON body, keyed by
// its "model" field ("" when absent).
type ModelStats struct {
	InFlight    int
	MaxInFlight int // highest InFlight ever observed: the concurrency the caller really used
	Calls       int64
	ByStatus    map[int]int64 // by status sent; aborted requests count under StatusClientClosed
	BusyNanos   int64         // sum of time requests spent in the handler, for utilisation figures
}

// Recorded is one received request, kept when Config.Record is on. Status and
// Finished stay zero while the request is still being handled.
type Recorded struct {
	Seq       int64 // 1-based arrival number since New or Reset; also in RequestID
	RequestID string
	Method    string
	Path      string
	Header    http.Header
	Body      []byte
	Model     string
	Stream    bool
	Received  time.Time
	Finished  time.Time
	Status    int
	Aborted   bool
}

// Server is the mock upstream; it is an http.Handler, safe for concurrent use.
type Server struct {
	seed        int64
	log         *slog.Logger
	record      bool
	recordLimit int

	cfgMu       sync.RWMutex
	latency     Latency
	errorRate   float64
	errorStatus int

	// mu guards every counter below. One mutex held for a few field updates
	// per request is cheap next to an HTTP round trip and keeps snapshots
	// consistent across counters.
	mu       sync.Mutex
	seq      int64
	calls    int64
	aborted  int64
	inFlight int
	models   map[string]*modelCounters
	failures map[string]int // mock_key -> requests seen carrying it
	blocks   map[string]*block
	records  []*Recorded // ring buffer of at most recordLimit entries
	recStart int         // index of the oldest record once the ring is full
	watchers int         // goroutines inside waitUntil; notify is a no-op without them
	changed  chan struct{}

	closeOnce sync.Once
	closed    chan struct{}
}

type modelCounters struct {
	inFlight    int
	maxInFlight int
	calls       int64
	byStatus    map[int]int64
	busy        time.Duration
}

// block is the gate of one mock_block name. Once released it stays open, so
// requests arriving after Release pass straight through.
type block struct {
	open     chan struct{}
	released bool
	waiting  int
}

// New returns a Server configured by cfg with the defaults above applied.
func New(cfg Config) *Server {
	s := &Server{
		seed:        cfg.Seed,
		log:         cfg.Logger,
		record:      cfg.Record,
		recordLimit: cfg.RecordLimit,
		models:      map[string]*modelCounters{},
		failures:    map[string]int{},
		blocks:      map[string]*block{},
		changed:     make(chan struct{}),
		closed:      make(chan struct{}),
	}
	if s.seed == 0 {
		s.seed = defaultSeed
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.recordLimit <= 0 {
		s.recordLimit = defaultRecordLimit
	}
	s.SetLatency(cfg.Latency)
	s.SetErrorRate(cfg.ErrorRate, cfg.ErrorStatus)
	return s
}

// SetLatency changes the latency distribution for requests arriving from now
// on; nil means no delay.
func (s *Server) SetLatency(l Latency) {
	s.cfgMu.Lock()
	s.latency = l
	s.cfgMu.Unlock()
}

// SetErrorRate makes the given fraction of requests arriving from now on fail
// with status (0 means 500). The rate is clamped to [0,1].
func (s *Server) SetErrorRate(rate float64, status int) {
	if !(rate > 0) { // also catches NaN
		rate = 0
	}
	rate = min(rate, 1)
	if status == 0 {
		status = defaultErrorStatus
	}
	s.cfgMu.Lock()
	s.errorRate, s.errorStatus = rate, status
	s.cfgMu.Unlock()
}

func (s *Server) config() (Latency, float64, int) {
	s.cfgMu.RLock()
	defer s.cfgMu.RUnlock()
	return s.latency, s.errorRate, s.errorStatus
}

// requestRand derives the random source of one request from the seed and
// its arrival number, so which requests fail and how long each one takes do
// not depend on how concurrent requests interleave.
func (s *Server) requestRand(seq int64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(s.seed), splitmix64(uint64(seq))))
}

// splitmix64 scrambles consecutive arrival numbers into unrelated PCG seeds.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Close ends every wait inside the server (blocks, latencies, hanging
// bodies): requests that have not answered yet get 503. Call it before
// closing an httptest.Server, whose Close waits for handlers to return.
// Close is idempotent. Afterwards requests that need no wait are still
// answered normally; any that would wait get 503 at once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// Stats returns a snapshot of all counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Calls: s.calls, Aborted: s.aborted, InFlight: s.inFlight, Models: make(map[string]ModelStats, len(s.models))}
	for name, m := range s.models {
		st.Models[name] = m.snapshot()
	}
	return st
}

// ModelStats returns a snapshot of one model's counters (zero, with an empty
// ByStatus map, for a model never seen).
func (s *Server) ModelStats(model string) ModelStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.models[model]; ok {
		return m.snapshot()
	}
	return ModelStats{ByStatus: map[int]int64{}}
}

func (m *modelCounters) snapshot() ModelStats {
	by := make(map[int]int64, len(m.byStatus))
	for k, v := range m.byStatus {
		by[k] = v
	}
	return ModelStats{
		InFlight:    m.inFlight,
		MaxInFlight: m.maxInFlight,
		Calls:       m.calls,
		ByStatus:    by,
		BusyNanos:   int64(m.busy),
	}
}

// MaxInFlight is the highest number of concurrent requests ever seen for model.
func (s *Server) MaxInFlight(model string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.models[model]; ok {
		return m.maxInFlight
	}
	return 0
}

// Calls is the total number of requests received, on any path.
func (s *Server) Calls() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Requests returns the recorded requests, oldest first (nil unless
// Config.Record). Each entry is a copy the caller may keep and modify.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.records) == 0 {
		return nil
	}
	out := make([]Recorded, 0, len(s.records))
	for i := range s.records {
		r := *s.records[(s.recStart+i)%len(s.records)]
		r.Header = r.Header.Clone()
		r.Body = append([]byte(nil), r.Body...)
		out = append(out, r)
	}
	return out
}

// Reset zeroes counters, records, mock_fail_times counters and the arrival
// sequence (so a seeded run after Reset repeats itself); configuration is
// kept. Requests still being handled stay counted in InFlight (and
// MaxInFlight restarts from there) so they cannot drive it negative when
// they finish. Released mock_block names nobody waits on are forgotten, so
// tests can reuse names; a gate with waiters stays as it is.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq, s.calls, s.aborted = 0, 0, 0
	for name, m := range s.models {
		if m.inFlight == 0 {
			delete(s.models, name)
			continue
		}
		*m = modelCounters{inFlight: m.inFlight, maxInFlight: m.inFlight, byStatus: map[int]int64{}}
	}
	clear(s.failures)
	for name, b := range s.blocks {
		if b.waiting == 0 {
			delete(s.blocks, name)
		}
	}
	s.records, s.recStart = nil, 0
	s.notify()
}

// Release opens the gate of mock_block name: every request waiting on it
// proceeds, and later requests with that name do not wait at all.
func (s *Server) Release(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.blockLocked(name)
	if !b.released {
		b.released = true
		close(b.open)
	}
}

// Blocked is the number of requests waiting on mock_block name right now.
func (s *Server) Blocked(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.blocks[name]; ok {
		return b.waiting
	}
	return 0
}

func (s *Server) blockLocked(name string) *block {
	b, ok := s.blocks[name]
	if !ok {
		b = &block{open: make(chan struct{})}
		s.blocks[name] = b
	}
	return b
}

// WaitBlocked returns once at least n requests wait on mock_block name, or
// with ctx's error. It lets a test act while requests are mid-flight without
// sleeping.
func (s *Server) WaitBlocked(ctx context.Context, name string, n int) error {
	return s.waitUntil(ctx, func() bool {
		b, ok := s.blocks[name]
		return n <= 0 || ok && b.waiting >= n
	})
}

// WaitCalls returns once at least n requests have been received (counted on
// arrival, before any delay), or with ctx's error.
func (s *Server) WaitCalls(ctx context.Context, n int64) error {
	return s.waitUntil(ctx, func() bool { return s.calls >= n })
}

// WaitIdle returns once no request is being handled, or with ctx's error.
// After a client aborts, it tells when the server has counted the abort.
func (s *Server) WaitIdle(ctx context.Context) error {
	return s.waitUntil(ctx, func() bool { return s.inFlight == 0 })
}

// WaitModelIdle returns once model has no request in flight, or with ctx's
// error.
func (s *Server) WaitModelIdle(ctx context.Context, model string) error {
	return s.waitUntil(ctx, func() bool {
		m, ok := s.models[model]
		return !ok || m.inFlight == 0
	})
}

// waitUntil blocks until cond, evaluated under s.mu, holds. Every state
// change calls notify, which wakes all waiters to re-check.
func (s *Server) waitUntil(ctx context.Context, cond func() bool) error {
	s.mu.Lock()
	s.watchers++
	defer func() {
		s.mu.Lock()
		s.watchers--
		s.mu.Unlock()
	}()
	for {
		if cond() {
			s.mu.Unlock()
			return nil
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
	}
}

// notify wakes waitUntil callers; s.mu must be held. Without watchers it does
// nothing, so the hot path pays no allocation for it.
func (s *Server) notify() {
	if s.watchers > 0 {
		close(s.changed)
		s.changed = make(chan struct{})
	}
}

// begin counts an arriving request and records it.
func (s *Server) begin(c *call, r *http.Request, body []byte) {
	var rec *Recorded
	if s.record {
		rec = &Recorded{
			Method:   r.Method,
			Path:     r.URL.Path,
			Header:   r.Header.Clone(),
			Body:     body,
			Model:    c.model,
			Stream:   c.stream,
			Received: c.start,
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	c.seq = s.seq
	s.calls++
	s.inFlight++
	if c.tracked {
		m := s.modelLocked(c.model)
		m.calls++
		m.inFlight++
		m.maxInFlight = max(m.maxInFlight, m.inFlight)
	}
	if rec != nil {
		rec.Seq = c.seq
		rec.RequestID = requestID(c.seq)
		c.rec = rec
		if len(s.records) < s.recordLimit {
			s.records = append(s.records, rec)
		} else {
			s.records[s.recStart] = rec
			s.recStart = (s.recStart + 1) % len(s.records)
		}
	}
	s.notify()
}

// end counts a finished request.
func (s *Server) end(c *call) {
	now := time.Now()
	// Logged before the counters change, so a test that waits for the
	// request to finish (WaitIdle) also sees its log line.
	s.log.Debug("mock upstream request",
		"seq", c.seq, "path", c.path, "model", c.model, "status", c.status,
		"aborted", c.aborted, "duration", now.Sub(c.start))
	s.mu.Lock()
	s.inFlight--
	if c.aborted {
		s.aborted++
	}
	if c.tracked {
		m := s.modelLocked(c.model)
		m.inFlight--
		status := c.status
		if c.aborted {
			status = StatusClientClosed
		}
		m.byStatus[status]++
		m.busy += now.Sub(c.start)
	}
	if c.rec != nil {
		c.rec.Finished = now
		c.rec.Status = c.status
		c.rec.Aborted = c.aborted
	}
	s.notify()
	s.mu.Unlock()
}

func (s *Server) modelLocked(name string) *modelCounters {
	m, ok := s.models[name]
	if !ok {
		m = &modelCounters{byStatus: map[int]int64{}}
		s.models[name] = m
	}
	return m
}

// takeFailure counts one more request carrying key and reports whether it
// is still among the first n.
func (s *Server) takeFailure(key string, n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[key]++
	return s.failures[key] <= n
}

// gate returns the channel that opens when name is released, registering the
// caller as a waiter; it returns nil when the gate is already open. The
// caller must call leave(name) after waiting.
func (s *Server) gate(name string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.blockLocked(name)
	if b.released {
		return nil
	}
	b.waiting++
	s.notify()
	return b.open
}

func (s *Server) leave(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.blocks[name]; ok {
		b.waiting--
	}
	s.notify()
}

func requestID(seq int64) string { return "req_" + strconv.FormatInt(seq, 10) }

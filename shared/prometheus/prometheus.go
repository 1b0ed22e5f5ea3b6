// Package prometheus records the engine's metrics (engine.Metrics) in a Prometheus registry and
// serves them as the text exposition format: the local stack's /metrics. The figures are those
// the Lambda functions write as EMF records (shared/emf), under Prometheus names and units
// (seconds, _total counters).
package prometheus

import (
	"net/http"
	"sync"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fusillade/fusillade/shared/engine"
)

// Recorder is an engine.Metrics on a Prometheus registry of its own. Safe for concurrent use.
type Recorder struct {
	reg      *prom.Registry
	claims   *prom.CounterVec
	outcomes *prom.CounterVec
	latency  *prom.HistogramVec
	inFlight *prom.GaugeVec
	peak     *prom.GaugeVec
	gap      *prom.HistogramVec
	queueAge prom.Histogram
	lines    *prom.CounterVec

	peakMu sync.Mutex     // orders the gauges' updates with the counts they are set from
	now    map[string]int // in-flight calls by model
	peaks  map[string]int
}

var _ engine.Metrics = (*Recorder)(nil)

// New returns a Recorder with its own registry (so that two stacks in one process, as tests run
// them, never share figures).
func New() *Recorder {
	r := &Recorder{reg: prom.NewRegistry(), now: map[string]int{}, peaks: map[string]int{}}
	// Latency buckets from 5 ms to about 5 minutes: mock upstreams answer in milliseconds, real
	// generations take seconds to minutes.
	slow := prom.ExponentialBuckets(0.005, 2.5, 13)
	fast := prom.ExponentialBuckets(0.0005, 2.5, 13) // 0.5 ms to about 30 s: a result write and claim
	r.claims = prom.NewCounterVec(prom.CounterOpts{Name: "fusillade_claims_total",
		Help: "Requests claimed, by dispatches and by workers' refills."}, []string{"model"})
	r.outcomes = prom.NewCounterVec(prom.CounterOpts{Name: "fusillade_outcomes_total",
		Help: "Results written, by class (completed, retried, failed) and error code (http_<status>, timeout, ...)."},
		[]string{"model", "class", "code"})
	r.latency = prom.NewHistogramVec(prom.HistogramOpts{Name: "fusillade_upstream_latency_seconds",
		Help: "Duration of upstream calls.", Buckets: slow}, []string{"model"})
	r.inFlight = prom.NewGaugeVec(prom.GaugeOpts{Name: "fusillade_inflight",
		Help: "Upstream calls running now."}, []string{"model"})
	r.peak = prom.NewGaugeVec(prom.GaugeOpts{Name: "fusillade_inflight_peak",
		Help: "Most upstream calls that ran at once since start (what a scrape between peaks misses)."}, []string{"model"})
	r.gap = prom.NewHistogramVec(prom.HistogramOpts{Name: "fusillade_refill_gap_seconds",
		Help: "Time from a slot's upstream call ending to its next request starting.", Buckets: fast}, []string{"model"})
	r.queueAge = prom.NewHistogram(prom.HistogramOpts{Name: "fusillade_queue_age_seconds",
		Help: "Time a work message waited in the queue before a worker received it.", Buckets: slow})
	r.lines = prom.NewCounterVec(prom.CounterOpts{Name: "fusillade_lines_done_total",
		Help: "Batch lines that reached a final state through a worker's result write."}, []string{"batch"})
	r.reg.MustRegister(r.claims, r.outcomes, r.latency, r.inFlight, r.peak, r.gap, r.queueAge, r.lines)
	return r
}

// Handler serves the registry in the Prometheus text format.
func (r *Recorder) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
}

// Claimed implements engine.Metrics.
func (r *Recorder) Claimed(model string, n int) { r.claims.WithLabelValues(model).Add(float64(n)) }

// Outcome implements engine.Metrics.
func (r *Recorder) Outcome(model string, class engine.OutcomeClass, code string) {
	r.outcomes.WithLabelValues(model, string(class), code).Inc()
}

// UpstreamLatency implements engine.Metrics.
func (r *Recorder) UpstreamLatency(model string, d time.Duration) {
	r.latency.WithLabelValues(model).Observe(d.Seconds())
}

// InFlight implements engine.Metrics.
func (r *Recorder) InFlight(model string, delta int) {
	r.peakMu.Lock()
	n := r.now[model] + delta
	r.now[model] = n
	r.inFlight.WithLabelValues(model).Set(float64(n))
	if n > r.peaks[model] {
		r.peaks[model] = n
		r.peak.WithLabelValues(model).Set(float64(n))
	}
	r.peakMu.Unlock()
}

// RefillGap implements engine.Metrics.
func (r *Recorder) RefillGap(model string, d time.Duration) {
	r.gap.WithLabelValues(model).Observe(d.Seconds())
}

// QueueAge implements engine.Metrics.
func (r *Recorder) QueueAge(d time.Duration) { r.queueAge.Observe(d.Seconds()) }

// LinesDone implements engine.Metrics.
func (r *Recorder) LinesDone(batch string, n int) { r.lines.WithLabelValues(batch).Add(float64(n)) }

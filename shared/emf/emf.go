// Package emf records the engine's metrics (engine.Metrics) as CloudWatch Embedded Metric Format
// records: JSON log lines that CloudWatch Logs turns into metrics, so a Lambda function
// publishes metrics by writing to stdout, with no API call and no extra permission.
//
// Figures are aggregated in memory (counts summed, in-flight kept as its peak, latencies kept as
// value lists) and written by Flush, which the functions call at the end of each invocation
// (Flushing wraps a handler): a flush writes one record per dimension set that has figures, not
// one per request, so the hot path is a map update under a short lock and never waits on I/O.
package emf

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fusillade/fusillade/shared/engine"
)

// DefaultNamespace is the CloudWatch namespace of fusillade's metrics (METRICS_NAMESPACE).
const DefaultNamespace = "fusillade"

// maxValues is the most values one metric may carry in one record (CloudWatch's limit); longer
// lists are spread over several records, each value counted once.
const maxValues = 100

// Metric names and units, as CloudWatch shows them (docs/operations.md lists their meaning).
const (
	MetricClaims          = "Claims"          // Count, by Function, Model
	MetricInFlight        = "InFlight"        // Count (peak of the flush window), by Function, Model
	MetricUpstreamLatency = "UpstreamLatency" // Milliseconds, by Function, Model
	MetricRefillGap       = "RefillGap"       // Milliseconds, by Function, Model
	MetricOutcomes        = "Outcomes"        // Count, by Function, Model, Class (and Code)
	MetricQueueAge        = "QueueAge"        // Milliseconds, by Function
	MetricLinesDone       = "LinesDone"       // Count, by Function, BatchId

	UnitCount        = "Count"
	UnitMilliseconds = "Milliseconds"
)

// Recorder is an engine.Metrics that aggregates until Flush. Safe for concurrent use.
type Recorder struct {
	namespace string
	function  string
	w         io.Writer
	now       func() time.Time

	mu       sync.Mutex
	agg      aggregate
	inFlight map[string]int // the count now, by model; outlives windows

	wmu sync.Mutex // serialises flushes' writes; never taken on the recording path
}

// aggregate is what one flush window gathered.
type aggregate struct {
	models   map[string]*modelFigures
	outcomes map[outcomeKey]int64
	lines    map[string]int64
	queueAge []float64
}

type modelFigures struct {
	claims  int64
	peak    int // of the in-flight count during the window
	seen    bool
	latency []float64
	gap     []float64
}

type outcomeKey struct {
	model string
	class engine.OutcomeClass
	code  string
}

// Options configures New. Zero fields take the defaults named on each.
type Options struct {
	Namespace string           // default DefaultNamespace
	Function  string           // the Function dimension (api, populate, dispatch, worker, purge); default "fusillade"
	Now       func() time.Time // the records' timestamp; default time.Now
}

// New returns a Recorder writing records to w (a Lambda function's stdout).
func New(w io.Writer, o Options) *Recorder {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Function == "" {
		o.Function = "fusillade"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Recorder{namespace: o.Namespace, function: o.Function, w: w, now: o.Now}
}

var _ engine.Metrics = (*Recorder)(nil)

// model returns model's figures; r.mu must be held.
func (r *Recorder) model(name string) *modelFigures {
	if r.agg.models == nil {
		r.agg.models = map[string]*modelFigures{}
	}
	m, ok := r.agg.models[name]
	if !ok {
		m = &modelFigures{}
		r.agg.models[name] = m
	}
	return m
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Claimed implements engine.Metrics.
func (r *Recorder) Claimed(model string, n int) {
	r.mu.Lock()
	r.model(model).claims += int64(n)
	r.mu.Unlock()
}

// Outcome implements engine.Metrics.
func (r *Recorder) Outcome(model string, class engine.OutcomeClass, code string) {
	r.mu.Lock()
	if r.agg.outcomes == nil {
		r.agg.outcomes = map[outcomeKey]int64{}
	}
	r.agg.outcomes[outcomeKey{model, class, code}]++
	r.mu.Unlock()
}

// UpstreamLatency implements engine.Metrics.
func (r *Recorder) UpstreamLatency(model string, d time.Duration) {
	r.mu.Lock()
	m := r.model(model)
	m.latency = append(m.latency, ms(d))
	r.mu.Unlock()
}

// InFlight implements engine.Metrics: the record carries the peak of the window.
func (r *Recorder) InFlight(model string, delta int) {
	r.mu.Lock()
	if r.inFlight == nil {
		r.inFlight = map[string]int{}
	}
	n := r.inFlight[model] + delta
	r.inFlight[model] = n
	m := r.model(model)
	m.seen = true
	m.peak = max(m.peak, n)
	r.mu.Unlock()
}

// RefillGap implements engine.Metrics.
func (r *Recorder) RefillGap(model string, d time.Duration) {
	r.mu.Lock()
	m := r.model(model)
	m.gap = append(m.gap, ms(d))
	r.mu.Unlock()
}

// QueueAge implements engine.Metrics.
func (r *Recorder) QueueAge(d time.Duration) {
	r.mu.Lock()
	r.agg.queueAge = append(r.agg.queueAge, ms(d))
	r.mu.Unlock()
}

// LinesDone implements engine.Metrics.
func (r *Recorder) LinesDone(batch string, n int) {
	r.mu.Lock()
	if r.agg.lines == nil {
		r.agg.lines = map[string]int64{}
	}
	r.agg.lines[batch] += int64(n)
	r.mu.Unlock()
}

// Flush writes what was recorded since the last flush, one JSON line per record, and starts a
// new window. Nothing recorded writes nothing. The window is taken under the lock and written
// after it is released, so recording never waits for the writer.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	agg := r.agg
	r.agg = aggregate{}
	r.mu.Unlock()
	recs := r.records(agg)
	if len(recs) == 0 {
		return nil
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	for _, rec := range recs {
		b, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("emf: encode record: %w", err)
		}
		if _, err := r.w.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("emf: write record: %w", err)
		}
	}
	return nil
}

// Flushing wraps a Lambda handler so that every invocation ends with a flush (a failed write is
// not the invocation's failure: the metrics of one invocation are lost, its work is not).
func Flushing[E, R any](r *Recorder, h func(context.Context, E) (R, error)) func(context.Context, E) (R, error) {
	return func(ctx context.Context, ev E) (R, error) {
		defer func() { _ = r.Flush() }()
		return h(ctx, ev)
	}
}

// metricDef is one entry of a directive's Metrics.
type metricDef struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

// record builds one EMF record: dimension values and metric values are top-level members, and
// the _aws member names which are which.
type record struct {
	fields map[string]any
	dims   [][]string
	defs   []metricDef
}

func (r *Recorder) newRecord(dims [][]string, keys map[string]string) *record {
	rec := &record{fields: map[string]any{"Function": r.function}, dims: dims}
	for k, v := range keys {
		rec.fields[k] = v
	}
	return rec
}

func (rec *record) add(name, unit string, v any) {
	rec.fields[name] = v
	rec.defs = append(rec.defs, metricDef{Name: name, Unit: unit})
}

// lists spreads value lists over as many records as it takes (at most maxValues each); first is
// the record that also carries the dimension set's other metrics.
func (r *Recorder) lists(first *record, dims [][]string, keys map[string]string, series []series) []*record {
	out := []*record{first}
	for i := 0; ; i++ {
		rec := first
		if i > 0 {
			rec = r.newRecord(dims, keys)
		}
		more := false
		for _, s := range series {
			lo := i * maxValues
			if lo >= len(s.values) {
				continue
			}
			rec.add(s.name, UnitMilliseconds, s.values[lo:min(lo+maxValues, len(s.values))])
			more = more || lo+maxValues < len(s.values)
		}
		if i > 0 && len(rec.defs) > 0 {
			out = append(out, rec)
		}
		if !more {
			return out
		}
	}
}

type series struct {
	name   string
	values []float64
}

// records turns a window into EMF records, in a stable order (models, outcomes, queue age,
// batches, each sorted).
func (r *Recorder) records(agg aggregate) []map[string]any {
	var recs []*record
	for _, name := range slices.Sorted(maps.Keys(agg.models)) {
		m := agg.models[name]
		dims := [][]string{{"Function", "Model"}}
		keys := map[string]string{"Model": name}
		rec := r.newRecord(dims, keys)
		if m.claims > 0 {
			rec.add(MetricClaims, UnitCount, m.claims)
		}
		if m.seen {
			rec.add(MetricInFlight, UnitCount, m.peak)
		}
		for _, x := range r.lists(rec, dims, keys, []series{{MetricUpstreamLatency, m.latency}, {MetricRefillGap, m.gap}}) {
			if len(x.defs) > 0 {
				recs = append(recs, x)
			}
		}
	}
	keys := slices.Collect(maps.Keys(agg.outcomes))
	slices.SortFunc(keys, func(a, b outcomeKey) int {
		return strings.Compare(a.model+"\x00"+string(a.class)+"\x00"+a.code, b.model+"\x00"+string(b.class)+"\x00"+b.code)
	})
	for _, k := range keys {
		dims := [][]string{{"Function", "Model", "Class"}}
		kv := map[string]string{"Model": k.model, "Class": string(k.class)}
		if k.code != "" {
			// Also by code; the set without it still sums every code of the class.
			dims = append(dims, []string{"Function", "Model", "Class", "Code"})
			kv["Code"] = k.code
		}
		rec := r.newRecord(dims, kv)
		rec.add(MetricOutcomes, UnitCount, agg.outcomes[k])
		recs = append(recs, rec)
	}
	if len(agg.queueAge) > 0 {
		dims := [][]string{{"Function"}}
		recs = append(recs, r.lists(r.newRecord(dims, nil), dims, nil, []series{{MetricQueueAge, agg.queueAge}})...)
	}
	for _, b := range slices.Sorted(maps.Keys(agg.lines)) {
		rec := r.newRecord([][]string{{"Function", "BatchId"}}, map[string]string{"BatchId": b})
		rec.add(MetricLinesDone, UnitCount, agg.lines[b])
		recs = append(recs, rec)
	}
	ts := r.now().UnixMilli()
	out := make([]map[string]any, len(recs))
	for i, rec := range recs {
		rec.fields["_aws"] = map[string]any{
			"Timestamp": ts,
			"CloudWatchMetrics": []map[string]any{{
				"Namespace":  r.namespace,
				"Dimensions": rec.dims,
				"Metrics":    rec.defs,
			}},
		}
		out[i] = rec.fields
	}
	return out
}

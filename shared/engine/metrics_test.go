package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/engine"
)

// metrics records what the engine reports.
type metrics struct {
	mu        sync.Mutex
	claims    map[string]int
	outcomes  map[string]int // model/class/code
	latencies map[string]int
	inFlight  map[string]int // now
	peak      map[string]int
	gaps      int
	lines     map[string]int
}

func newMetrics() *metrics {
	return &metrics{claims: map[string]int{}, outcomes: map[string]int{}, latencies: map[string]int{}, inFlight: map[string]int{},
		peak: map[string]int{}, lines: map[string]int{}}
}

func (m *metrics) Claimed(model string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.claims[model] += n
}

func (m *metrics) Outcome(model string, class engine.OutcomeClass, code string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.outcomes[model+"/"+string(class)+"/"+code]++
}

func (m *metrics) UpstreamLatency(model string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d > 0 {
		m.latencies[model]++
	}
}

func (m *metrics) InFlight(model string, delta int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inFlight[model] += delta
	m.peak[model] = max(m.peak[model], m.inFlight[model])
}

func (m *metrics) RefillGap(string, time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gaps++
}

func (m *metrics) QueueAge(time.Duration) {}

func (m *metrics) LinesDone(batch string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lines[batch] += n
}

// Every written result is reported once by class: completed, retried with the status that caused
// the retry, failed with its code; and every claim, upstream call and finished line is counted.
func TestOutcomesAreReportedByClassAndCode(t *testing.T) {
	t.Parallel()
	m := newMetrics()
	b := setupWith(t, engine.Config{}, m)
	ctx := context.Background()
	id := b.batch(t, b.tenant, "m", 6, 24*time.Hour,
		"", "", "",
		`"mock_status":503,"mock_fail_times":1,"mock_key":"retry-once"`,
		`"mock_status":422`,
		`"mock_status":400`)
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	b.drain(t)
	b.clock.Advance(10 * time.Second) // the retry's back-off
	require.NoError(t, b.eng.Dispatch(ctx, "m"))
	b.drain(t)
	require.Equal(t, domain.BatchCompleted, b.get(t, id).Status)

	m.mu.Lock()
	defer m.mu.Unlock()
	assert.Equal(t, map[string]int{
		"m/completed/":       4,
		"m/retried/http_503": 1,
		"m/failed/http_422":  1,
		"m/failed/http_400":  1,
	}, m.outcomes)
	assert.Equal(t, map[string]int{"m": 7}, m.claims, "six lines claimed once, the retried one twice")
	assert.Equal(t, map[string]int{"m": 7}, m.latencies, "one latency per upstream call")
	assert.Equal(t, map[string]int{id: 6}, m.lines, "each line counted done once, the retry only when it ended")
	assert.Positive(t, m.peak["m"])
	assert.LessOrEqual(t, m.peak["m"], 4, "never more calls than the model's limit")
	assert.Equal(t, 0, m.inFlight["m"], "every call that started ended")
	assert.Positive(t, m.gaps, "a slot refilled in the invocation reports its gap")
}

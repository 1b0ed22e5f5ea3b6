package stack_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/mockupstream"
	"github.com/fusillade/fusillade/local/stack"
)

// scrape reads the stack's /metrics and returns every sample as name{labels} → value
// (histograms by their _count).
func scrape(t *testing.T, st *stack.Stack) map[string]float64 {
	t.Helper()
	resp, err := http.Get(st.APIURL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	families, err := parseMetrics(resp.Body)
	require.NoError(t, err)
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := name + labels(m)
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+"_count"+labels(m)] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func parseMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

func labels(m *dto.Metric) string {
	if len(m.GetLabel()) == 0 {
		return ""
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, l := range m.GetLabel() {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l.GetName(), l.GetValue())
	}
	b.WriteByte('}')
	return b.String()
}

// The stack's /metrics tells a batch's story: every line claimed once and ending once in its
// class (completed, or failed with the upstream's status), the batch's lines all done, one
// upstream call each, and the in-flight count never above the model's limit, whether a scrape
// catches it mid-batch or the peak is read afterwards.
func TestMetricsCountABatchsClaimsAndOutcomesWithinTheLimits(t *testing.T) {
	limits := map[string]int{"mock-chat": 4, "mock-embed": 2}
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 4}, {Name: "mock-embed", Limit: 2}},
		Upstream: mockupstream.Config{Latency: mockupstream.Fixed(15 * time.Millisecond)}})
	c := client(st, st.APIKey)
	ctx := context.Background()

	// 120 lines alternating over the models; every tenth line of each is refused by the upstream.
	var file bytes.Buffer
	want := map[string]map[string]int{"mock-chat": {}, "mock-embed": {}}
	for i := range 120 {
		m := []string{"mock-chat", "mock-embed"}[i%2]
		extra := ""
		if i%20 < 2 {
			extra = `,"mock_status":422`
			want[m]["failed"]++
		} else {
			want[m]["completed"]++
		}
		fmt.Fprintf(&file, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"hi"}]%s}}`+"\n", i, m, extra)
	}
	f, err := c.Files.New(ctx, openai.FileNewParams{File: bytes.NewReader(file.Bytes()), Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	require.NoError(t, err)

	// Scrape while the batch runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	scrapes, busiest := 0, map[string]float64{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			resp, err := http.Get(st.APIURL + "/metrics")
			if !assert.NoError(t, err) {
				return
			}
			families, err := parseMetrics(resp.Body)
			_ = resp.Body.Close()
			if !assert.NoError(t, err) {
				return
			}
			mu.Lock()
			scrapes++
			for _, m := range families["fusillade_inflight"].GetMetric() {
				name := m.GetLabel()[0].GetValue()
				busiest[name] = max(busiest[name], m.GetGauge().GetValue())
			}
			mu.Unlock()
		}
	}()
	done := waitBatch(t, c, b.ID, 2*time.Minute)
	close(stop)
	wg.Wait()
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	require.EqualValues(t, 12, done.RequestCounts.Failed)

	mu.Lock()
	assert.Positive(t, scrapes, "scraped during the batch")
	for m, n := range busiest {
		assert.LessOrEqual(t, n, float64(limits[m]), "in flight for %s in a scrape", m)
	}
	mu.Unlock()

	// The last outcomes are counted just after their commit, beside the sealing of the batch:
	// wait for them rather than for a fixed time.
	var got map[string]float64
	require.Eventually(t, func() bool {
		got = scrape(t, st)
		return got[fmt.Sprintf("fusillade_lines_done_total{batch=%q}", b.ID)] == 120
	}, 10*time.Second, 20*time.Millisecond, "lines done reach the batch's total")
	for m, classes := range want {
		lines := classes["completed"] + classes["failed"]
		assert.InDelta(t, lines, got[fmt.Sprintf("fusillade_claims_total{model=%q}", m)], 0, "claims of %s", m)
		assert.InDelta(t, classes["completed"], got[fmt.Sprintf(`fusillade_outcomes_total{class="completed",code="",model=%q}`, m)], 0, "completed of %s", m)
		assert.InDelta(t, classes["failed"], got[fmt.Sprintf(`fusillade_outcomes_total{class="failed",code="http_422",model=%q}`, m)], 0, "failed of %s", m)
		assert.InDelta(t, lines, got[fmt.Sprintf("fusillade_upstream_latency_seconds_count{model=%q}", m)], 0, "upstream calls of %s", m)
		assert.InDelta(t, 0, got[fmt.Sprintf("fusillade_inflight{model=%q}", m)], 0, "nothing in flight after the batch")
		peak := got[fmt.Sprintf("fusillade_inflight_peak{model=%q}", m)]
		assert.Positive(t, peak, "%s ran calls", m)
		assert.LessOrEqual(t, peak, float64(limits[m]), "peak in flight of %s", m)
	}
	assert.Positive(t, got["fusillade_queue_age_seconds_count"], "the delivered work messages' ages")
	assert.Positive(t, got[`fusillade_refill_gap_seconds_count{model="mock-chat"}`], "slots refilled in their invocation")
	for k := range got {
		assert.NotContains(t, k, `class="retried"`, "nothing was retried")
	}
}

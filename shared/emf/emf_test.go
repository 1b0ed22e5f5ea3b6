package emf_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/emf"
	"github.com/fusillade/fusillade/shared/engine"
)

var at = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// decoded is one EMF record as CloudWatch reads it.
type decoded struct {
	AWS struct {
		Timestamp         int64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  string     `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct {
				Name string `json:"Name"`
				Unit string `json:"Unit"`
			} `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	} `json:"_aws"`
	fields map[string]any
}

func decode(t *testing.T, out []byte) []decoded {
	t.Helper()
	var recs []decoded
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var d decoded
		require.NoError(t, json.Unmarshal(sc.Bytes(), &d), "line %s", sc.Text())
		require.NoError(t, json.Unmarshal(sc.Bytes(), &d.fields))
		require.Len(t, d.AWS.CloudWatchMetrics, 1)
		require.Equal(t, "test-ns", d.AWS.CloudWatchMetrics[0].Namespace)
		require.Equal(t, at.UnixMilli(), d.AWS.Timestamp)
		require.Equal(t, "worker", d.fields["Function"])
		// Every dimension a directive names and every metric it declares is a member of the record.
		for _, set := range d.AWS.CloudWatchMetrics[0].Dimensions {
			for _, k := range set {
				require.Contains(t, d.fields, k, "dimension %s", k)
			}
		}
		for _, m := range d.AWS.CloudWatchMetrics[0].Metrics {
			require.Contains(t, d.fields, m.Name, "metric %s", m.Name)
		}
		recs = append(recs, d)
	}
	require.NoError(t, sc.Err())
	return recs
}

// units is a record's metrics by name → unit.
func (d decoded) units() map[string]string {
	out := map[string]string{}
	for _, m := range d.AWS.CloudWatchMetrics[0].Metrics {
		out[m.Name] = m.Unit
	}
	return out
}

func (d decoded) dims() [][]string { return d.AWS.CloudWatchMetrics[0].Dimensions }

// sumOf adds up a metric's value (a number or a list) over every record.
func sumOf(recs []decoded, name string) (sum float64, n int) {
	for _, r := range recs {
		switch v := r.fields[name].(type) {
		case float64:
			sum, n = sum+v, n+1
		case []any:
			for _, x := range v {
				sum, n = sum+x.(float64), n+1
			}
		}
	}
	return sum, n
}

func TestRecordsCarryTheAggregatedFiguresInEMF(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		record func(r *emf.Recorder)
		check  func(t *testing.T, recs []decoded)
	}{
		{"nothing recorded writes nothing", func(*emf.Recorder) {}, func(t *testing.T, recs []decoded) {
			assert.Empty(t, recs)
		}},
		{"claims sum and in-flight keeps its peak, per model", func(r *emf.Recorder) {
			r.Claimed("chat", 3)
			r.InFlight("chat", 1)
			r.Claimed("chat", 2)
			for range 3 {
				r.InFlight("chat", 1)
			}
			r.InFlight("chat", -1)
			r.InFlight("chat", -1)
			r.Claimed("embed", 1)
		}, func(t *testing.T, recs []decoded) {
			require.Len(t, recs, 2)
			chat, embed := recs[0], recs[1]
			assert.Equal(t, "chat", chat.fields["Model"])
			assert.Equal(t, [][]string{{"Function", "Model"}}, chat.dims())
			assert.Equal(t, map[string]string{"Claims": "Count", "InFlight": "Count"}, chat.units())
			assert.EqualValues(t, 5, chat.fields["Claims"])
			assert.EqualValues(t, 4, chat.fields["InFlight"])
			assert.Equal(t, "embed", embed.fields["Model"])
			assert.EqualValues(t, 1, embed.fields["Claims"])
			assert.NotContains(t, embed.fields, "InFlight", "no in-flight figure was reported for embed")
		}},
		{"outcomes count by class, failures and retries also by code", func(r *emf.Recorder) {
			r.Outcome("chat", engine.OutcomeCompleted, "")
			r.Outcome("chat", engine.OutcomeCompleted, "")
			r.Outcome("chat", engine.OutcomeRetried, "http_503")
			r.Outcome("chat", engine.OutcomeFailed, "timeout")
			r.Outcome("chat", engine.OutcomeFailed, "timeout")
			r.Outcome("chat", engine.OutcomeFailed, "http_400")
		}, func(t *testing.T, recs []decoded) {
			got := map[string]float64{}
			for _, r := range recs {
				assert.Equal(t, map[string]string{"Outcomes": "Count"}, r.units())
				code, _ := r.fields["Code"].(string)
				if code == "" {
					assert.Equal(t, [][]string{{"Function", "Model", "Class"}}, r.dims())
				} else {
					assert.Equal(t, [][]string{{"Function", "Model", "Class"}, {"Function", "Model", "Class", "Code"}}, r.dims())
				}
				got[r.fields["Class"].(string)+"/"+code] += r.fields["Outcomes"].(float64)
			}
			assert.Equal(t, map[string]float64{"completed/": 2, "retried/http_503": 1, "failed/timeout": 2, "failed/http_400": 1}, got)
		}},
		{"latencies are kept as values, 100 to a record", func(r *emf.Recorder) {
			for i := range 150 {
				r.UpstreamLatency("chat", time.Duration(i+1)*time.Millisecond)
			}
			r.RefillGap("chat", 1500*time.Microsecond)
			r.Claimed("chat", 7)
		}, func(t *testing.T, recs []decoded) {
			require.Len(t, recs, 2, "150 values need two records")
			assert.Equal(t, map[string]string{"Claims": "Count", "UpstreamLatency": "Milliseconds", "RefillGap": "Milliseconds"}, recs[0].units())
			assert.Equal(t, map[string]string{"UpstreamLatency": "Milliseconds"}, recs[1].units())
			assert.Len(t, recs[0].fields["UpstreamLatency"], 100)
			sum, n := sumOf(recs, "UpstreamLatency")
			assert.Equal(t, 150, n)
			assert.InDelta(t, 150*151/2, sum, 1e-9)
			gap, _ := sumOf(recs, "RefillGap")
			assert.InDelta(t, 1.5, gap, 1e-9)
			claims, _ := sumOf(recs, "Claims")
			assert.InDelta(t, 7, claims, 0, "claims are counted once, not in every record")
			for _, r := range recs {
				assert.Equal(t, "chat", r.fields["Model"])
			}
		}},
		{"queue age is by function alone", func(r *emf.Recorder) {
			r.QueueAge(2 * time.Second)
			r.QueueAge(250 * time.Millisecond)
		}, func(t *testing.T, recs []decoded) {
			require.Len(t, recs, 1)
			assert.Equal(t, [][]string{{"Function"}}, recs[0].dims())
			assert.Equal(t, map[string]string{"QueueAge": "Milliseconds"}, recs[0].units())
			assert.Equal(t, []any{2000.0, 250.0}, recs[0].fields["QueueAge"])
		}},
		{"lines done sum per batch", func(r *emf.Recorder) {
			r.LinesDone("batch_a", 3)
			r.LinesDone("batch_b", 1)
			r.LinesDone("batch_a", 2)
		}, func(t *testing.T, recs []decoded) {
			require.Len(t, recs, 2)
			for i, want := range []struct {
				batch string
				n     float64
			}{{"batch_a", 5}, {"batch_b", 1}} {
				assert.Equal(t, [][]string{{"Function", "BatchId"}}, recs[i].dims())
				assert.Equal(t, map[string]string{"LinesDone": "Count"}, recs[i].units())
				assert.Equal(t, want.batch, recs[i].fields["BatchId"])
				assert.InDelta(t, want.n, recs[i].fields["LinesDone"], 0)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			r := emf.New(&buf, emf.Options{Namespace: "test-ns", Function: "worker", Now: func() time.Time { return at }})
			tc.record(r)
			require.NoError(t, r.Flush())
			tc.check(t, decode(t, buf.Bytes()))
			// A flush starts a new window: the next one has nothing to write.
			buf.Reset()
			require.NoError(t, r.Flush())
			assert.Empty(t, buf.String())
		})
	}
}

// The wrapper flushes once per invocation, after the handler returns.
func TestFlushingFlushesAtTheEndOfEachInvocation(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	r := emf.New(&buf, emf.Options{Namespace: "test-ns", Function: "worker", Now: func() time.Time { return at }})
	h := emf.Flushing(r, func(_ context.Context, n int) (int, error) {
		r.Claimed("chat", n)
		assert.Empty(t, buf.String(), "nothing is written while the invocation runs")
		return n, nil
	})
	for _, n := range []int{2, 5} {
		buf.Reset()
		got, err := h(context.Background(), n)
		require.NoError(t, err)
		require.Equal(t, n, got)
		recs := decode(t, buf.Bytes())
		require.Len(t, recs, 1)
		assert.InDelta(t, float64(n), recs[0].fields["Claims"], 0, "each invocation's record holds its own figures")
	}
}

// The recording path, as a worker's slot calls it for one request: ns/op and allocs/op.
func BenchmarkRecordOneRequest(b *testing.B) {
	r := emf.New(&bytes.Buffer{}, emf.Options{})
	models := []string{"chat", "embed"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m := models[i%2]
			i++
			r.InFlight(m, 1)
			r.UpstreamLatency(m, 120*time.Millisecond)
			r.Outcome(m, engine.OutcomeCompleted, "")
			r.Claimed(m, 1)
			r.InFlight(m, -1)
			r.RefillGap(m, 2*time.Millisecond)
			r.LinesDone("batch_a", 1)
			if i%10000 == 0 {
				_ = r.Flush() // an invocation's end, so the value lists stay the size of one
			}
		}
	})
}

// A flush of an invocation that ran a thousand requests of two models.
func BenchmarkFlush(b *testing.B) {
	b.ReportAllocs()
	r := emf.New(&bytes.Buffer{}, emf.Options{})
	for b.Loop() {
		for i := range 1000 {
			m := "chat"
			if i%2 == 0 {
				m = "embed"
			}
			r.UpstreamLatency(m, time.Duration(i)*time.Millisecond)
			r.Outcome(m, engine.OutcomeCompleted, "")
		}
		_ = r.Flush()
	}
}

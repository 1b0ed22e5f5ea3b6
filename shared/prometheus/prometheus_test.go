package prometheus_test

import (
	"testing"
	"time"

	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/prometheus"
)

// The recording path, as a worker's slot calls it for one request: ns/op and allocs/op.
func BenchmarkRecordOneRequest(b *testing.B) {
	r := prometheus.New()
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
		}
	})
}

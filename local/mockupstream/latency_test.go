package mockupstream

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func samples(l Latency, n int, seed uint64) []time.Duration {
	r := rand.New(rand.NewPCG(seed, 0))
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = l.Sample(r)
	}
	return out
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[int(q*float64(len(sorted)-1))]
}

func mean(ds []time.Duration) float64 {
	var sum float64
	for _, d := range ds {
		sum += float64(d)
	}
	return sum / float64(len(ds))
}

func TestLatencyDistributions(t *testing.T) {
	t.Parallel()
	const n = 200_000
	ms := time.Millisecond
	tests := []struct {
		name  string
		lat   Latency
		check func(t *testing.T, sorted []time.Duration)
	}{
		{"fixed", Fixed(5 * ms), func(t *testing.T, s []time.Duration) {
			assert.Equal(t, 5*ms, s[0])
			assert.Equal(t, 5*ms, s[len(s)-1])
		}},
		{"fixed negative is zero", Fixed(-ms), func(t *testing.T, s []time.Duration) {
			assert.Equal(t, time.Duration(0), s[len(s)-1])
		}},
		{"uniform", Uniform(10*ms, 20*ms), func(t *testing.T, s []time.Duration) {
			assert.GreaterOrEqual(t, s[0], 10*ms)
			assert.LessOrEqual(t, s[len(s)-1], 20*ms)
			assert.InEpsilon(t, float64(15*ms), mean(s), 0.01)
			assert.InEpsilon(t, float64(15*ms), float64(quantile(s, 0.5)), 0.02)
			assert.Less(t, s[0], 10*ms+50*time.Microsecond, "lower bound reached")
			assert.Greater(t, s[len(s)-1], 20*ms-50*time.Microsecond, "upper bound reached")
		}},
		{"uniform swapped bounds", Uniform(20*ms, 10*ms), func(t *testing.T, s []time.Duration) {
			assert.GreaterOrEqual(t, s[0], 10*ms)
			assert.LessOrEqual(t, s[len(s)-1], 20*ms)
		}},
		{"uniform empty range", Uniform(7*ms, 7*ms), func(t *testing.T, s []time.Duration) {
			assert.Equal(t, 7*ms, s[0])
			assert.Equal(t, 7*ms, s[len(s)-1])
		}},
		{"lognormal", LogNormal(100*ms, time.Second), func(t *testing.T, s []time.Duration) {
			assert.InEpsilon(t, float64(100*ms), float64(quantile(s, 0.5)), 0.03)
			assert.InEpsilon(t, float64(time.Second), float64(quantile(s, 0.99)), 0.08)
			assert.Greater(t, s[0], time.Duration(0))
		}},
		{"lognormal narrow", LogNormal(20*ms, 30*ms), func(t *testing.T, s []time.Duration) {
			assert.InEpsilon(t, float64(20*ms), float64(quantile(s, 0.5)), 0.02)
			assert.InEpsilon(t, float64(30*ms), float64(quantile(s, 0.99)), 0.03)
		}},
		{"lognormal p99 below p50 is fixed", LogNormal(50*ms, 10*ms), func(t *testing.T, s []time.Duration) {
			assert.InDelta(t, float64(50*ms), float64(s[0]), 1)
			assert.InDelta(t, float64(50*ms), float64(s[len(s)-1]), 1)
		}},
		{"lognormal zero median", LogNormal(0, time.Second), func(t *testing.T, s []time.Duration) {
			assert.Equal(t, time.Duration(0), s[len(s)-1])
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := samples(tt.lat, n, 7)
			require.Equal(t, s, samples(tt.lat, n, 7), "same seed, same samples")
			slices.Sort(s)
			tt.check(t, s)
		})
	}
}

package mockupstream

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Latency is a distribution of the time the mock takes to answer. Sample
// must only use r for randomness so a seeded server is reproducible.
type Latency interface {
	Sample(r *rand.Rand) time.Duration
}

// z99 is the standard normal quantile at 0.99; LogNormal uses it to turn the
// p50/p99 pair into the distribution's sigma.
const z99 = 2.3263478740408408

// maxSample bounds a sample so that the heavy log-normal tail can never
// overflow time.Duration; at ~146 years it never matters otherwise.
const maxSample = time.Duration(math.MaxInt64 / 2)

// Fixed returns a latency that is always d (negative d counts as 0).
func Fixed(d time.Duration) Latency { return fixed{d: max(d, 0)} }

type fixed struct{ d time.Duration }

func (f fixed) Sample(*rand.Rand) time.Duration { return f.d }
func (f fixed) String() string                  { return fmt.Sprintf("fixed(%s)", f.d) }

// Uniform returns a latency drawn uniformly from [min, max], both inclusive.
// Swapped bounds are accepted; negative bounds count as 0.
func Uniform(min, max time.Duration) Latency {
	if min > max {
		min, max = max, min
	}
	if min < 0 {
		min = 0
	}
	if max < 0 {
		max = 0
	}
	return uniform{lo: min, hi: max}
}

type uniform struct{ lo, hi time.Duration }

func (u uniform) Sample(r *rand.Rand) time.Duration {
	span := int64(u.hi - u.lo)
	if span <= 0 {
		return u.lo
	}
	if span < math.MaxInt64 {
		span++
	}
	return u.lo + time.Duration(r.Int64N(span))
}

func (u uniform) String() string { return fmt.Sprintf("uniform(%s,%s)", u.lo, u.hi) }

// LogNormal returns a log-normal latency whose median is p50 and whose 99th
// percentile is p99, the shape of real inference latencies (long right
// tail). mu = ln(p50) and sigma = ln(p99/p50)/z99 with z99 ≈ 2.3263.
// p99 below p50 is raised to p50, which makes the latency fixed at p50;
// p50 <= 0 gives no latency.
func LogNormal(p50, p99 time.Duration) Latency {
	if p50 <= 0 {
		return Fixed(0)
	}
	if p99 < p50 {
		p99 = p50
	}
	return logNormal{
		p50:   p50,
		p99:   p99,
		mu:    math.Log(float64(p50)),
		sigma: math.Log(float64(p99)/float64(p50)) / z99,
	}
}

type logNormal struct {
	p50, p99  time.Duration
	mu, sigma float64
}

func (l logNormal) Sample(r *rand.Rand) time.Duration {
	v := math.Exp(l.mu + l.sigma*r.NormFloat64())
	if v >= float64(maxSample) {
		return maxSample
	}
	return time.Duration(v)
}

func (l logNormal) String() string { return fmt.Sprintf("lognormal(p50=%s,p99=%s)", l.p50, l.p99) }

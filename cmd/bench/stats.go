package main

import (
	"math"
	"slices"
	"time"
)

// Dist summarises a sample of durations in milliseconds.
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Sum  float64 `json:"sum_ms"`
}

// distOf summarises ds; the quantiles are nearest-rank, so p99 of a small sample is its maximum
// rather than an interpolation that never happened.
func distOf(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	ms := make([]float64, len(ds))
	var sum float64
	for i, d := range ds {
		ms[i] = float64(d) / float64(time.Millisecond)
		sum += ms[i]
	}
	slices.Sort(ms)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ms)))) - 1
		return round3(ms[max(0, min(i, len(ms)-1))])
	}
	return Dist{N: len(ms), Mean: round3(sum / float64(len(ms))), P50: q(0.50), P90: q(0.90), P99: q(0.99),
		Max: round3(ms[len(ms)-1]), Sum: round3(sum)}
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func seconds(d time.Duration) float64 { return round3(d.Seconds()) }

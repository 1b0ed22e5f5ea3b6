package domain

import (
	"math"
	"math/rand/v2"
	"time"
)

// RetryPolicy decides whether and when a request that failed in a retriable way runs again.
type RetryPolicy struct {
	// MaxRetries caps retries: N means at most N+1 attempts. Default 1000 (fusillade's), bounded
	// in practice by the batch deadline.
	MaxRetries int
	// Base, Factor and Max shape the back-off Base × Factor^retry, capped at Max. Defaults 1s,
	// 2 and 10s: 1s, 2s, 4s, 8s, 10s, 10s, …
	Base   time.Duration
	Factor float64
	Max    time.Duration
	// Jitter spreads each delay uniformly over ±Jitter of itself so that requests that failed
	// together do not return together. Default 0.2 (20 %).
	Jitter float64
	// StopBeforeDeadline stops retrying when the next attempt would start later than the batch
	// deadline minus this margin. Default 0: retry up to the deadline itself.
	StopBeforeDeadline time.Duration
}

// DefaultRetryPolicy returns the defaults documented on RetryPolicy.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxRetries: 1000, Base: time.Second, Factor: 2, Max: 10 * time.Second, Jitter: 0.2}
}

// Backoff returns the delay before retry number retries+1, where retries is how many retries
// were already made (0 after the first failure). retryAfter, when positive, is the upstream's
// Retry-After hint and wins if it is longer. rnd supplies jitter; nil means no jitter.
func (p RetryPolicy) Backoff(retries int, retryAfter time.Duration, rnd *rand.Rand) time.Duration {
	d := float64(p.Base) * math.Pow(p.Factor, float64(retries))
	if p.Max > 0 && (d > float64(p.Max) || math.IsInf(d, 0) || math.IsNaN(d)) {
		d = float64(p.Max)
	}
	if rnd != nil && p.Jitter > 0 {
		d *= 1 + p.Jitter*(2*rnd.Float64()-1)
	}
	delay := time.Duration(d)
	if retryAfter > delay {
		delay = retryAfter
	}
	return delay
}

// Next decides the fate of a request that failed retriably at now: ok is false when retries are
// exhausted or the next attempt would land past deadline − StopBeforeDeadline.
func (p RetryPolicy) Next(retries int, retryAfter time.Duration, now, deadline time.Time, rnd *rand.Rand) (notBefore time.Time, ok bool) {
	if retries >= p.MaxRetries {
		return time.Time{}, false
	}
	notBefore = now.Add(p.Backoff(retries, retryAfter, rnd))
	if !deadline.IsZero() && !notBefore.Before(deadline.Add(-p.StopBeforeDeadline)) {
		return time.Time{}, false
	}
	return notBefore, true
}

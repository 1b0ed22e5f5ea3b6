package upstream

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter clamps parsed back-offs. It exists to keep absurd or hostile
// values from overflowing time.Duration; schedulers apply their own, usually
// much smaller, ceiling.
const MaxRetryAfter = 24 * time.Hour

// ParseRetryAfter returns the back-off an upstream asked for, or 0 when none
// is given or it cannot be parsed. It prefers the millisecond-precise
// "retry-after-ms" (sent by OpenAI) and otherwise reads "Retry-After" as
// either delay-seconds or an HTTP date (relative to now). Negative values
// and dates in the past yield 0; results are clamped to MaxRetryAfter.
// It is a pure function.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(ms) && !math.IsInf(ms, 0) && ms >= 0 {
			return clampRetry(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		// RFC 9110 allows only integers, but fractional seconds are seen in
		// the wild and are unambiguous.
		if math.IsNaN(secs) || math.IsInf(secs, 0) || secs < 0 {
			return 0
		}
		return clampRetry(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d <= 0 {
			return 0
		}
		return clampRetry(float64(d))
	}
	return 0
}

func clampRetry(nanos float64) time.Duration {
	if nanos >= float64(MaxRetryAfter) {
		return MaxRetryAfter
	}
	if nanos <= 0 {
		return 0
	}
	return time.Duration(nanos)
}

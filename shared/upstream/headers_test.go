package upstream

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	cases := []struct {
		name string
		h    http.Header
		want time.Duration
	}{
		{"nil header", nil, 0},
		{"absent", hdr(), 0},
		{"seconds", hdr("Retry-After", "5"), 5 * time.Second},
		{"seconds padded", hdr("Retry-After", "  12 "), 12 * time.Second},
		{"zero", hdr("Retry-After", "0"), 0},
		{"negative", hdr("Retry-After", "-3"), 0},
		{"fractional seconds", hdr("Retry-After", "1.5"), 1500 * time.Millisecond},
		{"garbage", hdr("Retry-After", "soon"), 0},
		{"NaN", hdr("Retry-After", "NaN"), 0},
		{"Inf", hdr("Retry-After", "+Inf"), 0},
		{"huge clamps", hdr("Retry-After", "99999999999999999999"), MaxRetryAfter},
		{"http date future", hdr("Retry-After", now.Add(30*time.Second).Format(http.TimeFormat)), 30 * time.Second},
		{"http date past", hdr("Retry-After", now.Add(-time.Hour).Format(http.TimeFormat)), 0},
		{"rfc850 date", hdr("Retry-After", "Saturday, 01-Mar-25 12:01:00 GMT"), time.Minute},
		{"asctime date", hdr("Retry-After", "Sat Mar  1 12:00:10 2025"), 10 * time.Second},
		{"ms", hdr("Retry-After-Ms", "250"), 250 * time.Millisecond},
		{"ms lowercase name", http.Header{"Retry-After-Ms": {"1500.5"}}, 1500*time.Millisecond + 500*time.Microsecond},
		{"ms preferred", hdr("Retry-After-Ms", "250", "Retry-After", "9"), 250 * time.Millisecond},
		{"bad ms falls back", hdr("Retry-After-Ms", "x", "Retry-After", "9"), 9 * time.Second},
		{"negative ms falls back", hdr("Retry-After-Ms", "-1", "Retry-After", "2"), 2 * time.Second},
		{"huge ms clamps", hdr("Retry-After-Ms", "1e30"), MaxRetryAfter},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, ParseRetryAfter(tc.h, now))
		})
	}
}

func TestHeaderSafe(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want bool
	}{
		{"", true},
		{"row-1", true},
		{"request 42 / ok: yes", true},
		{"~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./", true},
		{"a\nb", false},
		{"a\rb", false},
		{"\r\nX-Evil: 1", false},
		{"tab\tinside", false},
		{"nul\x00", false},
		{"del\x7f", false},
		{"caf\u00e9", false},
		{"emoji \U0001F600", false},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, HeaderSafe(tc.in), "%q", tc.in)
	}
}

func TestValidHeaderName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"X-Fusillade-Batch-Id", "x_y", "a.b", "A1"} {
		assert.True(t, validHeaderName(ok), ok)
	}
	for _, bad := range []string{"", "a b", "a:b", "a\nb", "é", "(x)"} {
		assert.False(t, validHeaderName(bad), bad)
	}
}

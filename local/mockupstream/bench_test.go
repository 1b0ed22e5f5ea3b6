package mockupstream

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
)

// BenchmarkChatHandler measures the mock's own cost per request, without
// the network, so load tests know how little of their budget it takes.
func BenchmarkChatHandler(b *testing.B) {
	s := New(Config{})
	body := []byte(jsonString(chatBody("m1", "benchmark prompt", nil)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				// Not FailNow: this runs on the benchmark's worker goroutines.
				assert.Failf(b, "unexpected status", "status %d", w.Code)
				return
			}
		}
	})
}

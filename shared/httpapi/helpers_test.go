package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/httpapi"
	"github.com/stretchr/testify/require"
)

// Keys the fake's Authenticate knows.
const (
	tenantKey = "sk-tenant"
	adminKey  = "sk-admin"
	tenantID  = "tenant_0123456789abcdef"
)

// testNow is the API's clock in these tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// withKeys makes f authenticate tenantKey and adminKey; any other key is refused as the store
// refuses it.
func withKeys(f *fake) *fake {
	f.AuthenticateFn = func(_ context.Context, key string) (domain.Principal, error) {
		switch key {
		case tenantKey:
			return domain.Principal{TenantID: tenantID, KeyID: 1}, nil
		case adminKey:
			return domain.Principal{TenantID: tenantID, KeyID: 2, Admin: true}, nil
		}
		return domain.Principal{}, &domain.Error{Code: domain.EUnauthorized, Message: "Incorrect API key provided."}
	}
	return f
}

func newAPI(f *fake) http.Handler {
	return httpapi.New(httpapi.Config{}, httpapi.Deps{Store: f, Ingester: f, Batches: f, Engine: f, Queue: f,
		Now: func() time.Time { return testNow }})
}

// call sends one request with key as its bearer key ("" = no Authorization header).
func call(t *testing.T, h http.Handler, method, target, key, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// envelope is OpenAI's error body, with param and code kept raw so that a test can tell null
// from absent.
type envelope struct {
	Error struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Param   json.RawMessage `json:"param"`
		Code    json.RawMessage `json:"code"`
	} `json:"error"`
}

// errorOf decodes the error envelope of w, failing the test when w is not one.
func errorOf(t *testing.T, w *httptest.ResponseRecorder) envelope {
	t.Helper()
	require.Equal(t, "application/json", w.Header().Get("Content-Type"), "Content-Type; body %s", w.Body)
	var e envelope
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e), "body is not an error envelope: %s", w.Body)
	require.True(t, e.Error.Message != "" && e.Error.Type != "" && e.Error.Param != nil && e.Error.Code != nil,
		"error envelope lacks message, type, param or code: %s", w.Body)
	return e
}

// jsonString renders s as the JSON string a raw field must equal.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// aBatchID and aFileID have their kinds' shapes.
var (
	aBatchID = domain.NewBatchID()
	aFileID  = domain.NewFileID()
)

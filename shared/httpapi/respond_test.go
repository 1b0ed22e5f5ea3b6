package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/fusillade/fusillade/shared/domain"
)

// getBatchFailing is an API whose GetBatch answers err.
func getBatchFailing(t *testing.T, err error) http.Handler {
	f := withKeys(newFake(t))
	f.GetBatchFn = func(context.Context, string, string) (domain.Batch, error) { return domain.Batch{}, err }
	return newAPI(f)
}

func TestEachErrorCodeHasItsStatusAndRetryHeaders(t *testing.T) {
	cases := []struct {
		err         *domain.Error
		status      int
		typ         string
		shouldRetry string // x-should-retry; "" = absent
		retryAfter  string
		code        string // the envelope's code, JSON
	}{
		{&domain.Error{Code: domain.ENotFound}, 404, "invalid_request_error", "false", "", "null"},
		{&domain.Error{Code: domain.EInvalid}, 400, "invalid_request_error", "false", "", "null"},
		{&domain.Error{Code: domain.EConflict}, 400, "invalid_request_error", "false", "", "null"},
		{&domain.Error{Code: domain.EUnauthorized}, 401, "invalid_request_error", "", "", `"invalid_api_key"`},
		{&domain.Error{Code: domain.EForbidden}, 403, "invalid_request_error", "", "", "null"},
		{&domain.Error{Code: domain.ETooLarge, Reason: "file_too_large"}, 413, "invalid_request_error", "", "", `"file_too_large"`},
		{&domain.Error{Code: domain.ERateLimited}, 429, "invalid_request_error", "", "", "null"},
		{&domain.Error{Code: domain.EUnavailable}, 503, "server_error", "true", "1", "null"},
		{&domain.Error{Code: domain.EInternal}, 500, "server_error", "", "", "null"},
		// Two reasons have statuses of their own.
		{&domain.Error{Code: domain.EConflict, Reason: "idempotency_key_reused"}, 422, "invalid_request_error", "false", "", `"idempotency_key_reused"`},
		{&domain.Error{Code: domain.EConflict, Reason: "idempotency_key_in_use"}, 409, "invalid_request_error", "", "1", `"idempotency_key_in_use"`},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%s", c.err.Code, c.err.Reason), func(t *testing.T) {
			c.err.Message = "the message for " + string(c.err.Code)
			w := call(t, getBatchFailing(t, c.err), "GET", "/v1/batches/"+aBatchID, tenantKey, "")
			if w.Code != c.status {
				t.Fatalf("status = %d, want %d", w.Code, c.status)
			}
			e := errorOf(t, w)
			if e.Error.Type != c.typ || e.Error.Message != c.err.Message || string(e.Error.Code) != c.code {
				t.Errorf("envelope = %+v; want type %s, message %q, code %s", e.Error, c.typ, c.err.Message, c.code)
			}
			if got := w.Header().Get("x-should-retry"); got != c.shouldRetry {
				t.Errorf("x-should-retry = %q, want %q", got, c.shouldRetry)
			}
			if got := w.Header().Get("Retry-After"); got != c.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, c.retryAfter)
			}
		})
	}
}

func TestAnErrorNamesItsParamAndLine(t *testing.T) {
	w := call(t, getBatchFailing(t, &domain.Error{Code: domain.EInvalid, Message: "bad", Param: "body.model", Line: 7}),
		"GET", "/v1/batches/"+aBatchID, tenantKey, "")
	if w.Code != 400 || !strings.Contains(w.Body.String(), `"param":"body.model"`) || !strings.Contains(w.Body.String(), `"line":7`) {
		t.Fatalf("status %d body %s: want 400 naming param body.model and line 7", w.Code, w.Body)
	}
}

func TestAnInternalErrorNeverLeaksItsMessage(t *testing.T) {
	const secret = "password=hunter2 host=db.internal"
	cases := map[string]error{
		"plain error":         errors.New("connect: " + secret),
		"wrapped plain error": fmt.Errorf("get batch: %w", errors.New(secret)),
		// A domain error wrapped in internal context: the client gets only its safe message.
		"wrapped domain error": fmt.Errorf("insert (%s): %w", secret, &domain.Error{Code: domain.EInvalid, Message: "safe"}),
	}
	for name, err := range cases {
		t.Run(name, func(t *testing.T) {
			w := call(t, getBatchFailing(t, err), "GET", "/v1/batches/"+aBatchID, tenantKey, "")
			if strings.Contains(w.Body.String(), "hunter2") || strings.Contains(w.Body.String(), "db.internal") {
				t.Fatalf("the response leaks the internal message: %s", w.Body)
			}
			e := errorOf(t, w)
			if domain.ErrorCode(err) == domain.EInternal {
				if w.Code != 500 || e.Error.Type != "server_error" || e.Error.Message != "The server had an error while processing your request." {
					t.Errorf("status %d envelope %+v, want the generic 500", w.Code, e.Error)
				}
			} else if w.Code != 400 || e.Error.Message != "safe" {
				t.Errorf("status %d envelope %+v, want 400 with the safe message", w.Code, e.Error)
			}
		})
	}
}

func TestAPanicIsAGeneric500(t *testing.T) {
	f := withKeys(newFake(t))
	f.GetBatchFn = func(context.Context, string, string) (domain.Batch, error) { panic("secret state: hunter2") }
	w := call(t, newAPI(f), "GET", "/v1/batches/"+aBatchID, tenantKey, "")
	if w.Code != 500 || strings.Contains(w.Body.String(), "hunter2") {
		t.Fatalf("status %d body %s: want a 500 without the panic's value", w.Code, w.Body)
	}
	errorOf(t, w)
}

func TestAnUnknownURLIsA404Envelope(t *testing.T) {
	w := call(t, newAPI(newFake(t)), "GET", "/v2/nothing", "", "")
	if w.Code != 404 || w.Header().Get("x-should-retry") != "false" {
		t.Fatalf("status %d, x-should-retry %q: want 404, false", w.Code, w.Header().Get("x-should-retry"))
	}
	errorOf(t, w)
}

func TestAMalformedPathIDIsRejectedBeforeTheStore(t *testing.T) {
	// GetBatch is unset: the store must not see the id.
	w := call(t, newAPI(withKeys(newFake(t))), "GET", "/v1/batches/batch_XYZ", tenantKey, "")
	if w.Code != 400 {
		t.Fatalf("status %d, want 400", w.Code)
	}
	if e := errorOf(t, w); string(e.Error.Param) != jsonString("id") {
		t.Errorf("param = %s, want \"id\"", e.Error.Param)
	}
}

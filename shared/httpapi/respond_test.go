package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// getBatchFailing is an API whose GetBatch answers err.
func getBatchFailing(t *testing.T, err error) http.Handler {
	f := withKeys(newFake(t))
	f.GetBatchFn = func(context.Context, string, string) (domain.Batch, error) { return domain.Batch{}, err }
	return newAPI(f)
}

func TestEachErrorCodeHasItsStatusAndRetryHeaders(t *testing.T) {
	t.Parallel()
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
			t.Parallel()
			c.err.Message = "the message for " + string(c.err.Code)
			w := call(t, getBatchFailing(t, c.err), "GET", "/v1/batches/"+aBatchID, tenantKey, "")
			require.Equal(t, c.status, w.Code, "body %s", w.Body)
			e := errorOf(t, w)
			assert.Equal(t, c.typ, e.Error.Type, "type")
			assert.Equal(t, c.err.Message, e.Error.Message, "message")
			assert.Equal(t, c.code, string(e.Error.Code), "code")
			assert.Equal(t, c.shouldRetry, w.Header().Get("x-should-retry"), "x-should-retry")
			assert.Equal(t, c.retryAfter, w.Header().Get("Retry-After"), "Retry-After")
		})
	}
}

func TestAnErrorNamesItsParamAndLine(t *testing.T) {
	t.Parallel()
	w := call(t, getBatchFailing(t, &domain.Error{Code: domain.EInvalid, Message: "bad", Param: "body.model", Line: 7}),
		"GET", "/v1/batches/"+aBatchID, tenantKey, "")
	require.Equal(t, 400, w.Code, "body %s", w.Body)
	require.Contains(t, w.Body.String(), `"param":"body.model"`)
	require.Contains(t, w.Body.String(), `"line":7`)
}

func TestAnInternalErrorNeverLeaksItsMessage(t *testing.T) {
	t.Parallel()
	const secret = "password=hunter2 host=db.internal"
	cases := map[string]error{
		"plain error":         errors.New("connect: " + secret),
		"wrapped plain error": fmt.Errorf("get batch: %w", errors.New(secret)),
		// A domain error wrapped in internal context: the client gets only its safe message.
		"wrapped domain error": fmt.Errorf("insert (%s): %w", secret, &domain.Error{Code: domain.EInvalid, Message: "safe"}),
	}
	for name, err := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := call(t, getBatchFailing(t, err), "GET", "/v1/batches/"+aBatchID, tenantKey, "")
			require.NotContains(t, w.Body.String(), "hunter2", "the response leaks the internal message")
			require.NotContains(t, w.Body.String(), "db.internal", "the response leaks the internal message")
			e := errorOf(t, w)
			if domain.ErrorCode(err) == domain.EInternal {
				// The generic 500.
				assert.Equal(t, 500, w.Code, "body %s", w.Body)
				assert.Equal(t, "server_error", e.Error.Type)
				assert.Equal(t, "The server had an error while processing your request.", e.Error.Message)
			} else {
				// 400 with the safe message.
				assert.Equal(t, 400, w.Code, "body %s", w.Body)
				assert.Equal(t, "safe", e.Error.Message)
			}
		})
	}
}

func TestAPanicIsAGeneric500(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	f.GetBatchFn = func(context.Context, string, string) (domain.Batch, error) { panic("secret state: hunter2") }
	w := call(t, newAPI(f), "GET", "/v1/batches/"+aBatchID, tenantKey, "")
	require.Equal(t, 500, w.Code, "body %s", w.Body)
	require.NotContains(t, w.Body.String(), "hunter2", "the panic's value leaks")
	errorOf(t, w)
}

func TestAnUnknownURLIsA404Envelope(t *testing.T) {
	t.Parallel()
	w := call(t, newAPI(newFake(t)), "GET", "/v2/nothing", "", "")
	require.Equal(t, 404, w.Code, "body %s", w.Body)
	require.Equal(t, "false", w.Header().Get("x-should-retry"))
	errorOf(t, w)
}

func TestAMalformedPathIDIsRejectedBeforeTheStore(t *testing.T) {
	t.Parallel()
	// GetBatch is unset: the store must not see the id.
	w := call(t, newAPI(withKeys(newFake(t))), "GET", "/v1/batches/batch_XYZ", tenantKey, "")
	require.Equal(t, 400, w.Code, "body %s", w.Body)
	e := errorOf(t, w)
	assert.Equal(t, jsonString("id"), string(e.Error.Param), "param")
}

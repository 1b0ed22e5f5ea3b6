package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/httpapi"
	"github.com/fusillade/fusillade/shared/webhooks"
)

// hooks is a WebhookStore that keeps endpoints in memory.
type hooks struct{ eps []domain.WebhookEndpoint }

func (h *hooks) CreateWebhookEndpoint(_ context.Context, e domain.WebhookEndpoint) (domain.WebhookEndpoint, error) {
	e.Object = "webhook_endpoint"
	h.eps = append(h.eps, e)
	return e, nil
}

func (h *hooks) ListWebhookEndpoints(context.Context, string) ([]domain.WebhookEndpoint, error) {
	return append([]domain.WebhookEndpoint(nil), h.eps...), nil
}

func (h *hooks) DeleteWebhookEndpoint(context.Context, string, string, time.Time) error { return nil }

func (h *hooks) ListWebhookDeliveries(context.Context, string, string, string, int) ([]domain.WebhookDelivery, bool, error) {
	return nil, false, nil
}

func webhookAPI(h *hooks, p webhooks.Policy) http.Handler {
	f := withKeys(&fake{})
	return httpapi.New(httpapi.Config{Webhooks: p}, httpapi.Deps{Store: f, Ingester: f, Batches: f, Engine: f, Queue: f,
		Webhooks: h, Now: func() time.Time { return testNow }})
}

// Registration answers the secret once; the list shows only its hint.
func TestCreateWebhookShowsTheSecretOnce(t *testing.T) {
	t.Parallel()
	h := &hooks{}
	api := webhookAPI(h, webhooks.Policy{})
	w := call(t, api, "POST", "/v1/webhooks", tenantKey, `{"url":"https://example.com/h","event_types":["batch.failed","batch.completed","batch.failed"]}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var got map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
	secret, _ := got["signing_secret"].(string)
	require.True(t, strings.HasPrefix(secret, "whsec_"))
	assert.Equal(t, []any{"batch.completed", "batch.failed"}, got["event_types"], "sorted, once each")
	require.Len(t, h.eps, 1)
	assert.Equal(t, secret, h.eps[0].Secret)
	assert.Equal(t, tenantID, h.eps[0].TenantID)

	l := call(t, api, "GET", "/v1/webhooks", tenantKey, "")
	require.Equal(t, http.StatusOK, l.Code)
	assert.NotContains(t, l.Body.String(), secret)
	assert.Contains(t, l.Body.String(), `"signing_secret_hint":"`+secret[:10]+`…"`)
}

func TestCreateWebhookRefusesBadRegistrations(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, body, param string
	}{
		{"metadata address", `{"url":"https://169.254.169.254/","event_types":["batch.completed"]}`, "url"},
		{"loopback", `{"url":"https://127.0.0.1/","event_types":["batch.completed"]}`, "url"},
		{"plain http", `{"url":"http://example.com/","event_types":["batch.completed"]}`, "url"},
		{"no events", `{"url":"https://example.com/","event_types":[]}`, "event_types"},
		{"unknown event", `{"url":"https://example.com/","event_types":["batch.done"]}`, ""},
		{"progress without settings", `{"url":"https://example.com/","event_types":["batch.progress"]}`, "event_types"},
		{"settings without progress", `{"url":"https://example.com/","event_types":["batch.completed"],"progress_every_percent":10}`, "event_types"},
		{"percent out of range", `{"url":"https://example.com/","event_types":["batch.progress"],"progress_every_percent":101}`, "progress_every_percent"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := &hooks{}
			w := call(t, webhookAPI(h, webhooks.Policy{}), "POST", "/v1/webhooks", tenantKey, c.body)
			require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
			if c.param != "" {
				assert.JSONEq(t, `"`+c.param+`"`, string(errorOf(t, w).Error.Param))
			}
			assert.NotContains(t, w.Body.String(), "169.254", "the answer names no address")
			assert.Empty(t, h.eps)
		})
	}
	w := call(t, webhookAPI(&hooks{}, webhooks.Policy{AllowPrivate: true}), "POST", "/v1/webhooks", tenantKey,
		`{"url":"http://127.0.0.1:9/h","event_types":["batch.completed"]}`)
	assert.Equal(t, http.StatusOK, w.Code, "allowed when the operator allows private targets")
}

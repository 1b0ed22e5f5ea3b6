package stack_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
	"github.com/fusillade/fusillade/shared/webhooks"
)

// received is one webhook request as the receiver saw it.
type received struct {
	id, timestamp, signature string
	body                     []byte
	at                       time.Time
}

// receiver is an httptest webhook receiver that answers batch.completed with fail's statuses
// first, then 204 (every other event 204 at once), and
// signals every request it gets.
type receiver struct {
	mu   sync.Mutex
	fail []int
	got  []received
	hit  chan struct{}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.got = append(rc.got, received{r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), body, time.Now()})
	status := http.StatusNoContent
	if len(rc.fail) > 0 && strings.Contains(string(body), `"type":"batch.completed"`) {
		status, rc.fail = rc.fail[0], rc.fail[1:]
	}
	rc.mu.Unlock()
	w.WriteHeader(status)
	rc.hit <- struct{}{}
}

func (rc *receiver) wait(t *testing.T, n int) []received {
	t.Helper()
	for {
		rc.mu.Lock()
		got := append([]received(nil), rc.got...)
		rc.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-rc.hit:
		case <-time.After(30 * time.Second):
			require.FailNow(t, "webhook not received", "got %d of %d", len(got), n)
		}
	}
}

// verify checks a request's Standard Webhooks signature as a receiver does and decodes its event.
func verify(t *testing.T, secret string, r received) map[string]any {
	t.Helper()
	ts, err := strconv.ParseInt(r.timestamp, 10, 64)
	require.NoError(t, err)
	assert.InDelta(t, time.Now().Unix(), ts, 300, "within the receivers' tolerance")
	require.True(t, webhooks.Verify(secret, r.id, ts, r.body, r.signature), "signature %s", r.signature)
	var ev map[string]any
	require.NoError(t, json.Unmarshal(r.body, &ev))
	assert.Equal(t, r.id, ev["id"], "webhook-id is the event id")
	return ev
}

// A tenant registers an endpoint; a batch that completes sends batch.completed, signed, to it.
// A receiver that fails is retried on the back-off schedule with the same id and body, and the
// deliveries list shows every attempt. batch.progress reports a running batch's counts.
func TestWebhooksDeliverSignedBatchEventsWithRetries(t *testing.T) {
	rc := &receiver{fail: []int{http.StatusInternalServerError, http.StatusBadGateway}, hit: make(chan struct{}, 100)}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	st := startStack(t, stack.Options{PurgeEvery: 100 * time.Millisecond, Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 1}},
		Env: map[string]string{"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_RETRY_SCHEDULE": "1s,2s"}})
	c := client(st, st.APIKey)

	wh := call(t, st, st.APIKey, "POST", "/v1/webhooks", strings.NewReader(`{"url":"`+srv.URL+`/hook","event_types":["batch.completed","batch.progress"],"progress_every_percent":50}`), "application/json")
	require.Equal(t, http.StatusOK, wh.Status, "%s", wh.Body)
	ep := wh.json(t)
	secret, _ := ep["signing_secret"].(string)
	require.True(t, strings.HasPrefix(secret, "whsec_"))
	epID, _ := ep["id"].(string)
	list := call(t, st, st.APIKey, "GET", "/v1/webhooks", nil, "")
	assert.NotContains(t, list.Body, secret, "the secret is shown once")

	// One slot: the two quick lines finish first, then the slow ones hold the batch at 50 %.
	slow := func(id string) string {
		return fmt.Sprintf(`{"custom_id":%q,"method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","messages":[],"mock_delay_ms":1500}}`, id)
	}
	f := uploadSDK(t, c, lines(chatLine("a", "mock-chat"), chatLine("b", "mock-chat"), slow("c"), slow("d")))
	status, b, body := postBatch(t, st, "/v1/batches", map[string]any{"input_file_id": f.ID, "endpoint": "/v1/chat/completions", "completion_window": "24h"})
	require.Equal(t, http.StatusOK, status, "%s", body)
	waitBatch(t, c, b.ID, time.Minute)

	// Which events arrive first depends on the passes; wait for the completed one delivered.
	var completed []received
	var progress map[string]any
	for n := 1; len(completed) < 3; n++ {
		completed = completed[:0]
		for _, r := range rc.wait(t, n) {
			switch ev := verify(t, secret, r); ev["type"] {
			case "batch.completed":
				completed = append(completed, r)
			case "batch.progress":
				progress = ev
			}
		}
	}
	require.NotNil(t, progress, "batch.progress at 50 %")
	assert.Equal(t, map[string]any{"id": b.ID, "request_counts": map[string]any{"total": 4.0, "completed": 2.0, "failed": 0.0}}, progress["data"])
	ev := verify(t, secret, completed[0])
	assert.Equal(t, "event", ev["object"])
	assert.Equal(t, map[string]any{"id": b.ID}, ev["data"])
	for _, r := range completed[1:] {
		assert.Equal(t, completed[0].id, r.id, "the same id on every retry")
		assert.Equal(t, completed[0].body, r.body, "the same body on every retry")
	}
	assert.GreaterOrEqual(t, completed[1].at.Sub(completed[0].at), time.Second, "first back-off")
	assert.GreaterOrEqual(t, completed[2].at.Sub(completed[1].at), 2*time.Second, "second back-off")

	var ds struct {
		Data []struct {
			ID, EventType, State string
			Log                  []struct {
				Attempt    int
				StatusCode int `json:"status_code"`
				Error      string
			} `json:"attempt_log"`
		}
	}
	require.Eventually(t, func() bool {
		r := call(t, st, st.APIKey, "GET", "/v1/webhooks/"+epID+"/deliveries", nil, "")
		require.NoError(t, json.Unmarshal([]byte(r.Body), &ds))
		for _, d := range ds.Data {
			if d.ID == completed[0].id {
				return d.State == "delivered"
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond)
	for _, d := range ds.Data {
		if d.ID != completed[0].id {
			continue
		}
		require.Len(t, d.Log, 3)
		assert.Equal(t, []int{500, 502, 204}, []int{d.Log[0].StatusCode, d.Log[1].StatusCode, d.Log[2].StatusCode})
		assert.Equal(t, "HTTP 500", d.Log[0].Error)
		assert.Empty(t, d.Log[2].Error)
	}
}

// A running batch whose pace misses its deadline sends batch.deadline_at_risk, signed, once, with
// the deadline and the estimate; a batch on pace sends none.
func TestABatchThatWillMissItsDeadlineWarnsByWebhook(t *testing.T) {
	rc := &receiver{hit: make(chan struct{}, 100)}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	st := startStack(t, stack.Options{PurgeEvery: 100 * time.Millisecond,
		Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 1}, {Name: "mock-slow", Limit: 1}},
		Env:    map[string]string{"WEBHOOK_ALLOW_PRIVATE": "true", "COMPLETION_WINDOWS": "1h,20s"}})
	c := client(st, st.APIKey)
	wh := call(t, st, st.APIKey, "POST", "/v1/webhooks", strings.NewReader(`{"url":"`+srv.URL+`/hook","event_types":["batch.deadline_at_risk"]}`), "application/json")
	require.Equal(t, http.StatusOK, wh.Status, "%s", wh.Body)
	secret, _ := wh.json(t)["signing_secret"].(string)

	// 20 lines of 50 ms in an hour; 60 of 500 ms (30 s of work, one at a time) in 20 s.
	ok := createWindow(t, st, uploadSDK(t, c, paced("mock-chat", 20, 50)).ID, "1h")
	tight := createWindow(t, st, uploadSDK(t, c, paced("mock-slow", 60, 500)).ID, "20s")

	ev := verify(t, secret, rc.wait(t, 1)[0])
	require.Equal(t, "batch.deadline_at_risk", ev["type"])
	data, _ := ev["data"].(map[string]any)
	require.Equal(t, tight, data["id"])
	expires, _ := data["expires_at"].(float64)
	eta, _ := data["estimated_completion_at"].(float64)
	assert.Greater(t, eta, expires, "the estimate passes the deadline")
	_, err := c.Batches.Cancel(t.Context(), tight)
	require.NoError(t, err)
	waitBatch(t, c, tight, time.Minute)
	waitBatch(t, c, ok, time.Minute)

	// Both batches ended: the passes since had every chance to send more; one event in all.
	var ds struct {
		Data []struct {
			EventType string `json:"event_type"`
			BatchID   string `json:"batch_id"`
		} `json:"data"`
	}
	r := call(t, st, st.APIKey, "GET", "/v1/webhooks/"+wh.json(t)["id"].(string)+"/deliveries", nil, "")
	require.NoError(t, json.Unmarshal(r.Body, &ds))
	require.Len(t, ds.Data, 1, "%s", r.Body)
	assert.Equal(t, tight, ds.Data[0].BatchID)
}

package stack_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/mockupstream"
	"github.com/fusillade/fusillade/local/stack"
)

// keyedUpstream stands in for a real upstream that wants a key: it records the Authorization
// header of every call, answers 401 without the right key and otherwise like the mock.
type keyedUpstream struct {
	*httptest.Server
	Mock *mockupstream.Server
	mu   sync.Mutex
	auth []string
}

func newKeyedUpstream(t *testing.T, key string) *keyedUpstream {
	u := &keyedUpstream{Mock: mockupstream.New(mockupstream.Config{})}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.auth = append(u.auth, r.Header.Get("Authorization"))
		u.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+key {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`))
			return
		}
		u.Mock.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *keyedUpstream) Authorizations() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.auth...)
}

// A model on a real upstream gets the key its env: reference names from the process
// environment, and the README's settings in the process environment (here MAX_RETRIES=0) take
// effect in the stack.
func TestStackReadsUpstreamKeysAndSettingsFromTheProcessEnvironment(t *testing.T) {
	const key = "sk-local-test-7f3a"
	t.Setenv("FUSILLADE_UPSTREAM_KEY_LOCALTEST", key)
	t.Setenv("MAX_RETRIES", "0")
	up := newKeyedUpstream(t, key)
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "real-chat", BaseURL: up.URL,
		CredentialRef: "env:FUSILLADE_UPSTREAM_KEY_LOCALTEST", Limit: 2}}})
	require.Equal(t, 0, st.App.Config.Retry.MaxRetries, "MAX_RETRIES from the process environment")
	c := client(st, st.APIKey)
	var content strings.Builder
	for i := range 3 {
		fmt.Fprintf(&content, `{"custom_id":"ok-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"real-chat","messages":[]}}`+"\n", i)
	}
	content.WriteString(`{"custom_id":"fails","method":"POST","url":"/v1/chat/completions","body":{"model":"real-chat","messages":[],"mock_status":500}}` + "\n")
	f := uploadSDK(t, c, []byte(content.String()))
	done := waitBatch(t, c, newBatch(t, c, f.ID).ID, time.Minute)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	require.EqualValues(t, 3, done.RequestCounts.Completed)
	require.EqualValues(t, 1, done.RequestCounts.Failed, "with MAX_RETRIES=0 the 500 is not retried")
	auth := up.Authorizations()
	require.Len(t, auth, 4, "one call per line, no retry")
	for _, a := range auth {
		require.Equal(t, "Bearer "+key, a)
	}
	models, err := st.App.Store.ListModels(context.Background())
	require.NoError(t, err)
	require.Len(t, models, 1)
	require.Equal(t, "env:FUSILLADE_UPSTREAM_KEY_LOCALTEST", models[0].CredentialRef, "the reference is stored, never the key")
}

// The stack's wiring is its own: a process environment pointing elsewhere (as on a machine set
// up for AWS) does not redirect the stack's queues or database, while its defaults give way.
func TestProcessEnvironmentOverridesDefaultsButNotTheStacksWiring(t *testing.T) {
	t.Setenv("SQS_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("COMPLETION_WINDOWS", "24h")
	st := startStack(t, stack.Options{})
	require.NotEqual(t, "http://127.0.0.1:1", st.App.Config.SQSEndpoint)
	require.Equal(t, []string{"24h"}, st.App.Config.CompletionWins)
	c := client(st, st.APIKey)
	f := uploadSDK(t, c, jsonlFile(2, "mock-chat"))
	require.Equal(t, openai.BatchStatusCompleted, waitBatch(t, c, newBatch(t, c, f.ID).ID, time.Minute).Status)
}

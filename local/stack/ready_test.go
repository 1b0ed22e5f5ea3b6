package stack_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
)

// GET /readyz reaches the real dependencies through the functions' own clients: a ping of the
// database and a GetQueueAttributes of the work queue, both ok.
func TestReadyChecksTheDatabaseAndTheWorkQueue(t *testing.T) {
	st := startStack(t, stack.Options{})
	before := st.SQSEmulator.Requests()["GetQueueAttributes"].Calls
	resp, err := http.Get(st.APIURL + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var got struct {
		Status string                       `json:"status"`
		Checks map[string]map[string]string `json:"checks"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	assert.Equal(t, "ready", got.Status)
	assert.Equal(t, map[string]map[string]string{"database": {"status": "ok"}, "work_queue": {"status": "ok"}}, got.Checks)
	assert.Greater(t, st.SQSEmulator.Requests()["GetQueueAttributes"].Calls, before, "the queue was asked")
}

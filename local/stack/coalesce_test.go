package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/mockupstream"
	"github.com/fusillade/fusillade/local/stack"
)

// coalesceGate holds every call of the coalescing test until the second batch is running.
const coalesceGate = "coalesce-gate"

// coalesceFile is a file of chat lines asking qs, one line each, custom ids prefix-0, prefix-1, ….
func coalesceFile(prefix string, qs []string) []byte {
	var b bytes.Buffer
	for i, q := range qs {
		fmt.Fprintf(&b, `{"custom_id":"%s-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","mock_block":%q,"messages":[{"role":"user","content":%q}]}}`+"\n",
			prefix, i, coalesceGate, q)
	}
	return b.Bytes()
}

// coalesceCounts are the batch object's coalescing extensions.
type coalesceCounts struct {
	Coalesce       bool `json:"coalesce"`
	CoalescedCount int  `json:"coalesced_count"`
	CachedCount    int  `json:"cached_count"`
	Status         string
}

func batchCoalescing(t *testing.T, st *stack.Stack, id string) coalesceCounts {
	t.Helper()
	r := callJSON(t, st, st.APIKey, "GET", "/v1/batches/"+id, nil)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var c coalesceCounts
	require.NoError(t, json.Unmarshal(r.Body, &c))
	return c
}

// outputOf reads a batch's output file: each line's custom_id, its id, and the total_tokens of
// its response, by custom_id; every custom_id and id must appear once.
func outputOf(t *testing.T, c openai.Client, b *openai.Batch) map[string]int {
	t.Helper()
	require.NotEmpty(t, b.OutputFileID)
	tokens, ids := map[string]int{}, map[string]bool{}
	for _, l := range readLines(t, c, b.OutputFileID) {
		cid, id := l["custom_id"].(string), l["id"].(string)
		_, seen := tokens[cid]
		require.False(t, seen, "custom_id %s appears twice", cid)
		require.False(t, ids[id], "id %s appears twice", id)
		ids[id] = true
		resp := l["response"].(map[string]any)
		require.InDelta(t, 200, resp["status_code"], 0)
		usage := resp["body"].(map[string]any)["usage"].(map[string]any)
		tokens[cid] = int(usage["total_tokens"].(float64))
	}
	return tokens
}

// Lines with the same model, endpoint and body, within a batch and across a second running batch
// of the tenant, reach the upstream once, and every line gets the one answer under its own
// custom_id; the batches' usage counts each answer's tokens once. A rerun of the first file with
// the result cache on makes no upstream call at all.
func TestCoalescingSendsEachDistinctBodyUpstreamOnce(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 4}},
		Env: map[string]string{"COALESCE_CACHE_TTL": "1h"}, Upstream: mockupstream.Config{Record: true}})
	c := client(st, st.APIKey)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The first file: 50 lines, 30 distinct bodies (q0..q29), then q0..q19 again: 40 % repeat.
	var first []string
	for i := range 50 {
		first = append(first, fmt.Sprintf("q%d", i%30))
	}
	// The second: 20 lines, q0..q9 (the first batch's) and r0..r4 twice.
	var second []string
	for i := range 10 {
		second = append(second, fmt.Sprintf("q%d", i))
	}
	for i := range 10 {
		second = append(second, fmt.Sprintf("r%d", i%5))
	}
	const distinct = 35 // q0..q29 and r0..r4

	fa := uploadSDK(t, c, coalesceFile("a", first))
	status, ba, body := postBatch(t, st, "/v1/batches", map[string]any{"input_file_id": fa.ID, "endpoint": "/v1/chat/completions",
		"completion_window": "24h", "coalesce": true})
	require.Equal(t, http.StatusOK, status, "%s", body)
	// Every slot holds a call: the first batch is running, with most of its lines pending.
	require.NoError(t, st.Upstream.WaitBlocked(ctx, coalesceGate, 4))
	// The second batch opts in with the metadata key.
	fb := uploadSDK(t, c, coalesceFile("b", second))
	status, bb, body := postBatch(t, st, "/v1/batches", map[string]any{"input_file_id": fb.ID, "endpoint": "/v1/chat/completions",
		"completion_window": "24h", "metadata": map[string]string{"fusillade_coalesce": "true"}})
	require.Equal(t, http.StatusOK, status, "%s", body)
	for batchCoalescing(t, st, bb.ID).Status != "in_progress" {
		select {
		case <-ctx.Done():
			require.Fail(t, "the second batch never started")
		case <-time.After(20 * time.Millisecond):
		}
	}
	require.True(t, batchCoalescing(t, st, bb.ID).Coalesce)
	st.Upstream.Release(coalesceGate)

	a := waitBatch(t, c, ba.ID, time.Minute)
	b := waitBatch(t, c, bb.ID, time.Minute)
	require.Equal(t, openai.BatchStatusCompleted, a.Status)
	require.Equal(t, openai.BatchStatusCompleted, b.Status)
	require.EqualValues(t, distinct, st.Upstream.Calls(), "one upstream call per distinct body")
	sent := map[string]int{}
	for _, r := range st.Upstream.Requests() {
		var doc struct {
			Messages []struct{ Content string } `json:"messages"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &doc))
		sent[doc.Messages[0].Content]++
	}
	require.Len(t, sent, distinct)
	for q, n := range sent {
		require.Equal(t, 1, n, "%s was sent %d times", q, n)
	}

	outA, outB := outputOf(t, c, a), outputOf(t, c, b)
	require.Len(t, outA, 50)
	require.Len(t, outB, 20)
	require.EqualValues(t, 50, a.RequestCounts.Completed)
	require.EqualValues(t, 20, b.RequestCounts.Completed)
	ca, cb := batchCoalescing(t, st, a.ID), batchCoalescing(t, st, b.ID)
	require.Equal(t, 50+20-distinct, ca.CoalescedCount+cb.CoalescedCount, "every line but one per body took another's answer")
	require.Zero(t, ca.CachedCount+cb.CachedCount)
	// Usage: each distinct answer's tokens once over the two batches.
	perBody := map[string]int{}
	for i, q := range first {
		perBody[q] = outA[fmt.Sprintf("a-%d", i)]
	}
	for i, q := range second {
		require.Contains(t, []int{0, outB[fmt.Sprintf("b-%d", i)]}, perBody[q], "the same body, the same answer")
		perBody[q] = outB[fmt.Sprintf("b-%d", i)]
	}
	want := 0
	for _, n := range perBody {
		want += n
	}
	require.EqualValues(t, want, a.Usage.TotalTokens+b.Usage.TotalTokens, "tokens counted once per upstream call")

	// The first file again, with the result cache on: every line is served from it.
	fc := uploadSDK(t, c, coalesceFile("c", first))
	status, bc, body := postBatch(t, st, "/v1/batches", map[string]any{"input_file_id": fc.ID, "endpoint": "/v1/chat/completions",
		"completion_window": "24h", "coalesce": true})
	require.Equal(t, http.StatusOK, status, "%s", body)
	rerun := waitBatch(t, c, bc.ID, time.Minute)
	require.Equal(t, openai.BatchStatusCompleted, rerun.Status)
	require.EqualValues(t, distinct, st.Upstream.Calls(), "the rerun made no upstream call")
	outC := outputOf(t, c, rerun)
	require.Len(t, outC, 50)
	ids := make([]string, 0, len(outC))
	for cid, n := range outC {
		ids = append(ids, cid)
		require.Equal(t, perBody[first[indexOf(t, cid)]], n, "%s: the cached answer", cid)
	}
	sort.Strings(ids)
	require.Equal(t, "c-0", ids[0])
	require.Equal(t, 50, batchCoalescing(t, st, rerun.ID).CachedCount)
	require.Zero(t, rerun.Usage.TotalTokens, "no tokens were spent on the rerun")
}

// indexOf is the line index N of a custom id "x-N".
func indexOf(t *testing.T, cid string) int {
	t.Helper()
	var n int
	_, err := fmt.Sscanf(cid[2:], "%d", &n)
	require.NoError(t, err, "%s", cid)
	return n
}

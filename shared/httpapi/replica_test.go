package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/httpapi"
)

// oneBlob serves one stored object; the content tests need nothing else of the bucket.
type oneBlob struct {
	httpapi.Blobs
	body string
}

func (b oneBlob) Get(context.Context, string) (io.ReadCloser, int64, error) {
	return io.NopCloser(strings.NewReader(b.body)), int64(len(b.body)), nil
}

// The GET routes show the views (which a replica may serve); what decides a write reads the
// newest state. Here the two disagree, as a lagging replica and the primary would.
func TestGetsShowTheViewAndWritesDecideOnTheNewestState(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	file := func(name string, status string) domain.File {
		return domain.File{ID: aFileID, TenantID: tenantID, Filename: name, Purpose: domain.PurposeBatch, Status: status,
			ObjectKey: "k", Bytes: 3, Lines: 1, CreatedAt: testNow}
	}
	f.ViewFileFn = func(context.Context, string, string) (domain.File, error) {
		return file("view.jsonl", domain.FileUploaded), nil
	}
	f.GetFileFn = func(context.Context, string, string) (domain.File, error) {
		return file("newest.jsonl", domain.FileProcessed), nil
	}
	f.ViewBatchFn = func(_ context.Context, _, id string) (domain.Batch, error) {
		return domain.Batch{ID: id, TenantID: tenantID, Status: domain.BatchValidating, CreatedAt: testNow, ExpiresAt: testNow.Add(time.Hour)}, nil
	}
	api := httpapi.New(httpapi.Config{}, httpapi.Deps{Store: f, Ingester: f, Batches: f, Engine: f, Blobs: oneBlob{body: "{}\n"},
		Now: func() time.Time { return testNow }})

	w := call(t, api, "GET", "/v1/files/"+aFileID, tenantKey, "")
	require.Equal(t, 200, w.Code, "body %s", w.Body)
	var fo struct{ Filename string }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &fo))
	require.Equal(t, "view.jsonl", fo.Filename)

	w = call(t, api, "GET", "/v1/batches/"+aBatchID, tenantKey, "")
	require.Equal(t, 200, w.Code, "body %s", w.Body)
	require.Contains(t, w.Body.String(), `"validating"`)

	// The view still says uploaded (its copy predates the completion): "not ready" is asked of
	// the newest state, which has the content.
	w = call(t, api, "GET", "/v1/files/"+aFileID+"/content", tenantKey, "")
	require.Equal(t, 200, w.Code, "body %s", w.Body)
	require.Equal(t, "{}\n", w.Body.String())

	// Completing an upload decides on the newest state: processed already, so it answers it as is.
	w = call(t, api, "POST", "/v1/files/"+aFileID+"/complete", tenantKey, "")
	require.Equal(t, 200, w.Code, "body %s", w.Body)
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &fo))
	require.Equal(t, "newest.jsonl", fo.Filename)
}

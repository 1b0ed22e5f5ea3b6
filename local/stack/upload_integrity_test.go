package stack_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
)

// putTo PUTs content to a presigned upload URL and returns the status S3 answered.
func putTo(t *testing.T, url string, content []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(content))
	require.NoError(t, err)
	req.ContentLength = int64(len(content))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// download reads a file's whole content through the API, following a redirect to S3.
func download(t *testing.T, st *stack.Stack, fileID string) []byte {
	t.Helper()
	r := call(t, st, st.APIKey, "GET", "/v1/files/"+fileID+"/content", nil, "")
	if r.Status != http.StatusFound {
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		return r.Body
	}
	resp, err := http.Get(r.Header.Get("Location"))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

// requireSameContent compares file contents without printing megabytes: it names the first
// differing byte and the lines around it.
func requireSameContent(t *testing.T, want, got []byte, msg string) {
	t.Helper()
	if bytes.Equal(want, got) {
		return
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	excerpt := func(b []byte) string { return string(b[max(0, i-40):min(len(b), i+40)]) }
	require.Failf(t, msg, "%d bytes wanted, %d got; first difference at byte %d: want …%s… got …%s…", len(want), len(got), i, excerpt(want), excerpt(got))
}

// sameSizeFiles returns two valid files of exactly the same size whose custom_ids differ: the
// first uses the prefix "a", the second "b". pad makes every line that much longer.
func sameSizeFiles(n, pad int, model string) (a, b []byte) {
	build := func(prefix string) []byte {
		var buf bytes.Buffer
		for i := range n {
			fmt.Fprintf(&buf, `{"custom_id":"%s%06d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"hi"}],"pad":%q}}`+"\n",
				prefix, i, model, strings.Repeat("x", pad))
		}
		return buf.Bytes()
	}
	return build("a"), build("b")
}

// PUTting other bytes to a presigned upload URL after POST /v1/files/{id}/complete accepted the
// content changes nothing: the download (inline, paged, and the redirect to S3 for a large
// file) and the batch run all see the content that was validated.
func TestRePutAfterCompleteDoesNotChangeTheValidatedFile(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 4}}})
	c := client(st, st.APIKey)

	for _, tc := range []struct {
		name     string
		n, pad   int
		redirect bool
	}{
		{"inline", 3, 0, false},
		{"large file served by redirect", 1100, 4000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good, other := sameSizeFiles(tc.n, tc.pad, "mock-chat")
			require.Len(t, other, len(good))
			r := callJSON(t, st, st.APIKey, "POST", "/v1/files", map[string]any{"filename": "big.jsonl", "purpose": "batch", "bytes": len(good)})
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))
			pending := r.json(t)
			id, url := pending["id"].(string), pending["upload_url"].(string)
			require.Equal(t, http.StatusOK, putTo(t, url, good))
			done := call(t, st, st.APIKey, "POST", "/v1/files/"+id+"/complete", nil, "")
			require.Equal(t, http.StatusOK, done.Status, string(done.Body))
			require.Equal(t, "processed", done.json(t)["status"])

			// The URL is still within its validity: S3 takes the PUT, but it must not matter.
			require.Equal(t, http.StatusOK, putTo(t, url, other))

			if tc.redirect {
				require.Equal(t, http.StatusFound, call(t, st, st.APIKey, "GET", "/v1/files/"+id+"/content", nil, "").Status)
			}
			requireSameContent(t, good, download(t, st, id), "the download is the validated content")
			pg := call(t, st, st.APIKey, "GET", "/v1/files/"+id+"/content?limit=1", nil, "")
			require.Equal(t, http.StatusOK, pg.Status)
			require.Contains(t, string(pg.Body), `"custom_id":"a000000"`)

			// Completing again answers the processed file unchanged and does not pick up the new bytes.
			again := call(t, st, st.APIKey, "POST", "/v1/files/"+id+"/complete", nil, "")
			require.Equal(t, http.StatusOK, again.Status)
			requireSameContent(t, good, download(t, st, id), "after a second complete")

			if tc.redirect {
				return // the batch run is checked on the small file; this one would only take longer
			}
			b := newBatch(t, c, id)
			b = waitBatch(t, c, b.ID, 30*time.Second)
			require.Equal(t, openai.BatchStatusCompleted, b.Status, "errors: %+v", b.Errors)
			var ids []string
			for _, l := range readLines(t, c, b.OutputFileID) {
				ids = append(ids, l["custom_id"].(string))
			}
			require.ElementsMatch(t, []string{"a000000", "a000001", "a000002"}, ids, "the batch ran the validated lines")
		})
	}
}

// A part sent to an Uploads-API upload after it completed is refused, and the file keeps the
// content that was validated at complete.
func TestPartAddedAfterUploadCompleteIsRefusedAndChangesNothing(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 4}}})
	c := client(st, st.APIKey)
	ctx := context.Background()
	good, other := sameSizeFiles(2, 0, "mock-chat")
	up, err := c.Uploads.New(ctx, openai.UploadNewParams{Bytes: int64(len(good)), Filename: "parts.jsonl",
		MimeType: "application/jsonl", Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	p, err := c.Uploads.Parts.New(ctx, up.ID, openai.UploadPartNewParams{Data: bytes.NewReader(good)})
	require.NoError(t, err)
	done, err := c.Uploads.Complete(ctx, up.ID, openai.UploadCompleteParams{PartIDs: []string{p.ID}})
	require.NoError(t, err)
	require.Equal(t, openai.UploadStatusCompleted, done.Status)

	_, err = c.Uploads.Parts.New(ctx, up.ID, openai.UploadPartNewParams{Data: bytes.NewReader(other)})
	_ = sdkError(t, err, http.StatusBadRequest, "already completed")
	_, err = c.Uploads.Complete(ctx, up.ID, openai.UploadCompleteParams{PartIDs: []string{p.ID}})
	_ = sdkError(t, err, http.StatusBadRequest, "already completed")
	requireSameContent(t, good, download(t, st, done.File.ID), "the download is the validated content")
}

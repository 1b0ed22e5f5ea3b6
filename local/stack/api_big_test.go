package stack_test

import (
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

// paddedLines generates n request lines of exactly size bytes each (newline included) on the
// fly, so a 200 MB file never exists on disk or in the repository.
type paddedLines struct {
	n, size, i int
	buf        []byte
}

func (p *paddedLines) Read(b []byte) (int, error) {
	total := 0
	for len(b) > 0 {
		if len(p.buf) == 0 {
			if p.i == p.n {
				if total == 0 {
					return 0, io.EOF
				}
				return total, nil
			}
			head := fmt.Sprintf(`{"custom_id":"r%06d","method":"POST","url":"/v1/chat/completions","body":{"model":"idle","pad":"`, p.i)
			tail := `"}}` + "\n"
			p.buf = []byte(head + strings.Repeat("x", p.size-len(head)-len(tail)) + tail)
			p.i++
		}
		n := copy(b, p.buf)
		p.buf, b, total = p.buf[n:], b[n:], total+n
	}
	return total, nil
}

// A 200 MB, 50,000-line file (both of OpenAI's limits, exactly) goes through the large-file
// path: presigned PUT straight to S3, validation on complete, and a batch that populates to
// 50,000 requests. The model's limit is 0, so nothing is sent upstream.
func TestTwoHundredMegabyteFileThroughThePresignedPath(t *testing.T) {
	if testing.Short() {
		t.Skip("200 MB upload")
	}
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "idle", Limit: 0}}})
	c := client(st, st.APIKey)
	const lines, size = 50_000, 4_000
	const total = lines * size
	require.EqualValues(t, 200_000_000, total)

	id := presign(t, st, st.APIKey, total, &paddedLines{n: lines, size: size}, total)
	r := call(t, st, st.APIKey, "POST", "/v1/files/"+id+"/complete", nil, "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	f := r.json(t)
	require.Equal(t, "processed", f["status"])
	require.EqualValues(t, total, f["bytes"])

	b := newBatch(t, c, id)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for {
		got, err := c.Batches.Get(ctx, b.ID)
		require.NoError(t, err)
		if got.Status == openai.BatchStatusInProgress {
			require.EqualValues(t, lines, got.RequestCounts.Total)
			require.EqualValues(t, 0, got.RequestCounts.Completed)
			break
		}
		require.Equal(t, openai.BatchStatusValidating, got.Status, "errors: %+v", got.Errors)
		select {
		case <-ctx.Done():
			require.Fail(t, "batch did not populate in time")
		case <-time.After(200 * time.Millisecond):
		}
	}
	res := call(t, st, st.APIKey, "GET", "/v1/batches/"+b.ID+"/results?offset=49999", nil, "")
	require.Contains(t, string(res.Body), `"custom_id":"r049999"`)
	require.Equal(t, "50000", res.Header.Get("X-Last-Line"))

	// The finished input file downloads by a redirect to S3.
	dl := call(t, st, st.APIKey, "GET", "/v1/files/"+id+"/content", nil, "")
	require.Equal(t, http.StatusFound, dl.Status)
	require.EqualValues(t, 0, st.Upstream.Calls())
}

package batches_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/batches"
	"github.com/fusillade/fusillade/shared/domain"
)

// Every answer of Extend by the batch it finds: a running batch moves to created_at + window; a
// window that does not end later is the caller's mistake (invalid, on completion_window); a batch
// that ended or reached its deadline is a conflict pointing at rerun; a write that lost a race
// explains itself from the batch as it now is.
func TestExtendAnswersByTheBatchItFinds(t *testing.T) {
	t.Parallel()
	created := testNow.Add(-time.Hour)
	running := domain.Batch{ID: aBatchID, TenantID: tenantID, Status: domain.BatchInProgress, CreatedAt: created, ExpiresAt: created.Add(24 * time.Hour)}
	ended := running
	ended.Status = domain.BatchCompleted
	due := running
	due.ExpiresAt = testNow
	swept := running
	swept.ExpiredAt = &testNow
	for _, tc := range []struct {
		name    string
		batch   domain.Batch
		window  string
		store   error        // ExtendBatch's answer; nil with wantErr "" means it is called and succeeds
		reread  domain.Batch // GetBatch after a lost race
		code    domain.Code
		param   string
		mention string
	}{
		{name: "running", batch: running, window: "48h"},
		{name: "not later", batch: running, window: "24h", code: domain.EInvalid, param: "completion_window", mention: "not after its current deadline"},
		{name: "bad window", batch: running, window: "soon", code: domain.EInvalid, param: "completion_window"},
		{name: "ended", batch: ended, window: "48h", code: domain.EConflict, mention: "/rerun"},
		{name: "at its deadline", batch: due, window: "48h", code: domain.EConflict, mention: "reached its deadline"},
		{name: "swept", batch: swept, window: "48h", code: domain.EConflict, mention: "reached its deadline"},
		{name: "lost a race", batch: running, window: "48h", store: domain.ErrStateConflict, reread: ended, code: domain.EConflict, mention: "is completed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			reads := 0
			f.GetBatchFn = func(_ context.Context, tenant, id string) (domain.Batch, error) {
				reads++
				if reads > 1 && tc.store != nil {
					return tc.reread, nil
				}
				return tc.batch, nil
			}
			called := false
			f.ExtendBatchFn = func(_ context.Context, tenant, id, window string, expiresAt, now time.Time) error {
				called = true
				assert.Equal(t, tenantID, tenant)
				assert.Equal(t, tc.window, window)
				assert.True(t, expiresAt.Equal(created.Add(48*time.Hour)), "expires_at %v: created_at + window", expiresAt)
				assert.True(t, now.Equal(testNow))
				return tc.store
			}
			b, err := newService(f).Extend(context.Background(), tenantID, aBatchID, tc.window)
			if tc.code == "" {
				require.NoError(t, err)
				require.True(t, called)
				require.Equal(t, aBatchID, b.ID)
				return
			}
			require.Equal(t, tc.code, domain.ErrorCode(err), "err %v", err)
			var de *domain.Error
			require.ErrorAs(t, err, &de)
			assert.Equal(t, tc.param, de.Param)
			assert.Contains(t, de.Message, tc.mention)
			assert.Equal(t, tc.store != nil, called, "the store is written only when the batch may be extended")
		})
	}
}

// A rerun takes the source's window and metadata unless given, creates a validating batch of the
// source's input file and endpoint expiring a window from now, and dispatches the models of the
// copied lines; a rerun that already existed dispatches nothing.
func TestRerunDefaultsToTheSourceAndDispatchesOnlyANewRerun(t *testing.T) {
	t.Parallel()
	src := domain.Batch{ID: aBatchID, TenantID: tenantID, Status: domain.BatchExpired, InputFileID: "file-in", Endpoint: "/v1/embeddings",
		CompletionWindow: "24h", Metadata: map[string]string{"team": "a"}}
	for _, tc := range []struct {
		name       string
		req        batches.Rerun
		existing   bool
		wantWindow string
		wantMeta   map[string]string
	}{
		{"defaults", batches.Rerun{}, false, "24h", map[string]string{"team": "a"}},
		{"given", batches.Rerun{CompletionWindow: "48h", Metadata: map[string]string{"try": "2"}}, false, "48h", map[string]string{"try": "2"}},
		{"existing", batches.Rerun{}, true, "24h", map[string]string{"team": "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			var rerunID string
			f.GetBatchFn = func(_ context.Context, tenant, id string) (domain.Batch, error) {
				if id == aBatchID {
					return src, nil
				}
				assert.Equal(t, rerunID, id, "the answer is the rerun")
				return domain.Batch{ID: id, RerunOf: aBatchID}, nil
			}
			f.RerunBatchFn = func(_ context.Context, tenant, sourceID string, b domain.Batch, now time.Time) (domain.Rerun, error) {
				assert.Equal(t, aBatchID, sourceID)
				assert.Equal(t, domain.BatchValidating, b.Status)
				assert.Equal(t, "file-in", b.InputFileID)
				assert.Equal(t, "/v1/embeddings", b.Endpoint)
				assert.Equal(t, tc.wantWindow, b.CompletionWindow)
				assert.Equal(t, tc.wantMeta, b.Metadata)
				assert.Equal(t, int64(7), b.CreatedByKey)
				w, _ := domain.ParseWindow(tc.wantWindow)
				assert.True(t, b.ExpiresAt.Equal(testNow.Add(w)))
				assert.NotEmpty(t, b.OutputFileID)
				assert.NotEmpty(t, b.ErrorFileID)
				rerunID = b.ID
				if tc.existing {
					rerunID = domain.NewBatchID()
					return domain.Rerun{BatchID: rerunID, Existing: true}, nil
				}
				return domain.Rerun{BatchID: b.ID, Models: []string{"m1", "m2"}}, nil
			}
			var dispatched []string
			if !tc.existing {
				f.DispatchFn = func(_ context.Context, models ...string) error { dispatched = models; return nil }
			}
			req := tc.req
			req.TenantID, req.BatchID, req.CreatedByKey = tenantID, aBatchID, 7
			b, err := newService(f).Rerun(context.Background(), req)
			require.NoError(t, err)
			require.Equal(t, rerunID, b.ID)
			if !tc.existing {
				require.Equal(t, []string{"m1", "m2"}, dispatched)
			}
		})
	}
}

package domain_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

func TestMessageBatchStatusOfEveryBatchStatus(t *testing.T) {
	t.Parallel()
	want := map[domain.BatchStatus]string{
		domain.BatchValidating: "in_progress", domain.BatchInProgress: "in_progress", domain.BatchFinalizing: "in_progress",
		domain.BatchCancelling: "canceling",
		domain.BatchCompleted:  "ended", domain.BatchFailed: "ended", domain.BatchExpired: "ended", domain.BatchCancelled: "ended",
	}
	assert.Len(t, want, len(domain.BatchStatuses), "every status is mapped")
	for _, st := range domain.BatchStatuses {
		assert.Equal(t, want[st], domain.MessageBatchStatus(st), st)
	}
}

func TestMessageRequestCountsSumToTheBatch(t *testing.T) {
	t.Parallel()
	rows := map[domain.RequestState]int{domain.StateCompleted: 2, domain.StateFailed: 1, domain.StateCanceled: 1,
		domain.StateExpired: 1, domain.StatePending: 3, domain.StateProcessing: 2}
	cases := []struct {
		name   string
		rows   map[domain.RequestState]int
		total  int
		status domain.BatchStatus
		want   domain.MessageRequestCounts
	}{
		{"running", rows, 10, domain.BatchInProgress, domain.MessageRequestCounts{Processing: 5, Succeeded: 2, Errored: 1, Canceled: 1, Expired: 1}},
		{"validating, no rows", nil, 4, domain.BatchValidating, domain.MessageRequestCounts{Processing: 4}},
		{"ended", map[domain.RequestState]int{domain.StateCompleted: 3, domain.StateExpired: 1}, 4, domain.BatchExpired,
			domain.MessageRequestCounts{Succeeded: 3, Expired: 1}},
		{"failed before it ran", nil, 4, domain.BatchFailed, domain.MessageRequestCounts{Errored: 4}},
		{"cancelled before it ran", nil, 4, domain.BatchCancelled, domain.MessageRequestCounts{Canceled: 4}},
		{"expired before it ran", nil, 4, domain.BatchExpired, domain.MessageRequestCounts{Expired: 4}},
		{"more rows than total (never negative)", map[domain.RequestState]int{domain.StateCompleted: 5}, 4, domain.BatchInProgress,
			domain.MessageRequestCounts{Succeeded: 5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, domain.MessageRequestCountsOf(tc.rows, tc.total, tc.status))
		})
	}
}

func TestMessageBatchIDsMapToBatchIDs(t *testing.T) {
	t.Parallel()
	id := domain.NewBatchID()
	m := domain.MessageBatchID(id)
	require.True(t, strings.HasPrefix(m, "msgbatch_"), m)
	require.Equal(t, strings.TrimPrefix(id, "batch_"), strings.TrimPrefix(m, "msgbatch_"))
	back, ok := domain.BatchIDOfMessageBatch(m)
	require.True(t, ok)
	require.Equal(t, id, back)
	for _, bad := range []string{id, "msgbatch_", "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF", "msgbatch_" + strings.Repeat("A", 32)} {
		_, ok := domain.BatchIDOfMessageBatch(bad)
		require.False(t, ok, bad)
	}
}

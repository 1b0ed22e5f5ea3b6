package stack

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/deploy/samtemplate"
)

func TestTheTemplatesEventSourcesAndSchedulesAreTheOnesRunLocally(t *testing.T) {
	dep, err := deployment()
	require.NoError(t, err)
	require.NoError(t, ranLocally(dep))

	dep.SQSEvents = map[string]samtemplate.SQSEvent{populateFn: {}, workerFn: {}, "ReportFunction": {}}
	require.ErrorContains(t, ranLocally(dep), "runs nothing for ReportFunction's SQS event")
	delete(dep.Schedules, purgeFn)
	require.ErrorContains(t, ranLocally(dep), "PurgeFunction has no schedule")
}

func TestEventConcurrencyIsBoundByReservedConcurrency(t *testing.T) {
	for _, c := range []struct{ max, reserved, want int }{{5, 0, 5}, {100, 50, 50}, {10, 100, 10}, {0, 7, 7}, {0, 0, 0}} {
		require.Equal(t, c.want, eventConcurrency(samtemplate.SQSEvent{MaximumConcurrency: c.max, ReservedConcurrency: c.reserved}), "%+v", c)
	}
}

func TestQueueNames(t *testing.T) {
	for id, want := range map[string]string{"PopulateQueue": "populate", "PopulateDLQ": "populate-dlq", "WorkQueue": "work", "WorkDLQ": "work-dlq"} {
		require.Equal(t, want, queueName(id))
	}
}

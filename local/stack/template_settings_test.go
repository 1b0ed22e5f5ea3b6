package stack_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade"
	"github.com/fusillade/fusillade/deploy/samtemplate"
	"github.com/fusillade/fusillade/local/stack"
)

// The local queues are the template's: the same visibility timeouts, retention, dead-letter
// queues and receive counts, not copies that drift from it.
func TestQueuesHaveTheTemplatesAttributes(t *testing.T) {
	tpl, err := samtemplate.Parse(fusillade.Template)
	require.NoError(t, err)
	dep, err := samtemplate.ReadSettings(tpl)
	require.NoError(t, err)
	require.NotEmpty(t, dep.Queues)

	st := startStack(t, stack.Options{})
	ctx := context.Background()
	attrsOf := func(name string) map[string]string {
		url, ok := st.Queues[name]
		require.True(t, ok, "the stack has no queue %s (has %v)", name, st.Queues)
		out, err := st.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url,
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
		require.NoError(t, err)
		return out.Attributes
	}
	names := map[string]string{"PopulateQueue": "populate", "PopulateDLQ": "populate-dlq", "WorkQueue": "work", "WorkDLQ": "work-dlq"}
	require.Len(t, dep.Queues, len(names), "a queue was added to the template: name it here")
	for id, q := range dep.Queues {
		got := attrsOf(names[id])
		for k, v := range q.Attributes {
			require.Equal(t, strconv.Itoa(v), got[k], "%s %s", id, k)
		}
		if q.DeadLetterQueue == "" {
			require.Empty(t, got["RedrivePolicy"], id)
			continue
		}
		var rp struct {
			DeadLetterTargetArn string `json:"deadLetterTargetArn"`
			MaxReceiveCount     any    `json:"maxReceiveCount"`
		}
		require.NoError(t, json.Unmarshal([]byte(got["RedrivePolicy"]), &rp), id)
		require.Equal(t, attrsOf(names[q.DeadLetterQueue])["QueueArn"], rp.DeadLetterTargetArn, "%s's dead-letter queue", id)
		require.EqualValues(t, strconv.Itoa(q.MaxReceiveCount), fmtNumber(rp.MaxReceiveCount), "%s maxReceiveCount", id)
	}
	for name, id := range dep.QueueURLVars {
		require.Equal(t, st.Queues[names[id]], st.Env[name], "%s names %s", name, id)
	}
}

// fmtNumber prints a JSON number or numeric string (SQS returns maxReceiveCount either way).
func fmtNumber(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.Itoa(int(x))
	case string:
		return x
	}
	return ""
}

package samtemplate

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade"
)

// The local stack runs with these settings; they are the template's, read from the embedded copy.
func TestSettingsReadTheTemplatesQueuesAndEventSources(t *testing.T) {
	t.Parallel()
	tpl, err := Parse(fusillade.Template)
	require.NoError(t, err)
	s, err := ReadSettings(tpl)
	require.NoError(t, err)

	require.Equal(t, map[string]Queue{
		"PopulateQueue": {Attributes: map[string]int{"VisibilityTimeout": 5400, "MessageRetentionPeriod": 345600},
			DeadLetterQueue: "PopulateDLQ", MaxReceiveCount: 3},
		"PopulateDLQ": {Attributes: map[string]int{"MessageRetentionPeriod": 1209600}},
		"WorkQueue": {Attributes: map[string]int{"VisibilityTimeout": 5400, "MessageRetentionPeriod": 345600},
			DeadLetterQueue: "WorkDLQ", MaxReceiveCount: 5},
		"WorkDLQ": {Attributes: map[string]int{"MessageRetentionPeriod": 1209600}},
	}, s.Queues)
	require.Equal(t, map[string]SQSEvent{
		"PopulateFunction": {Queue: "PopulateQueue", BatchSize: 1, MaximumConcurrency: 5, ReportBatchItemFailures: true,
			Timeout: 900 * time.Second},
		"WorkerFunction": {Queue: "WorkQueue", BatchSize: 10, MaximumConcurrency: 100, ReportBatchItemFailures: true,
			Timeout: 900 * time.Second, ReservedConcurrency: 100},
	}, s.SQSEvents)
	require.Equal(t, map[string]Schedule{
		"DispatchFunction": {Every: time.Minute, Timeout: 60 * time.Second},
		"PurgeFunction":    {Every: time.Minute, Timeout: 300 * time.Second},
	}, s.Schedules)
	require.Equal(t, map[string]string{"POPULATE_QUEUE_URL": "PopulateQueue", "WORK_QUEUE_URL": "WorkQueue"}, s.QueueURLVars)
}

func TestSettingsDefaultsAndFallbacks(t *testing.T) {
	t.Parallel()
	tpl, err := Parse([]byte(`
Parameters:
  Batch: {Type: Number, Default: 4}
Globals:
  Function:
    Timeout: 42
    Environment:
      Variables:
        Q_URL: !Ref Q
        NAME: !GetAtt Q.QueueName
Resources:
  Q:
    Type: AWS::SQS::Queue
    Properties:
      SqsManagedSseEnabled: true
      VisibilityTimeout: "0"
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Poll:
          Type: SQS
          Properties:
            Queue: !GetAtt Q.Arn
            BatchSize: !Ref Batch
            MaximumBatchingWindowInSeconds: 2
        Tick:
          Type: Schedule
          Properties: {Schedule: rate(2 hours)}
  Plain:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 5
      Events:
        Poll:
          Type: SQS
          Properties: {Queue: !GetAtt Q.Arn}
`))
	require.NoError(t, err)
	s, err := ReadSettings(tpl)
	require.NoError(t, err)
	require.Equal(t, map[string]Queue{"Q": {Attributes: map[string]int{"VisibilityTimeout": 0}}}, s.Queues,
		"an explicit 0 is kept (it differs from SQS's default); encryption has no local meaning")
	require.Equal(t, SQSEvent{Queue: "Q", BatchSize: 4, MaximumBatchingWindow: 2 * time.Second, Timeout: 42 * time.Second},
		s.SQSEvents["Fn"], "a parameter is read as its Default; the Globals timeout is the fallback")
	require.Equal(t, SQSEvent{Queue: "Q", BatchSize: 10, Timeout: 5 * time.Second}, s.SQSEvents["Plain"], "Lambda's BatchSize default is 10")
	require.Equal(t, Schedule{Every: 2 * time.Hour, Timeout: 42 * time.Second}, s.Schedules["Fn"])
	require.Equal(t, map[string]string{"Q_URL": "Q"}, s.QueueURLVars)
}

func TestSettingsRefuseWhatTheyCannotHonour(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct{ src, want string }{
		"a FIFO queue": {`
Resources:
  Q: {Type: AWS::SQS::Queue, Properties: {FifoQueue: true}}`, "Q: property FifoQueue has no local equivalent"},
		"a timeout from a required parameter": {`
Parameters:
  T: {Type: Number}
Resources:
  Q: {Type: AWS::SQS::Queue, Properties: {VisibilityTimeout: !Ref T}}`, "Q: VisibilityTimeout"},
		"a cron schedule": {`
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Tick: {Type: Schedule, Properties: {Schedule: "cron(0 * * * ? *)"}}`, "Fn event Tick: schedule \"cron(0 * * * ? *)\" is not rate"},
		"an event on a queue that is not one": {`
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Poll: {Type: SQS, Properties: {Queue: !GetAtt Nope.Arn}}`, "Fn event Poll: Queue"},
		"a dead-letter queue that is not one": {`
Resources:
  Q: {Type: AWS::SQS::Queue, Properties: {RedrivePolicy: {deadLetterTargetArn: !GetAtt Nope.Arn, maxReceiveCount: 3}}}`,
			"Q: RedrivePolicy.deadLetterTargetArn"},
		"two SQS events on one function": {`
Resources:
  Q: {Type: AWS::SQS::Queue}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        A: {Type: SQS, Properties: {Queue: !GetAtt Q.Arn}}
        B: {Type: SQS, Properties: {Queue: !GetAtt Q.Arn}}`, "Fn event B: a second SQS event"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tpl, err := Parse([]byte(c.src))
			require.NoError(t, err)
			_, err = ReadSettings(tpl)
			require.ErrorContains(t, err, c.want)
		})
	}
}

// The benchmark's cost figures multiply billed duration by these; they are the template's.
func TestMemorySizesAreTheTemplatesPerFunction(t *testing.T) {
	t.Parallel()
	tpl, err := Parse(fusillade.Template)
	require.NoError(t, err)
	got, err := MemorySizes(tpl)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"ApiFunction": 1769, "PopulateFunction": 1024, "WorkerFunction": 512,
		"DispatchFunction": 256, "PurgeFunction": 256, "MigrateFunction": 256}, got)
}

func TestMemorySizesFallBackToGlobalsThenLambdasDefault(t *testing.T) {
	t.Parallel()
	tpl, err := Parse([]byte(`
Parameters:
  Mem: {Type: Number, Default: 640}
Globals:
  Function: {MemorySize: 300}
Resources:
  Own: {Type: AWS::Serverless::Function, Properties: {MemorySize: !Ref Mem}}
  Global: {Type: AWS::Serverless::Function, Properties: {}}
`))
	require.NoError(t, err)
	got, err := MemorySizes(tpl)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"Own": 640, "Global": 300}, got)

	tpl, err = Parse([]byte(`
Resources:
  Bare: {Type: AWS::Serverless::Function, Properties: {}}
  Bad: {Type: AWS::Serverless::Function, Properties: {MemorySize: !GetAtt X.Y}}
`))
	require.NoError(t, err)
	got, err = MemorySizes(tpl)
	require.ErrorContains(t, err, "Bad: MemorySize")
	require.Equal(t, map[string]int{"Bare": DefaultMemoryMB}, got)
}

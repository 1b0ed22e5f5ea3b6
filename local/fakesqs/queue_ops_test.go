package fakesqs_test

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/fakesqs"
)

func apiCode(t *testing.T, err error) string {
	t.Helper()
	var ae smithy.APIError
	require.True(t, errors.As(err, &ae), "want an API error, got %v", err)
	return ae.ErrorCode()
}

func TestQueueLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.createQueue("jobs", map[string]string{"VisibilityTimeout": "60"})
	assert.Equal(t, e.ts.URL+"/000000000000/jobs", url)

	// Same attributes: idempotent. Attributes left out are not compared.
	assert.Equal(t, url, e.createQueue("jobs", map[string]string{"VisibilityTimeout": "60"}))
	assert.Equal(t, url, e.createQueue("jobs", nil))

	// Different value: QueueNameExists.
	_, err := e.client.CreateQueue(e.ctx, &sqs.CreateQueueInput{
		QueueName: aws.String("jobs"), Attributes: map[string]string{"VisibilityTimeout": "61"},
	})
	var exists *types.QueueNameExists
	require.ErrorAs(t, err, &exists)
	assert.Equal(t, "QueueAlreadyExists", exists.ErrorCode())

	e.createQueue("jobs-dlq", nil)
	e.createQueue("other", nil)

	got, err := e.client.GetQueueUrl(e.ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("jobs")})
	require.NoError(t, err)
	assert.Equal(t, url, aws.ToString(got.QueueUrl))

	list, err := e.client.ListQueues(e.ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String("jobs")})
	require.NoError(t, err)
	assert.Equal(t, []string{url, e.ts.URL + "/000000000000/jobs-dlq"}, list.QueueUrls)

	// Pagination through the SDK paginator.
	var all []string
	p := sqs.NewListQueuesPaginator(e.client, &sqs.ListQueuesInput{MaxResults: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(page.QueueUrls), 2)
		all = append(all, page.QueueUrls...)
	}
	assert.Len(t, all, 3)

	_, err = e.client.DeleteQueue(e.ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)})
	require.NoError(t, err)

	_, err = e.client.GetQueueUrl(e.ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("jobs")})
	var missing *types.QueueDoesNotExist
	require.ErrorAs(t, err, &missing)
	assert.Equal(t, "AWS.SimpleQueueService.NonExistentQueue", missing.ErrorCode())

	_, err = e.client.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x")})
	require.ErrorAs(t, err, &missing)
	_, err = e.client.DeleteQueue(e.ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)})
	require.ErrorAs(t, err, &missing)

	// The name can be reused after deletion.
	assert.Equal(t, url, e.createQueue("jobs", nil))
}

func TestCreateQueueValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.client.CreateQueue(e.ctx, &sqs.CreateQueueInput{QueueName: aws.String("jobs.fifo")})
	assert.Equal(t, "InvalidParameterValue", apiCode(t, err))
	assert.Contains(t, err.Error(), "FIFO queues are not supported")

	_, err = e.client.CreateQueue(e.ctx, &sqs.CreateQueueInput{
		QueueName: aws.String("jobs"), Attributes: map[string]string{"FifoQueue": "true"},
	})
	assert.Equal(t, "InvalidParameterValue", apiCode(t, err))

	_, err = e.client.CreateQueue(e.ctx, &sqs.CreateQueueInput{QueueName: aws.String("bad name")})
	assert.Equal(t, "InvalidParameterValue", apiCode(t, err))

	_, err = e.client.CreateQueue(e.ctx, &sqs.CreateQueueInput{
		QueueName: aws.String("jobs"), Attributes: map[string]string{"VisibilityTimeout": "99999"},
	})
	var badValue *types.InvalidAttributeValue
	require.ErrorAs(t, err, &badValue)

	_, err = e.client.CreateQueue(e.ctx, &sqs.CreateQueueInput{
		QueueName: aws.String("jobs"), Attributes: map[string]string{"Colour": "blue"},
	})
	var badName *types.InvalidAttributeName
	require.ErrorAs(t, err, &badName)

	_, err = e.client.CreateQueue(e.ctx, &sqs.CreateQueueInput{
		QueueName: aws.String("jobs"),
		Attributes: map[string]string{
			"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:nope","maxReceiveCount":3}`,
		},
	})
	assert.Equal(t, "InvalidParameterValue", apiCode(t, err))

	list, err := e.client.ListQueues(e.ctx, &sqs.ListQueuesInput{})
	require.NoError(t, err)
	assert.Empty(t, list.QueueUrls, "failed creations must not leave queues behind")
}

func TestQueueAttributes(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	e := newEnv(t, fakesqs.WithClock(clock.Now), fakesqs.WithAccountID("123456789012"), fakesqs.WithRegion("eu-west-1"))
	url := e.createQueue("jobs", nil)
	assert.Equal(t, e.ts.URL+"/123456789012/jobs", url)

	out, err := e.client.GetQueueAttributes(e.ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll},
	})
	require.NoError(t, err)
	created := clock.Now().Unix()
	assert.Equal(t, map[string]string{
		"QueueArn":                              "arn:aws:sqs:eu-west-1:123456789012:jobs",
		"ApproximateNumberOfMessages":           "0",
		"ApproximateNumberOfMessagesNotVisible": "0",
		"ApproximateNumberOfMessagesDelayed":    "0",
		"CreatedTimestamp":                      itoa64(created),
		"LastModifiedTimestamp":                 itoa64(created),
		"VisibilityTimeout":                     "30",
		"DelaySeconds":                          "0",
		"MessageRetentionPeriod":                "345600",
		"ReceiveMessageWaitTimeSeconds":         "0",
		"MaximumMessageSize":                    "1048576",
	}, out.Attributes)

	clock.Advance(time.Minute)
	_, err = e.client.SetQueueAttributes(e.ctx, &sqs.SetQueueAttributesInput{
		QueueUrl:   aws.String(url),
		Attributes: map[string]string{"VisibilityTimeout": "45", "Policy": `{"Version":"2012-10-17"}`},
	})
	require.NoError(t, err)

	out, err = e.client.GetQueueAttributes(e.ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameVisibilityTimeout,
			types.QueueAttributeNamePolicy,
			types.QueueAttributeNameLastModifiedTimestamp,
			types.QueueAttributeNameRedrivePolicy, // not set: absent
		},
	})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{
		"VisibilityTimeout":     "45",
		"Policy":                `{"Version":"2012-10-17"}`,
		"LastModifiedTimestamp": itoa64(created + 60),
	}, out.Attributes)

	_, err = e.client.GetQueueAttributes(e.ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{"Colour"},
	})
	var badName *types.InvalidAttributeName
	require.ErrorAs(t, err, &badName)

	_, err = e.client.SetQueueAttributes(e.ctx, &sqs.SetQueueAttributesInput{
		QueueUrl: aws.String(url), Attributes: map[string]string{"DelaySeconds": "901"},
	})
	var badValue *types.InvalidAttributeValue
	require.ErrorAs(t, err, &badValue)
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func TestTags(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	out, err := e.client.CreateQueue(e.ctx, &sqs.CreateQueueInput{
		QueueName: aws.String("jobs"), Tags: map[string]string{"team": "batch"},
	})
	require.NoError(t, err)
	url := out.QueueUrl
	_, err = e.client.TagQueue(e.ctx, &sqs.TagQueueInput{QueueUrl: url, Tags: map[string]string{"env": "local"}})
	require.NoError(t, err)
	_, err = e.client.UntagQueue(e.ctx, &sqs.UntagQueueInput{QueueUrl: url, TagKeys: []string{"team"}})
	require.NoError(t, err)
	tags, err := e.client.ListQueueTags(e.ctx, &sqs.ListQueueTagsInput{QueueUrl: url})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"env": "local"}, tags.Tags)
}

func TestQueueURLIgnoresHost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.createQueue("jobs", nil)
	other := strings.Replace(url, "127.0.0.1", "localhost", 1)
	require.NotEqual(t, url, other)
	_, err := e.client.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(other), MessageBody: aws.String("x")})
	require.NoError(t, err)
	e.requireCounts(url, 1, 0, 0)
}

func TestPurgeQueue(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	e := newEnv(t, fakesqs.WithClock(clock.Now))
	url := e.createQueue("jobs", nil)
	for range 3 {
		e.send(url, "m")
	}
	_, err := e.client.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("later"), DelaySeconds: 60})
	require.NoError(t, err)
	m := e.receiveOne(url)
	e.requireCounts(url, 2, 1, 1)

	_, err = e.client.PurgeQueue(e.ctx, &sqs.PurgeQueueInput{QueueUrl: aws.String(url)})
	require.NoError(t, err)
	e.requireCounts(url, 0, 0, 0)

	// A handle from before the purge refers to nothing; deleting is harmless.
	_, err = e.client.DeleteMessage(e.ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
	require.NoError(t, err)
	clock.Advance(time.Hour)
	assert.Empty(t, e.receive(url, 10, 0))
}

func TestRawProtocolErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	post := func(target, body string) (*http.Response, string) {
		req, err := http.NewRequest(http.MethodPost, e.ts.URL+"/", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-amz-json-1.0")
		if target != "" {
			req.Header.Set("X-Amz-Target", target)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}

	resp, body := post("AmazonSQS.GetQueueUrl", `{"QueueName":"missing"}`)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Equal(t, "application/x-amz-json-1.0", resp.Header.Get("Content-Type"))
	assert.Equal(t, "AWS.SimpleQueueService.NonExistentQueue;Sender", resp.Header.Get("x-amzn-query-error"))
	assert.JSONEq(t, `{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}`, body)
	assert.NotEmpty(t, resp.Header.Get("x-amzn-RequestId"))

	resp, body = post("AmazonSQS.StartMessageMoveTask", `{}`)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body, "com.amazonaws.sqs#UnsupportedOperation")

	resp, _ = post("", `{}`)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	resp, body = post("AmazonSQS.CreateQueue", `{"QueueName":`)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body, "SerializationException")

	resp, body = post("AmazonSQS.CreateQueue", `{"QueueName":"raw"}`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"QueueUrl":"`+e.ts.URL+`/000000000000/raw"}`, body)

	// Numbers may also come from hand-written clients; explicit zero
	// visibility is honoured (the SDK never sends zeros).
	e.send(e.ts.URL+"/000000000000/raw", "hello")
	resp, body = post("AmazonSQS.ReceiveMessage", `{"QueueUrl":"`+e.ts.URL+`/000000000000/raw","VisibilityTimeout":0}`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, `"Body":"hello"`)
	e.requireCounts(e.ts.URL+"/000000000000/raw", 1, 0, 0)

	getResp, err := http.Get(e.ts.URL + "/")
	require.NoError(t, err)
	getResp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, getResp.StatusCode)
}

func TestMissingQueueErrorsAreTyped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := aws.String(e.ts.URL + "/000000000000/missing")
	var missing *types.QueueDoesNotExist
	_, err := e.client.ReceiveMessage(e.ctx, &sqs.ReceiveMessageInput{QueueUrl: url})
	require.ErrorAs(t, err, &missing)
	_, err = e.client.GetQueueAttributes(e.ctx, &sqs.GetQueueAttributesInput{QueueUrl: url})
	require.ErrorAs(t, err, &missing)
	_, err = e.client.PurgeQueue(e.ctx, &sqs.PurgeQueueInput{QueueUrl: url})
	require.ErrorAs(t, err, &missing)
	_, err = e.client.SendMessageBatch(e.ctx, &sqs.SendMessageBatchInput{QueueUrl: url,
		Entries: []types.SendMessageBatchRequestEntry{{Id: aws.String("a"), MessageBody: aws.String("x")}}})
	require.ErrorAs(t, err, &missing)
}

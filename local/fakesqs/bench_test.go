package fakesqs_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
)

// BenchmarkMessageRoundTrip measures one message sent, received and deleted
// with single-message calls through the real SDK, from parallel goroutines.
func BenchmarkMessageRoundTrip(b *testing.B) {
	e := newEnv(b)
	url := aws.String(e.createQueue("bench", map[string]string{"VisibilityTimeout": "600"}))
	b.SetParallelism(4) // several clients per core, like a fleet of workers
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.client.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String("payload")}); !assert.NoError(b, err) {
				return
			}
			out, err := e.client.ReceiveMessage(e.ctx, &sqs.ReceiveMessageInput{QueueUrl: url, WaitTimeSeconds: 1})
			if !assert.NoError(b, err) {
				return
			}
			for _, m := range out.Messages {
				if _, err := e.client.DeleteMessage(e.ctx, &sqs.DeleteMessageInput{QueueUrl: url, ReceiptHandle: m.ReceiptHandle}); !assert.NoError(b, err) {
					return
				}
			}
		}
	})
}

// Package fakesqs is an in-memory emulator of Amazon SQS standard queues for
// running the system on one machine and in tests. It speaks the AWS JSON 1.0
// protocol (POST with X-Amz-Target: AmazonSQS.<Operation>) so the real
// aws-sdk-go-v2 SQS client can be pointed at it through BaseEndpoint:
//
//	srv := httptest.NewServer(fakesqs.New())
//	client := sqs.New(sqs.Options{
//		Region:       "us-east-1",
//		BaseEndpoint: aws.String(srv.URL),
//		Credentials:  credentials.NewStaticCredentialsProvider("x", "y", ""),
//	})
//
// # Emulated
//
//   - Queues: CreateQueue (idempotent while the given attributes match),
//     GetQueueUrl, ListQueues (prefix and pagination), DeleteQueue,
//     PurgeQueue, GetQueueAttributes, SetQueueAttributes,
//     ListDeadLetterSourceQueues, TagQueue, UntagQueue, ListQueueTags.
//   - Queue attributes VisibilityTimeout (default 30 s), DelaySeconds
//     (default 0), MessageRetentionPeriod (default 4 days),
//     ReceiveMessageWaitTimeSeconds (default 0), MaximumMessageSize (default
//     1 MiB) and RedrivePolicy, with the documented ranges, plus the computed
//     QueueArn, ApproximateNumberOfMessages[NotVisible|Delayed],
//     CreatedTimestamp and LastModifiedTimestamp.
//   - Messages: SendMessage and SendMessageBatch with per-message delay,
//     message attributes (String, Number, Binary with custom labels) and the
//     AWSTraceHeader system attribute; ReceiveMessage with up to 10 messages,
//     long polling up to 20 s, per-request visibility timeout, system
//     attributes and attribute selection ("All", ".*", names, "prefix.*");
//     DeleteMessage[Batch] and ChangeMessageVisibility[Batch].
//   - Delivery order is the order of sending; a message whose visibility
//     timeout runs out goes to the back of the line. MessageGroupId is
//     accepted on standard queues, as AWS does for fair queues, and returned
//     as a system attribute; MessageDeduplicationId is rejected.
//   - Expiry of delays, visibility timeouts and the retention period is
//     applied lazily by every operation and by waiting receivers, so no
//     background goroutine runs and nothing needs closing.
//   - MD5OfMessageBody, MD5OfBody and MD5OfMessageAttributes computed as AWS
//     does, so SDK checksum validation passes.
//   - Receipt handles are new on every receive. A handle from an earlier
//     receive of a message that has been received again since is accepted by
//     DeleteMessage and ChangeMessageVisibility but has no effect; a handle
//     this server did not issue for the queue is ReceiptHandleIsInvalid.
//   - Dead-letter queues: a visible message that has already been received
//     maxReceiveCount times is moved to the dead-letter queue by the next
//     receive instead of being delivered. It keeps its id, body, attributes,
//     send time and receive count, and gains DeadLetterQueueSourceArn.
//   - Requests counts every call by action, also in SQS billing units (one
//     per started 64 KiB of request) and, for ReceiveMessage, how many came
//     back empty, so that a benchmark can price a run's SQS traffic.
//   - Errors use the AWS shapes (__type plus x-amzn-query-error), so the SDK
//     returns its typed errors such as *types.QueueDoesNotExist.
//
// # Not emulated
//
//   - FIFO queues: names ending in .fifo and FifoQueue=true are rejected with
//     InvalidParameterValue.
//   - Authentication and authorization: signatures are not checked; Policy,
//     RedriveAllowPolicy and the encryption attributes are stored and
//     returned but have no effect.
//   - Message move tasks, permissions (AddPermission, RemovePermission) and
//     the legacy Query (form-encoded XML) protocol.
//   - Service quotas and timing quirks: the 60-second PurgeQueue and
//     DeleteQueue cool-downs, in-flight message limits, throttling, and the
//     sampling behind "approximate" counts (counts here are exact).
//
// State lives in memory only and is lost when the process exits.
package fakesqs

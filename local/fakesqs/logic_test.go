package fakesqs

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func strp(s string) *string { return &s }

func errCode(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.code
	}
	if err != nil {
		return "unexpected: " + err.Error()
	}
	return ""
}

func TestMD5OfAttributes(t *testing.T) {
	t.Parallel()
	// Expected sums are published examples computed by independent
	// implementations of the documented algorithm.
	tests := []struct {
		name  string
		attrs map[string]msgAttr
		want  string
	}{
		{"none", nil, ""},
		{
			"single string",
			map[string]msgAttr{"SellerName": {DataType: "String", StringValue: strp("Example Store")}},
			"cd28f3b68aeee4b2eac9c66f2f694b58",
		},
		{
			"number and string, sorted by name",
			map[string]msgAttr{
				"ordinal":  {DataType: "Number", StringValue: strp("1")},
				"category": {DataType: "String", StringValue: strp("test")},
			},
			"d21ae90c49061e927f57df5f5d72be1f",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, md5OfAttributes(tt.attrs))
		})
	}

	// Binary attributes use transport type 2, so they must not collide with
	// a string of the same bytes.
	s := md5OfAttributes(map[string]msgAttr{"a": {DataType: "String", StringValue: strp("xy")}})
	b := md5OfAttributes(map[string]msgAttr{"a": {DataType: "Binary", BinaryValue: []byte("xy")}})
	assert.NotEqual(t, s, b)
}

func TestMD5Hex(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "098f6bcd4621d373cade4e832627b4f6", md5Hex("test"))
}

func TestParseRedrivePolicy(t *testing.T) {
	t.Parallel()
	const arn = "arn:aws:sqs:us-east-1:000000000000:dlq"
	tests := []struct {
		name    string
		in      string
		wantMax int
		wantErr bool
	}{
		{"number", `{"deadLetterTargetArn":"` + arn + `","maxReceiveCount":5}`, 5, false},
		{"string", `{"deadLetterTargetArn":"` + arn + `","maxReceiveCount":"7"}`, 7, false},
		{"upper bound", `{"deadLetterTargetArn":"` + arn + `","maxReceiveCount":1000}`, 1000, false},
		{"zero", `{"deadLetterTargetArn":"` + arn + `","maxReceiveCount":0}`, 0, true},
		{"too large", `{"deadLetterTargetArn":"` + arn + `","maxReceiveCount":1001}`, 0, true},
		{"fraction", `{"deadLetterTargetArn":"` + arn + `","maxReceiveCount":1.5}`, 0, true},
		{"missing count", `{"deadLetterTargetArn":"` + arn + `"}`, 0, true},
		{"missing arn", `{"maxReceiveCount":3}`, 0, true},
		{"bad arn", `{"deadLetterTargetArn":"dlq","maxReceiveCount":3}`, 0, true},
		{"not json", `deadLetterTargetArn=dlq`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rp, err := parseRedrivePolicy(tt.in)
			if tt.wantErr {
				assert.Equal(t, "InvalidParameterValue", errCode(err))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, arn, rp.targetARN)
			assert.Equal(t, tt.wantMax, rp.maxReceiveCount)
			assert.JSONEq(t, `{"deadLetterTargetArn":"`+arn+`","maxReceiveCount":`+strconv.Itoa(tt.wantMax)+`}`, rp.String())
		})
	}
}

func TestValidateQueueName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want string
	}{
		{"jobs", ""},
		{"Jobs_2-dlq", ""},
		{strings.Repeat("a", 80), ""},
		{strings.Repeat("a", 81), "InvalidParameterValue"},
		{"", "MissingParameter"},
		{"has space", "InvalidParameterValue"},
		{"dotted.name", "InvalidParameterValue"},
		{"jobs.fifo", "InvalidParameterValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, errCode(validateQueueName(tt.name)))
		})
	}
	assert.Contains(t, validateQueueName("x.fifo").Error(), "FIFO queues are not supported")
}

func TestReceiptRoundTrip(t *testing.T) {
	t.Parallel()
	r := receipt{queue: "jobs", id: newUUID(), count: 3}
	h := encodeReceipt(r)
	got, ok := parseReceipt(h)
	require.True(t, ok)
	assert.Equal(t, r, got)

	// Different receives of the same message get different handles.
	r2 := r
	r2.count++
	assert.NotEqual(t, h, encodeReceipt(r2))

	for _, bad := range []string{
		"",
		"not-base64!!",
		"aGVsbG8",                         // base64 of "hello"
		encodeRaw("fakesqs1:jobs:id"),     // missing count
		encodeRaw("fakesqs1:jobs:id:x"),   // count not a number
		encodeRaw("fakesqs1:jobs:id:0"),   // counts start at 1
		encodeRaw("fakesqs1::id:1"),       // empty queue
		encodeRaw("other:jobs:id:1"),      // wrong prefix
		encodeRaw("fakesqs1:jobs:id:1:2"), // extra field
	} {
		_, ok := parseReceipt(bad)
		assert.False(t, ok, "handle %q", bad)
	}
}

func encodeRaw(s string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func TestQueueNameFromURL(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"http://localhost:9324/000000000000/jobs":  "jobs",
		"http://127.0.0.1:9324/000000000000/jobs/": "jobs",
		"https://sqs.example/123/jobs?x=1":         "jobs",
		"jobs":                                     "jobs",
	}
	for in, want := range tests {
		assert.Equal(t, want, queueNameFromURL(in), in)
	}
}

func TestValidateMessageAttributes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		attrs  map[string]msgAttr
		system bool
		want   string
		size   int
	}{
		{"none", nil, false, "", 0},
		{"string", map[string]msgAttr{"k": {DataType: "String", StringValue: strp("v")}}, false, "", 1 + 6 + 1},
		{"number with label", map[string]msgAttr{"n": {DataType: "Number.int", StringValue: strp("-12.5e3")}}, false, "", 1 + 10 + 7},
		{"binary", map[string]msgAttr{"b": {DataType: "Binary", BinaryValue: []byte{0, 1, 2}}}, false, "", 1 + 6 + 3},
		{"not a number", map[string]msgAttr{"n": {DataType: "Number", StringValue: strp("abc")}}, false, "InvalidParameterValue", 0},
		{"empty value", map[string]msgAttr{"k": {DataType: "String", StringValue: strp("")}}, false, "InvalidParameterValue", 0},
		{"missing type", map[string]msgAttr{"k": {StringValue: strp("v")}}, false, "InvalidParameterValue", 0},
		{"unknown type", map[string]msgAttr{"k": {DataType: "Blob", StringValue: strp("v")}}, false, "InvalidParameterValue", 0},
		{"empty binary", map[string]msgAttr{"b": {DataType: "Binary"}}, false, "InvalidParameterValue", 0},
		{"reserved name", map[string]msgAttr{"AWS.x": {DataType: "String", StringValue: strp("v")}}, false, "InvalidParameterValue", 0},
		{"double dot", map[string]msgAttr{"a..b": {DataType: "String", StringValue: strp("v")}}, false, "InvalidParameterValue", 0},
		{"bad char", map[string]msgAttr{"a b": {DataType: "String", StringValue: strp("v")}}, false, "InvalidParameterValue", 0},
		{"trace header", map[string]msgAttr{"AWSTraceHeader": {DataType: "String", StringValue: strp("Root=1")}}, true, "", 14 + 6 + 6},
		{"other system attr", map[string]msgAttr{"Foo": {DataType: "String", StringValue: strp("x")}}, true, "InvalidParameterValue", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			size, err := validateMessageAttributes(tt.attrs, tt.system)
			assert.Equal(t, tt.want, errCode(err))
			if tt.want == "" {
				assert.Equal(t, tt.size, size)
			}
		})
	}

	many := map[string]msgAttr{}
	for i := range 11 {
		many["a"+strconv.Itoa(i+1)] = msgAttr{DataType: "String", StringValue: strp("v")}
	}
	_, err := validateMessageAttributes(many, false)
	assert.Equal(t, "InvalidParameterValue", errCode(err))
}

func TestValidateText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{"plain", true},
		{"tab\tnewline\ncr\r", true},
		{"unicode ✓ 𝄞", true},
		{"nul\x00", false},
		{"bell\x07", false},
		{"\uFFFE", false},
		{string([]byte{0xff, 0xfe}), false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.ok, validateText(tt.in) == nil, "%q", tt.in)
	}
}

func TestQueueConfigApply(t *testing.T) {
	t.Parallel()
	const self = "arn:aws:sqs:us-east-1:000000000000:src"
	const dlq = "arn:aws:sqs:us-east-1:000000000000:dlq"
	exists := func(arn string) bool { return arn == dlq || arn == self }
	tests := []struct {
		name     string
		attrs    map[string]string
		creating bool
		want     string
		check    func(t *testing.T, c queueConfig)
	}{
		{"defaults", nil, true, "", func(t *testing.T, c queueConfig) {
			assert.Equal(t, defaultConfig(), c)
		}},
		{"numbers", map[string]string{"VisibilityTimeout": "60", "DelaySeconds": "5", "MessageRetentionPeriod": "60",
			"ReceiveMessageWaitTimeSeconds": "20", "MaximumMessageSize": "1024"}, true, "", func(t *testing.T, c queueConfig) {
			assert.Equal(t, 60, c.visibilityTimeout)
			assert.Equal(t, 5, c.delaySeconds)
			assert.Equal(t, 60, c.retentionPeriod)
			assert.Equal(t, 20, c.receiveWaitTime)
			assert.Equal(t, 1024, c.maxMessageSize)
		}},
		{"visibility too large", map[string]string{"VisibilityTimeout": "43201"}, true, "InvalidAttributeValue", nil},
		{"delay not a number", map[string]string{"DelaySeconds": "soon"}, true, "InvalidAttributeValue", nil},
		{"retention too small", map[string]string{"MessageRetentionPeriod": "59"}, true, "InvalidAttributeValue", nil},
		{"wait too large", map[string]string{"ReceiveMessageWaitTimeSeconds": "21"}, true, "InvalidAttributeValue", nil},
		{"redrive", map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"` + dlq + `","maxReceiveCount":"3"}`}, true, "", func(t *testing.T, c queueConfig) {
			require.NotNil(t, c.redrive)
			assert.Equal(t, 3, c.redrive.maxReceiveCount)
		}},
		{"redrive to missing queue", map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:nope","maxReceiveCount":3}`}, true, "InvalidParameterValue", nil},
		{"redrive to self", map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"` + self + `","maxReceiveCount":3}`}, true, "InvalidParameterValue", nil},
		{"opaque", map[string]string{"Policy": "{}", "SqsManagedSseEnabled": "true"}, true, "", func(t *testing.T, c queueConfig) {
			v, ok := c.get("Policy")
			assert.True(t, ok)
			assert.Equal(t, "{}", v)
		}},
		{"fifo false on create", map[string]string{"FifoQueue": "false"}, true, "", nil},
		{"fifo true", map[string]string{"FifoQueue": "true"}, true, "InvalidParameterValue", nil},
		{"fifo on set", map[string]string{"FifoQueue": "false"}, false, "InvalidAttributeName", nil},
		{"fifo only attribute", map[string]string{"ContentBasedDeduplication": "true"}, true, "InvalidAttributeName", nil},
		{"computed attribute", map[string]string{"QueueArn": self}, false, "InvalidAttributeName", nil},
		{"unknown", map[string]string{"Colour": "blue"}, false, "InvalidAttributeName", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := defaultConfig()
			err := c.apply(tt.attrs, tt.creating, self, exists)
			assert.Equal(t, tt.want, errCode(err))
			if err != nil {
				assert.Equal(t, defaultConfig(), c, "a failed apply must change nothing")
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestQueueConfigSameAs(t *testing.T) {
	t.Parallel()
	a := defaultConfig()
	b := defaultConfig()
	require.NoError(t, b.apply(map[string]string{"VisibilityTimeout": "60"}, true, "", nil))
	_, same := a.sameAs(&b, map[string]string{"VisibilityTimeout": "60"})
	assert.False(t, same)
	_, same = b.sameAs(&b, map[string]string{"VisibilityTimeout": "060"})
	assert.True(t, same, "values are compared after normalization")
	_, same = a.sameAs(&b, nil)
	assert.True(t, same, "attributes not given are not compared")
}

func TestListPage(t *testing.T) {
	t.Parallel()
	names := []string{"a", "b", "c", "d", "e"}
	two := 2
	page, next, err := listPage{MaxResults: &two}.apply(names)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, page)
	require.NotEmpty(t, next)

	page, next, err = listPage{MaxResults: &two, NextToken: next}.apply(names)
	require.NoError(t, err)
	assert.Equal(t, []string{"c", "d"}, page)

	page, next, err = listPage{MaxResults: &two, NextToken: next}.apply(names)
	require.NoError(t, err)
	assert.Equal(t, []string{"e"}, page)
	assert.Empty(t, next)

	page, next, err = listPage{}.apply(names)
	require.NoError(t, err)
	assert.Equal(t, names, page)
	assert.Empty(t, next)

	zero := 0
	_, _, err = listPage{MaxResults: &zero}.apply(names)
	assert.Equal(t, "InvalidParameterValue", errCode(err))
	_, _, err = listPage{NextToken: "%%%"}.apply(names)
	assert.Equal(t, "InvalidParameterValue", errCode(err))
}

func TestValidateBatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ids  []string
		want string
	}{
		{"ok", []string{"a", "b-1", "C_2"}, ""},
		{"empty", nil, "EmptyBatchRequest"},
		{"too many", strings.Split("a b c d e f g h i j k", " "), "TooManyEntriesInBatchRequest"},
		{"duplicate", []string{"a", "a"}, "BatchEntryIdsNotDistinct"},
		{"bad id", []string{"a b"}, "InvalidBatchEntryId"},
		{"blank id", []string{""}, "InvalidBatchEntryId"},
		{"long id", []string{strings.Repeat("x", 81)}, "InvalidBatchEntryId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, errCode(validateBatch(tt.ids)))
		})
	}
}

func TestNewUUID(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		u := newUUID()
		require.Len(t, u, 36)
		assert.Equal(t, byte('4'), u[14], u)
		assert.Contains(t, "89ab", string(u[19]), u)
		assert.False(t, seen[u])
		seen[u] = true
	}
}

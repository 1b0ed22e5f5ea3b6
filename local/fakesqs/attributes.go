package fakesqs

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// queueConfig holds the settable attributes of a queue. Integer attributes
// are in seconds except maxMessageSize (bytes).
type queueConfig struct {
	visibilityTimeout int
	delaySeconds      int
	retentionPeriod   int
	receiveWaitTime   int
	maxMessageSize    int
	redrive           *redrivePolicy // nil when the queue has no dead-letter queue
	// opaque holds attributes that are accepted and echoed back but have no
	// effect here (access policies, encryption settings).
	opaque map[string]string
}

// Defaults as documented for CreateQueue.
func defaultConfig() queueConfig {
	return queueConfig{
		visibilityTimeout: 30,
		delaySeconds:      0,
		retentionPeriod:   345600,  // 4 days
		receiveWaitTime:   0,       // short polling
		maxMessageSize:    1048576, // 1 MiB
	}
}

type intAttr struct {
	min, max int
	field    func(*queueConfig) *int
}

// intAttrs lists the numeric queue attributes with their documented ranges.
var intAttrs = map[string]intAttr{
	"VisibilityTimeout":             {0, 43200, func(c *queueConfig) *int { return &c.visibilityTimeout }},
	"DelaySeconds":                  {0, 900, func(c *queueConfig) *int { return &c.delaySeconds }},
	"MessageRetentionPeriod":        {60, 1209600, func(c *queueConfig) *int { return &c.retentionPeriod }},
	"ReceiveMessageWaitTimeSeconds": {0, 20, func(c *queueConfig) *int { return &c.receiveWaitTime }},
	"MaximumMessageSize":            {1024, 1048576, func(c *queueConfig) *int { return &c.maxMessageSize }},
}

var opaqueAttrs = map[string]bool{
	"Policy":                       true,
	"RedriveAllowPolicy":           true,
	"KmsMasterKeyId":               true,
	"KmsDataKeyReusePeriodSeconds": true,
	"SqsManagedSseEnabled":         true,
}

// fifoOnlyAttrs only make sense on FIFO queues, which are not emulated.
var fifoOnlyAttrs = map[string]bool{
	"ContentBasedDeduplication": true,
	"DeduplicationScope":        true,
	"FifoThroughputLimit":       true,
}

// computedAttrs can be read but never set.
var computedAttrs = []string{
	"QueueArn",
	"ApproximateNumberOfMessages",
	"ApproximateNumberOfMessagesNotVisible",
	"ApproximateNumberOfMessagesDelayed",
	"CreatedTimestamp",
	"LastModifiedTimestamp",
}

// readableAttr reports whether name may be requested from GetQueueAttributes.
// FIFO-only names are accepted and simply produce no value, because a
// standard queue has none.
func readableAttr(name string) bool {
	if _, ok := intAttrs[name]; ok {
		return true
	}
	if opaqueAttrs[name] || fifoOnlyAttrs[name] || name == "RedrivePolicy" || name == "FifoQueue" || name == "All" {
		return true
	}
	for _, c := range computedAttrs {
		if c == name {
			return true
		}
	}
	return false
}

// apply validates attrs and applies them to c. Nothing is changed unless
// every attribute is valid. creating distinguishes CreateQueue, which may
// carry FifoQueue=false, from SetQueueAttributes. dlqExists reports whether
// a redrive target ARN names an existing queue; selfARN is the ARN of the
// queue being configured, which may not be its own dead-letter queue.
func (c *queueConfig) apply(attrs map[string]string, creating bool, selfARN string, dlqExists func(arn string) bool) error {
	next := *c
	if len(c.opaque) > 0 {
		next.opaque = make(map[string]string, len(c.opaque))
		for k, v := range c.opaque {
			next.opaque[k] = v
		}
	}
	names := make([]string, 0, len(attrs))
	for k := range attrs {
		names = append(names, k)
	}
	sort.Strings(names) // deterministic error reporting
	for _, name := range names {
		value := attrs[name]
		if spec, ok := intAttrs[name]; ok {
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil || n < spec.min || n > spec.max {
				return errInvalidAttributeValue(name, fmt.Sprintf("must be an integer from %d to %d", spec.min, spec.max))
			}
			*spec.field(&next) = n
			continue
		}
		switch {
		case name == "RedrivePolicy":
			if value == "" {
				next.redrive = nil
				continue
			}
			rp, err := parseRedrivePolicy(value)
			if err != nil {
				return err
			}
			if rp.targetARN == selfARN {
				return errInvalidParameter("Value %s for parameter RedrivePolicy is invalid. Reason: a queue cannot be its own dead-letter queue.", value)
			}
			if !dlqExists(rp.targetARN) {
				return errInvalidParameter("Value %s for parameter RedrivePolicy is invalid. Reason: Dead letter target does not exist.", value)
			}
			next.redrive = rp
		case opaqueAttrs[name]:
			if next.opaque == nil {
				next.opaque = make(map[string]string)
			}
			next.opaque[name] = value
		case name == "FifoQueue" && creating:
			if strings.EqualFold(value, "true") {
				return errFIFOUnsupported()
			}
			if !strings.EqualFold(value, "false") {
				return errInvalidAttributeValue(name, "must be true or false")
			}
		default:
			return errInvalidAttributeName(name)
		}
	}
	*c = next
	return nil
}

// get renders one settable attribute the way GetQueueAttributes reports it.
// ok is false when the queue has no value for name.
func (c *queueConfig) get(name string) (value string, ok bool) {
	if spec, found := intAttrs[name]; found {
		return strconv.Itoa(*spec.field(c)), true
	}
	if name == "RedrivePolicy" {
		if c.redrive == nil {
			return "", false
		}
		return c.redrive.String(), true
	}
	v, ok := c.opaque[name]
	return v, ok
}

// settableNames lists the settable attribute names that currently have a
// value, in a stable order.
func (c *queueConfig) settableNames() []string {
	names := make([]string, 0, len(intAttrs)+len(opaqueAttrs)+1)
	for n := range intAttrs {
		names = append(names, n)
	}
	if c.redrive != nil {
		names = append(names, "RedrivePolicy")
	}
	for n := range c.opaque {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// sameAs reports whether every attribute named in attrs has the same
// effective value in c and other. CreateQueue uses it to decide whether a
// repeated creation is idempotent.
func (c *queueConfig) sameAs(other *queueConfig, attrs map[string]string) (string, bool) {
	for name := range attrs {
		if name == "FifoQueue" {
			continue // only "false" gets this far, which every queue here is
		}
		a, aok := c.get(name)
		b, bok := other.get(name)
		if a != b || aok != bok {
			return name, false
		}
	}
	return "", true
}

// redrivePolicy is a parsed RedrivePolicy attribute.
type redrivePolicy struct {
	targetARN       string
	maxReceiveCount int
}

// String renders the policy in the normalized form AWS returns.
func (p *redrivePolicy) String() string {
	b, _ := json.Marshal(struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		MaxReceiveCount     int    `json:"maxReceiveCount"`
	}{p.targetARN, p.maxReceiveCount})
	return string(b)
}

// parseRedrivePolicy parses a RedrivePolicy JSON document. maxReceiveCount
// may be a JSON number or a numeric string; both forms occur in the wild.
func parseRedrivePolicy(s string) (*redrivePolicy, error) {
	invalid := func(reason string) error {
		return errInvalidParameter("Value %s for parameter RedrivePolicy is invalid. Reason: %s", s, reason)
	}
	var raw struct {
		DeadLetterTargetArn *string         `json:"deadLetterTargetArn"`
		MaxReceiveCount     json.RawMessage `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, invalid("Redrive policy is not a valid JSON map.")
	}
	if raw.DeadLetterTargetArn == nil {
		return nil, invalid("Redrive policy does not contain mandatory attribute: deadLetterTargetArn.")
	}
	if len(raw.MaxReceiveCount) == 0 || string(raw.MaxReceiveCount) == "null" {
		return nil, invalid("Redrive policy does not contain mandatory attribute: maxReceiveCount.")
	}
	countText := string(raw.MaxReceiveCount)
	if unquoted, err := strconv.Unquote(countText); err == nil {
		countText = unquoted
	}
	n, err := strconv.Atoi(strings.TrimSpace(countText))
	if err != nil || n < 1 || n > 1000 {
		return nil, invalid("Invalid value for maxReceiveCount: " + string(raw.MaxReceiveCount) + ", valid values are from 1 to 1000 both inclusive.")
	}
	arn := *raw.DeadLetterTargetArn
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" || parts[5] == "" {
		return nil, invalid("Invalid value for deadLetterTargetArn.")
	}
	return &redrivePolicy{targetARN: arn, maxReceiveCount: n}, nil
}

// validateQueueName applies the naming rules for standard queues.
func validateQueueName(name string) error {
	if name == "" {
		return errMissingParameter("QueueName")
	}
	if strings.HasSuffix(name, ".fifo") {
		return errFIFOUnsupported()
	}
	if len(name) > 80 || !isIdentifier(name) {
		return errInvalidParameter("Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length (queue name %q).", name)
	}
	return nil
}

func errFIFOUnsupported() *apiError {
	return errInvalidParameter("FIFO queues are not supported by this SQS emulator; use a standard queue (a name without the .fifo suffix).")
}

// isIdentifier reports whether s is made only of ASCII letters, digits,
// hyphens and underscores, the alphabet of queue names and batch entry ids.
func isIdentifier(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

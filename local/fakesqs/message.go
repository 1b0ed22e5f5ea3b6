package fakesqs

import (
	"container/list"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

type msgState uint8

const (
	stateGone     msgState = iota // deleted, expired, purged or moved away
	stateVisible                  // in queue.visible, ready for delivery
	stateDelayed                  // in queue.delayed, waiting for its delay
	stateInflight                 // in queue.inflight, received and invisible
)

// message is one stored message. The payload fields (id, body, attributes,
// sent) never change after the message is enqueued, so they may be read
// without the queue lock; everything below them is guarded by the lock of
// the queue that currently holds the message.
type message struct {
	id       string
	body     string
	bodyMD5  string
	attrs    map[string]msgAttr
	attrsMD5 string
	sysAttrs map[string]msgAttr // only AWSTraceHeader can be sent
	groupID  string
	size     int // bytes counted against MaximumMessageSize
	sent     time.Time

	receiveCount int
	firstReceive time.Time
	lastReceive  time.Time
	dlqSourceARN string // set when the message was moved to a dead-letter queue

	state    msgState
	elem     *list.Element // position in queue.visible
	at       time.Time     // when a delayed or in-flight message becomes visible
	timedIdx int           // index in queue.delayed or queue.inflight
	retIdx   int           // index in queue.retention
}

// msgAttr is a message attribute value as it appears on the wire. Binary
// values travel base64-encoded, which encoding/json does for []byte.
type msgAttr struct {
	DataType    string  `json:"DataType"`
	StringValue *string `json:"StringValue,omitempty"`
	BinaryValue []byte  `json:"BinaryValue,omitempty"`
	// The list forms are reserved by SQS and never carry data; they are
	// decoded only so that clients sending empty lists are accepted.
	StringListValues []string `json:"StringListValues,omitempty"`
	BinaryListValues [][]byte `json:"BinaryListValues,omitempty"`
}

// baseType is the data type without its custom label ("Number.int" -> "Number").
func (a msgAttr) baseType() string {
	t, _, _ := strings.Cut(a.DataType, ".")
	return t
}

// value returns the bytes that count towards size limits and checksums.
func (a msgAttr) value() []byte {
	if a.baseType() == "Binary" {
		return a.BinaryValue
	}
	if a.StringValue == nil {
		return nil
	}
	return []byte(*a.StringValue)
}

const maxMessageAttributes = 10

// validateMessageAttributes checks user message attributes (system is false)
// or message system attributes (system is true) and returns their size in
// bytes as counted by SQS: name, data type and value of each.
func validateMessageAttributes(attrs map[string]msgAttr, system bool) (int, error) {
	if len(attrs) > maxMessageAttributes {
		return 0, errInvalidParameter("Number of message attributes [%d] exceeds the allowed maximum [%d].", len(attrs), maxMessageAttributes)
	}
	size := 0
	for name, a := range attrs {
		if system {
			if name != "AWSTraceHeader" {
				return 0, errInvalidParameter("Message system attribute name '%s' is invalid.", name)
			}
			if a.DataType != "String" {
				return 0, errInvalidParameter("Message system attribute '%s' must have data type String.", name)
			}
		} else if err := validateAttributeName(name); err != nil {
			return 0, err
		}
		if a.DataType == "" {
			return 0, errInvalidParameter("The message attribute '%s' must contain a non-empty message attribute type.", name)
		}
		if len(a.DataType) > 256 {
			return 0, errInvalidParameter("The message attribute '%s' has a data type longer than 256 characters.", name)
		}
		switch a.baseType() {
		case "String", "Number":
			if a.StringValue == nil || *a.StringValue == "" {
				return 0, errInvalidParameter("The message attribute '%s' must contain a non-empty message attribute value for message attribute type '%s'.", name, a.DataType)
			}
			if a.baseType() == "Number" && !isNumber(*a.StringValue) {
				return 0, errInvalidParameter("Can't cast the value of message (user) attribute '%s' to a number.", name)
			}
			if err := validateText(*a.StringValue); err != nil {
				return 0, errInvalidParameter("The message attribute '%s' contains characters outside the allowed set.", name)
			}
		case "Binary":
			if len(a.BinaryValue) == 0 {
				return 0, errInvalidParameter("The message attribute '%s' must contain a non-empty message attribute value for message attribute type '%s'.", name, a.DataType)
			}
		default:
			return 0, errInvalidParameter("The type of message (user) attribute '%s' is invalid. You must use only the following supported type prefixes: Binary, Number, String.", name)
		}
		size += len(name) + len(a.DataType) + len(a.value())
	}
	return size, nil
}

// validateAttributeName applies the documented rules for user message
// attribute names.
func validateAttributeName(name string) error {
	bad := func(reason string) error {
		return errInvalidParameter("Message (user) attribute name '%s' is invalid. %s", name, reason)
	}
	if name == "" || len(name) > 256 {
		return bad("The name must be 1 to 256 characters long.")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return bad("The name can contain only alphanumeric characters, hyphens, underscores and periods.")
		}
	}
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
		return bad("The name can't start or end with a period or contain successive periods.")
	}
	lower := strings.ToLower(name)
	if strings.HasPrefix(lower, "aws.") || strings.HasPrefix(lower, "amazon.") {
		return bad("The name is reserved for use by AWS.")
	}
	return nil
}

// isNumber accepts the decimal notation SQS documents for Number attributes.
func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	if err == nil {
		return true
	}
	// Out-of-range values are still numbers; SQS allows 38 digits.
	var ne *strconv.NumError
	if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
		return true
	}
	return false
}

// validateText enforces the character set SQS allows in message bodies and
// string attributes: #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD |
// #x10000 to #x10FFFF.
func validateText(s string) error {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return fmt.Errorf("invalid UTF-8 at byte %d", i)
		}
		switch {
		case r == 0x9, r == 0xA, r == 0xD,
			r >= 0x20 && r <= 0xD7FF,
			r >= 0xE000 && r <= 0xFFFD,
			r >= 0x10000 && r <= 0x10FFFF:
		default:
			return fmt.Errorf("character %U at byte %d is not allowed", r, i)
		}
		i += n
	}
	return nil
}

// md5Hex is the body checksum the SDK verifies on send and receive.
func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// md5OfAttributes computes MD5OfMessageAttributes as documented by AWS: for
// each attribute in name order, the name, the data type and the value are
// each written as a 4-byte big-endian length followed by the bytes, with a
// one-byte transport type (1 string, 2 binary) between data type and value.
// It returns "" when there are no attributes, in which case the member is
// omitted from responses.
func md5OfAttributes(attrs map[string]msgAttr) string {
	if len(attrs) == 0 {
		return ""
	}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	h := md5.New()
	var lenBuf [4]byte
	writeField := func(b []byte) {
		binary.BigEndian.PutUint32(lenBuf[:], uint32(len(b)))
		h.Write(lenBuf[:])
		h.Write(b)
	}
	for _, n := range names {
		a := attrs[n]
		writeField([]byte(n))
		writeField([]byte(a.DataType))
		if a.baseType() == "Binary" {
			h.Write([]byte{2})
		} else {
			h.Write([]byte{1})
		}
		writeField(a.value())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// newUUID returns a random (version 4) UUID, the format SQS uses for message
// and request ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// Receipt handles identify one particular receive of one message: the queue,
// the message id and the receive count at the time. A handle whose count is
// lower than the message's current count belongs to an earlier receive and
// is stale. The prefix lets arbitrary strings be rejected as malformed.
const receiptPrefix = "fakesqs1:"

type receipt struct {
	queue string
	id    string
	count int
}

func encodeReceipt(r receipt) string {
	raw := receiptPrefix + r.queue + ":" + r.id + ":" + strconv.Itoa(r.count)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func parseReceipt(h string) (receipt, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return receipt{}, false
	}
	rest, ok := strings.CutPrefix(string(raw), receiptPrefix)
	if !ok {
		return receipt{}, false
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return receipt{}, false
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil || n < 1 {
		return receipt{}, false
	}
	return receipt{queue: parts[0], id: parts[1], count: n}, true
}

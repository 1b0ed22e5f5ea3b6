package jsonl

import (
	"bytes"
	"encoding/json"
)

// The helpers in this file walk JSON that encoding/json has already accepted (json.Valid), so
// they skip error handling and never recurse: nesting is tracked with a counter. This lets the
// validator find a body's top-level "model" and "stream" without building maps or copying a
// multi-megabyte "messages" array.

// skipSpace returns the index of the first non-whitespace byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the closing quote of the string that starts at b[i].
// Runs of backslashes before a quote are counted to tell an escaped quote from the closing
// one; each run is counted once, so the cost stays linear.
func stringEnd(b []byte, i int) int {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return len(b)
		}
		j += k
		n := 0
		for p := j - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
		j++
	}
}

// valueEnd returns the index just past the value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); {
			switch b[j] {
			case '"':
				j = stringEnd(b, j)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
			j++
		}
		return len(b)
	default: // number, true, false or null
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return j
			}
			j++
		}
		return j
	}
}

// members iterates over the members of the object that starts at b[i] == '{'.
type members struct {
	b []byte
	i int
}

// next returns the raw (still quoted) key and the raw value of the next member.
func (m *members) next() (key, val []byte, ok bool) {
	b := m.b
	i := skipSpace(b, m.i)
	if i >= len(b) || b[i] == '}' {
		return nil, nil, false
	}
	i = skipSpace(b, i+1) // past '{' or ','
	if i >= len(b) || b[i] != '"' {
		return nil, nil, false // "{}"
	}
	ke := stringEnd(b, i)
	key = b[i:ke]
	i = skipSpace(b, ke) // at ':'
	i = skipSpace(b, i+1)
	if i >= len(b) {
		return nil, nil, false
	}
	ve := valueEnd(b, i)
	m.i = ve
	return key, b[i:ve], true
}

// maxKeyName is the longest key the validator looks for ("custom_id").
const maxKeyName = 16

// keyName returns the decoded text of a raw JSON object key, written into buf, when it could
// equal one of the short ASCII names the validator looks for; ok is false otherwise. A key such
// as "mod\u0065l" must count as "model", yet escaped keys are attacker-controlled and may be
// numerous, so they are decoded here without allocating and abandoned as soon as they are too
// long or contain a non-ASCII character (which no wanted name has).
func keyName(key []byte, buf *[maxKeyName]byte) (name []byte, ok bool) {
	raw := key[1 : len(key)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw, true
	}
	n := 0
	for i := 0; i < len(raw); i++ {
		if n == len(buf) {
			return nil, false
		}
		c := raw[i]
		if c == '\\' {
			i++
			switch raw[i] {
			case 'u':
				// Only \u00XX with XX < 0x80 can yield an ASCII byte. raw is valid JSON, so four
				// hex digits follow.
				if raw[i+1] != '0' || raw[i+2] != '0' || raw[i+3] > '7' {
					return nil, false
				}
				c = unhex(raw[i+3])<<4 | unhex(raw[i+4])
				i += 4
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			default: // '"', '\\', '/'
				c = raw[i]
			}
		}
		buf[n] = c
		n++
	}
	return buf[:n], true
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// rawString returns the content of a raw JSON string if it holds no escapes, so callers can
// inspect it without allocating; ok is false for non-strings and escaped strings.
func rawString(v []byte) (s []byte, ok bool) {
	if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
		return nil, false
	}
	return v[1 : len(v)-1], true
}

// decodeString decodes a raw JSON value that must be a string.
func decodeString(v []byte) (string, bool) {
	if len(v) == 0 || v[0] != '"' {
		return "", false
	}
	if s, ok := rawString(v); ok {
		return string(s), true
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// kind names a raw JSON value's type for messages.
func kind(v []byte) string {
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

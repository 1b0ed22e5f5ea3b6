package jsonl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// req builds a request line from a body and optional overrides of the envelope fields; a value
// of "-" drops the field.
func req(id, method, url, body string) string {
	var parts []string
	for _, kv := range [][2]string{{"custom_id", id}, {"method", method}, {"url", url}, {"body", body}} {
		if kv[1] != "-" {
			parts = append(parts, fmt.Sprintf("%q:%s", kv[0], kv[1]))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

const (
	okID     = `"r1"`
	okMethod = `"POST"`
	okURL    = `"/v1/chat/completions"`
	okBody   = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
)

type validatorCase struct {
	name   string
	line   string
	rules  Rules
	before []string // lines checked first (numbered 1, 2, ...), e.g. to set up a duplicate
	code   string   // "" means valid
	param  string
}

// validatorCases is shared by the table test and the fuzz seed corpus.
func validatorCases() []validatorCase {
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	nested := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	onlyGPT := Rules{ModelAllowed: func(m string) bool { return m == "m" }}
	return []validatorCase{
		{name: "valid", line: req(okID, okMethod, okURL, okBody)},
		{name: "valid with whitespace and unknown keys", line: " { \"x\" : [1,{\"url\":2}] ,\"custom_id\" : \"r1\", \"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\": {\"model\" : \"m\"} } \t"},
		{name: "valid upper-case hex escapes in keys", line: `{"\u0063ustom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"\u006D\u006F\u0064\u0065\u006C":"m"}}`},
		{name: "escaped key that is not wanted", line: `{"\u00e9\ud83d\ude00":1,"\u0063ustom_id_and_more_text":1,"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"\"model\"":1,"model":"m"}}`},
		{name: "valid escaped keys and values", line: `{"custom_\u0069d":"r\u0031","method":"p\u004fst","url":"\/v1\/chat\/completions","body":{"mod\u0065l":"m"}}`},
		{name: "method lower case accepted", line: req(okID, `"post"`, okURL, okBody)},
		{name: "method mixed case accepted", line: req(okID, `"PoSt"`, okURL, okBody)},
		{name: "custom_id of max length", line: req(`"`+strings.Repeat("a", 64)+`"`, okMethod, okURL, okBody)},
		{name: "custom_id with inner spaces and symbols", line: req(`"a b~!@#$%^&*()"`, okMethod, okURL, okBody)},
		{name: "stream false", line: req(okID, okMethod, okURL, `{"model":"m","stream":false}`)},
		{name: "stream null", line: req(okID, okMethod, okURL, `{"model":"m","stream":null}`)},
		{name: "nested stream ignored", line: req(okID, okMethod, okURL, `{"model":"m","x":{"stream":true}}`)},
		{name: "quotes and brackets in strings", line: req(okID, okMethod, okURL, `{"a":"}\"{[\\","b":["]"],"model":"m"}`)},
		{name: "deep but allowed nesting in body", line: req(okID, okMethod, okURL, `{"x":`+nested+`,"model":"m"}`)},
		{name: "other allowed url", line: req(okID, okMethod, `"/v1/embeddings"`, `{"model":"m","input":"x"}`)},

		{name: "not json", line: `this is not json`, code: CodeInvalidJSONLine},
		{name: "truncated json", line: `{"custom_id":"r1",`, code: CodeInvalidJSONLine},
		{name: "two values", line: `{} {}`, code: CodeInvalidJSONLine},
		{name: "array", line: `[{"custom_id":"r1"}]`, code: CodeInvalidJSONLine},
		{name: "string", line: `"x"`, code: CodeInvalidJSONLine},
		{name: "null", line: `null`, code: CodeInvalidJSONLine},
		{name: "number", line: `42`, code: CodeInvalidJSONLine},
		{name: "empty", line: ``, code: CodeInvalidJSONLine},
		{name: "nul byte", line: "{\"custom_id\":\"a\x00\"}", code: CodeInvalidJSONLine},
		{name: "invalid utf8", line: "{\"custom_id\":\"\xff\"}", code: CodeInvalidUTF8},
		{name: "deeply nested line", line: deep, code: CodeInvalidJSONLine},
		{name: "deeply nested body", line: req(okID, okMethod, okURL, `{"model":"m","x":`+deep+`}`), code: CodeInvalidJSONLine},
		{name: "duplicate url key", line: `{"custom_id":"r1","method":"POST","url":"/v1/embeddings","url":"/v1/chat/completions","body":{"model":"m"}}`, code: CodeInvalidJSONLine, param: "url"},
		{name: "duplicate escaped key", line: `{"custom_id":"r1","custom_\u0069d":"r2","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`, code: CodeInvalidJSONLine, param: "custom_id"},

		{name: "custom_id missing", line: req("-", okMethod, okURL, okBody), code: CodeMissingCustomID, param: "custom_id"},
		{name: "custom_id null", line: req(`null`, okMethod, okURL, okBody), code: CodeMissingCustomID, param: "custom_id"},
		{name: "custom_id number", line: req(`1`, okMethod, okURL, okBody), code: CodeMissingCustomID, param: "custom_id"},
		{name: "custom_id empty", line: req(`""`, okMethod, okURL, okBody), code: CodeMissingCustomID, param: "custom_id"},
		{name: "custom_id case-different key", line: `{"Custom_ID":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`, code: CodeMissingCustomID, param: "custom_id"},
		{name: "custom_id too long", line: req(`"`+strings.Repeat("a", 65)+`"`, okMethod, okURL, okBody), code: CodeInvalidCustomID, param: "custom_id"},
		{name: "custom_id custom limit", line: req(`"abcd"`, okMethod, okURL, okBody), rules: Rules{MaxCustomID: 3}, code: CodeInvalidCustomID, param: "custom_id"},
		{name: "custom_id control char", line: req(`"a\u0001"`, okMethod, okURL, okBody), code: CodeInvalidCustomID, param: "custom_id"},
		{name: "custom_id newline", line: req(`"a\nb"`, okMethod, okURL, okBody), code: CodeInvalidCustomID, param: "custom_id"},
		{name: "custom_id tab", line: req(`"a\tb"`, okMethod, okURL, okBody), code: CodeInvalidCustomID, param: "custom_id"},
		{name: "custom_id DEL", line: req(`"a\u007f"`, okMethod, okURL, okBody), code: CodeInvalidCustomID, param: "custom_id"},
		{name: "custom_id non-ascii", line: req(`"café"`, okMethod, okURL, okBody), code: CodeInvalidCustomID, param: "custom_id"},
		{name: "custom_id escaped non-ascii", line: req(`"caf\u00e9"`, okMethod, okURL, okBody), code: CodeInvalidCustomID, param: "custom_id"},
		{name: "custom_id leading space", line: req(`" a"`, okMethod, okURL, okBody), code: CodeInvalidCustomID, param: "custom_id"},
		{name: "custom_id trailing space", line: req(`"a "`, okMethod, okURL, okBody), code: CodeInvalidCustomID, param: "custom_id"},
		{name: "custom_id duplicate", before: []string{req(okID, okMethod, okURL, okBody)}, line: req(okID, okMethod, okURL, okBody), code: CodeDuplicateCustomID, param: "custom_id"},
		{name: "custom_id duplicate of an invalid line", before: []string{req(okID, okMethod, `"/x"`, okBody)}, line: req(okID, okMethod, okURL, okBody), code: CodeDuplicateCustomID, param: "custom_id"},
		{name: "custom_id differing in case is not a duplicate", before: []string{req(`"R1"`, okMethod, okURL, okBody)}, line: req(okID, okMethod, okURL, okBody)},

		{name: "method missing", line: req(okID, "-", okURL, okBody), code: CodeInvalidMethod, param: "method"},
		{name: "method GET", line: req(okID, `"GET"`, okURL, okBody), code: CodeInvalidMethod, param: "method"},
		{name: "method with space", line: req(okID, `"POST "`, okURL, okBody), code: CodeInvalidMethod, param: "method"},
		{name: "method number", line: req(okID, `1`, okURL, okBody), code: CodeInvalidMethod, param: "method"},

		{name: "url missing", line: req(okID, okMethod, "-", okBody), code: CodeInvalidURL, param: "url"},
		{name: "url number", line: req(okID, okMethod, `7`, okBody), code: CodeInvalidURL, param: "url"},
		{name: "url empty", line: req(okID, okMethod, `""`, okBody), code: CodeInvalidURL, param: "url"},
		{name: "url query", line: req(okID, okMethod, `"/v1/chat/completions?x=1"`, okBody), code: CodeInvalidURL, param: "url"},
		{name: "url trailing space", line: req(okID, okMethod, `"/v1/chat/completions "`, okBody), code: CodeInvalidURL, param: "url"},
		{name: "url trailing slash", line: req(okID, okMethod, `"/v1/chat/completions/"`, okBody), code: CodeInvalidURL, param: "url"},
		{name: "url upper case", line: req(okID, okMethod, `"/V1/CHAT/COMPLETIONS"`, okBody), code: CodeInvalidURL, param: "url"},
		{name: "url absolute", line: req(okID, okMethod, `"https://api.openai.com/v1/chat/completions"`, okBody), code: CodeInvalidURL, param: "url"},
		{name: "url scheme-relative", line: req(okID, okMethod, `"//evil.com/v1/chat/completions"`, okBody), code: CodeInvalidURL, param: "url"},
		{name: "url percent-encoded", line: req(okID, okMethod, `"/v1%2Fchat%2Fcompletions"`, okBody), code: CodeInvalidURL, param: "url"},
		{name: "url dot segments", line: req(okID, okMethod, `"/v1/chat/../chat/completions"`, okBody), code: CodeInvalidURL, param: "url"},
		{name: "url not in custom allow-list", line: req(okID, okMethod, okURL, okBody), rules: Rules{AllowedURLs: []string{"/v1/embeddings"}}, code: CodeInvalidURL, param: "url"},
		{name: "url mismatch", line: req(okID, okMethod, `"/v1/embeddings"`, okBody), rules: Rules{Endpoint: "/v1/chat/completions"}, code: CodeURLMismatch, param: "url"},
		{name: "url matches endpoint", line: req(okID, okMethod, okURL, okBody), rules: Rules{Endpoint: "/v1/chat/completions"}},

		{name: "body missing", line: req(okID, okMethod, okURL, "-"), code: CodeInvalidBody, param: "body"},
		{name: "body null", line: req(okID, okMethod, okURL, `null`), code: CodeInvalidBody, param: "body"},
		{name: "body array", line: req(okID, okMethod, okURL, `[{"model":"m"}]`), code: CodeInvalidBody, param: "body"},
		{name: "body string", line: req(okID, okMethod, okURL, `"{\"model\":\"m\"}"`), code: CodeInvalidBody, param: "body"},
		{name: "body too large", line: req(okID, okMethod, okURL, `{"model":"m","pad":"`+strings.Repeat("x", 100)+`"}`), rules: Rules{MaxBodyBytes: 100}, code: CodeBodyTooLarge, param: "body"},
		{name: "body duplicate model", line: req(okID, okMethod, okURL, `{"model":"m","model":"other"}`), code: CodeInvalidBody, param: "body.model"},
		{name: "body duplicate escaped model", line: req(okID, okMethod, okURL, `{"model":"m","mod\u0065l":"other"}`), code: CodeInvalidBody, param: "body.model"},
		{name: "body duplicate stream", line: req(okID, okMethod, okURL, `{"model":"m","stream":false,"stream":true}`), code: CodeInvalidBody, param: "body.stream"},

		{name: "model missing", line: req(okID, okMethod, okURL, `{}`), code: CodeMissingModel, param: "body.model"},
		{name: "model only nested", line: req(okID, okMethod, okURL, `{"messages":[{"model":"m"}]}`), code: CodeMissingModel, param: "body.model"},
		{name: "model null", line: req(okID, okMethod, okURL, `{"model":null}`), code: CodeMissingModel, param: "body.model"},
		{name: "model number", line: req(okID, okMethod, okURL, `{"model":4}`), code: CodeMissingModel, param: "body.model"},
		{name: "model empty", line: req(okID, okMethod, okURL, `{"model":""}`), code: CodeMissingModel, param: "body.model"},
		{name: "model case-different key", line: req(okID, okMethod, okURL, `{"Model":"m"}`), code: CodeMissingModel, param: "body.model"},
		{name: "model too long", line: req(okID, okMethod, okURL, `{"model":"`+strings.Repeat("m", MaxModelBytes+1)+`"}`), code: CodeModelNotFound, param: "body.model"},
		{name: "model not allowed", line: req(okID, okMethod, okURL, `{"model":"gpt-5"}`), rules: onlyGPT, code: CodeModelNotFound, param: "body.model"},
		{name: "model allowed", line: req(okID, okMethod, okURL, `{"model":"m"}`), rules: onlyGPT},

		{name: "stream true", line: req(okID, okMethod, okURL, `{"model":"m","stream":true}`), code: CodeStreamNotSupported, param: "body.stream"},
		{name: "stream string", line: req(okID, okMethod, okURL, `{"model":"m","stream":"true"}`), code: CodeStreamNotSupported, param: "body.stream"},
		{name: "stream number", line: req(okID, okMethod, okURL, `{"stream":1,"model":"m"}`), code: CodeStreamNotSupported, param: "body.stream"},
	}
}

func TestValidatorCheck(t *testing.T) {
	t.Parallel()
	for _, tt := range validatorCases() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := NewValidator(tt.rules)
			for i, l := range tt.before {
				_, _ = v.Check(Line{Number: i + 1, Bytes: []byte(l)})
			}
			n := len(tt.before) + 3 // leave a gap so numbers are not simply counted
			start := time.Now()
			got, le := v.Check(Line{Number: n, Offset: 1000, Bytes: []byte(tt.line)})
			assert.Less(t, time.Since(start), 2*time.Second)
			if tt.code == "" {
				require.Nil(t, le)
				assert.Equal(t, n, got.Line)
				assert.Equal(t, "POST", got.Method)
				assert.NotEmpty(t, got.CustomID)
				assert.NotEmpty(t, got.URL)
				assert.NotEmpty(t, got.Model)
				assert.True(t, json.Valid(got.Body))
				assert.Equal(t, byte('{'), got.Body[0])
				return
			}
			require.NotNil(t, le, "want %s", tt.code)
			assert.Equal(t, tt.code, le.Code, le.Message)
			assert.Equal(t, tt.param, le.Param)
			assert.Equal(t, n, le.Line)
			assert.True(t, strings.HasPrefix(le.Message, fmt.Sprintf("line %d: ", n)), le.Message)
			assert.Equal(t, le.Message, le.Error())
			assert.Less(t, len(le.Message), 400, "messages stay short")
			assert.Equal(t, Request{}, got)
		})
	}
}

func TestValidatorRequestFields(t *testing.T) {
	t.Parallel()
	v := NewValidator(Rules{})
	line := []byte(`{"custom_id":"a-1","method":"post","url":"/v1/embeddings","body": {"model" : "e5", "input":"x"} ,"extra":1}`)
	got, le := v.Check(Line{Number: 4, Bytes: line})
	require.Nil(t, le)
	assert.Equal(t, Request{
		Line:     4,
		CustomID: "a-1",
		Method:   "POST",
		URL:      "/v1/embeddings",
		Model:    "e5",
		Body:     json.RawMessage(`{"model" : "e5", "input":"x"}`),
	}, got)
	line[len(line)-5] = 'X' // the body is a copy, not a view of the reader's buffer
	assert.Equal(t, `{"model" : "e5", "input":"x"}`, string(got.Body))

	got, le = v.Check(Line{Number: 5, Bytes: []byte(`{"custom_\u0069d":"a\u002d2","method":"POST","url":"\/v1\/chat\/completions","body":{"mod\u0065l":"\u0065\u0035"}}`)})
	require.Nil(t, le)
	assert.Equal(t, "a-2", got.CustomID)
	assert.Equal(t, "/v1/chat/completions", got.URL)
	assert.Equal(t, "e5", got.Model)
}

func TestValidatorMessages(t *testing.T) {
	t.Parallel()
	v := NewValidator(Rules{Endpoint: "/v1/chat/completions", ModelAllowed: func(m string) bool { return m != "nope" }})
	check := func(n int, line string) *LineError {
		_, le := v.Check(Line{Number: n, Bytes: []byte(line)})
		return le
	}
	require.Nil(t, check(2, req(`"a"`, okMethod, okURL, okBody)))
	assert.Equal(t, `line 9: duplicate custom_id "a" (first seen on line 2)`, check(9, req(`"a"`, okMethod, okURL, okBody)).Message)
	le := check(10, req(`"b"`, `"GET"`, okURL, okBody))
	assert.Equal(t, `line 10: method must be "POST", got "GET"`, le.Message)
	assert.Equal(t, "b", le.CustomID)
	assert.Equal(t, `line 11: url "/v1/chat" is not supported; use one of /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses, /v1/messages`,
		check(11, req(`"c"`, okMethod, `"/v1/chat"`, okBody)).Message)
	assert.Equal(t, `line 12: url "/v1/embeddings" does not match the batch endpoint "/v1/chat/completions"`,
		check(12, req(`"d"`, okMethod, `"/v1/embeddings"`, okBody)).Message)
	assert.Equal(t, `line 13: the model "nope" does not exist or is not available for batches`,
		check(13, req(`"e"`, okMethod, okURL, `{"model":"nope"}`)).Message)
	assert.Equal(t, `line 14: this line is not parseable as valid JSON: unexpected end of JSON input (at byte 1 of the line)`,
		check(14, `{`).Message)
	assert.Equal(t, `line 15: this line is not a valid request: expected a JSON object, got an array`,
		check(15, `[]`).Message)
	long := strings.Repeat("z", 10_000)
	le = check(16, req(`"f"`, okMethod, `"`+long+`"`, okBody))
	assert.Less(t, len(le.Message), 300, "user values are shortened in messages")
}

func TestValidatorTooManyLines(t *testing.T) {
	t.Parallel()
	v := NewValidator(Rules{MaxLines: 3})
	var codes []string
	for i := 1; i <= 6; i++ {
		_, le := v.Check(Line{Number: i * 2, Bytes: []byte(req(fmt.Sprintf(`"r%d"`, i), okMethod, okURL, okBody))})
		if le != nil {
			codes = append(codes, fmt.Sprintf("%d:%s", le.Line, le.Code))
		}
	}
	assert.Equal(t, []string{"8:too_many_lines"}, codes, "reported once, on the first line over the limit")
	assert.Equal(t, 3, v.Summary().Lines, "lines past the limit are not summarised")
	assert.Nil(t, v.Finish())
}

func TestValidatorEmptyFile(t *testing.T) {
	t.Parallel()
	le := NewValidator(Rules{}).Finish()
	require.NotNil(t, le)
	assert.Equal(t, CodeEmptyFile, le.Code)
	assert.Equal(t, 0, le.Line)

	for _, input := range []string{"", "\n\n", " \r\n\t\n", "\xEF\xBB\xBF\n"} {
		sum, errs, err := ValidateAll(strings.NewReader(input), Rules{}, 0, 0)
		require.NoError(t, err)
		require.Len(t, errs, 1, "%q", input)
		assert.Equal(t, CodeEmptyFile, errs[0].Code)
		assert.Equal(t, 0, sum.Lines)
	}

	// A file whose only line is invalid is not empty: the line's own error says what is wrong.
	_, errs, err := ValidateAll(strings.NewReader("nope\n"), Rules{}, 0, 0)
	require.NoError(t, err)
	require.Len(t, errs, 1)
	assert.Equal(t, CodeInvalidJSONLine, errs[0].Code)
}

func TestValidatorSummary(t *testing.T) {
	t.Parallel()
	v := NewValidator(Rules{})
	bodies := []string{`{"model":"a"}`, `{"model":"b","x":1}`, `{"model":"a","messages":[]}`}
	for i, b := range bodies {
		_, le := v.Check(Line{Number: i + 1, Bytes: []byte(req(fmt.Sprintf(`"r%d"`, i), okMethod, okURL, b))})
		require.Nil(t, le)
	}
	_, _ = v.Check(Line{Number: 4, Bytes: []byte(req(`"r9"`, okMethod, okURL, `{"model":"c","stream":true}`))})
	sum := v.Summary()
	assert.Equal(t, Summary{
		Lines:     3,
		BodyBytes: int64(len(bodies[0]) + len(bodies[1]) + len(bodies[2])),
		Models: map[string]ModelSummary{
			"a": {Requests: 2, BodyBytes: int64(len(bodies[0]) + len(bodies[2]))},
			"b": {Requests: 1, BodyBytes: int64(len(bodies[1]))},
		},
	}, sum)
	sum.Models["a"] = ModelSummary{}
	assert.Equal(t, 2, v.Summary().Models["a"].Requests, "Summary returns a copy")
}

func TestValidateAllReportsEveryBadLine(t *testing.T) {
	t.Parallel()
	lines := []string{
		req(`"a"`, okMethod, okURL, okBody), // 1 ok
		"",                                  // 2 blank
		`{"custom_id":`,                     // 3 invalid json
		req(`"a"`, okMethod, okURL, okBody), // 4 duplicate
		req(`"b"`, `"GET"`, okURL, okBody),  // 5 method
		"{\"custom_id\":\"\xc3\x28\"}",      // 6 invalid utf8
		req(`"c"`, okMethod, okURL, `{"pad":"`+strings.Repeat("x", 300)+`"}`), // 7 too long
		req(`"d"`, okMethod, `"/v1/x"`, okBody),                               // 8 url
		req(`"e"`, okMethod, okURL, `{"model":"m","stream":true}`),            // 9 stream
		req(`"f"`, okMethod, okURL, `{"model":"m2"}`),                         // 10 ok
	}
	input := "\xEF\xBB\xBF" + strings.Join(lines, "\r\n")
	sum, errs, err := ValidateAll(strings.NewReader(input), Rules{}, 200, 0)
	require.NoError(t, err)
	var got []string
	for _, e := range errs {
		got = append(got, fmt.Sprintf("%d:%s", e.Line, e.Code))
		assert.True(t, strings.HasPrefix(e.Message, fmt.Sprintf("line %d: ", e.Line)), e.Message)
	}
	assert.Equal(t, []string{
		"3:invalid_json_line", "4:duplicate_custom_id", "5:invalid_method", "6:invalid_utf8",
		"7:line_too_large", "8:invalid_url", "9:stream_not_supported",
	}, got)
	assert.Equal(t, 2, sum.Lines)
	assert.Equal(t, map[string]ModelSummary{
		"m":  {Requests: 1, BodyBytes: int64(len(okBody))},
		"m2": {Requests: 1, BodyBytes: int64(len(`{"model":"m2"}`))},
	}, sum.Models)

	// maxErrors caps the list and stops reading; the summary covers the lines read.
	sum, errs, err = ValidateAll(strings.NewReader(input), Rules{}, 200, 2)
	require.NoError(t, err)
	require.Len(t, errs, 2)
	assert.Equal(t, 4, errs[1].Line)
	assert.Equal(t, 1, sum.Lines)
}

// TestValidateAllStopsAtMaxErrors checks that a huge file of bad lines costs no more than
// maxErrors lines of work.
func TestValidateAllStopsAtMaxErrors(t *testing.T) {
	t.Parallel()
	r := &repeatReader{line: []byte("\xff\n"), count: 10_000_000}
	start := time.Now()
	_, errs, err := ValidateAll(r, Rules{}, 0, 0)
	require.NoError(t, err)
	assert.Len(t, errs, DefaultMaxErrors)
	assert.Equal(t, DefaultMaxErrors, errs[len(errs)-1].Line)
	assert.Less(t, time.Since(start), time.Second)
	assert.Greater(t, r.count, 9_000_000, "reading stopped early")
}

func TestValidateAllTooManyLinesCountsRejectedLines(t *testing.T) {
	t.Parallel()
	input := strings.Join([]string{
		req(`"a"`, okMethod, okURL, okBody),
		strings.Repeat("x", 500), // rejected by the Reader, still a request line
		req(`"b"`, okMethod, okURL, okBody),
		req(`"c"`, okMethod, `"/bad"`, okBody),
	}, "\n")
	_, errs, err := ValidateAll(strings.NewReader(input), Rules{MaxLines: 2}, 200, 0)
	require.NoError(t, err)
	var got []string
	for _, e := range errs {
		got = append(got, fmt.Sprintf("%d:%s", e.Line, e.Code))
	}
	assert.Equal(t, []string{"2:line_too_large", "3:too_many_lines", "4:invalid_url"}, got)
}

func TestValidateAllIOError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	input := req(`"a"`, okMethod, okURL, okBody) + "\nnope\n"
	sum, errs, err := ValidateAll(io.MultiReader(strings.NewReader(input), iotest.ErrReader(boom)), Rules{}, 0, 0)
	require.ErrorIs(t, err, boom)
	assert.Equal(t, 1, sum.Lines)
	require.Len(t, errs, 1)
	assert.Equal(t, CodeInvalidJSONLine, errs[0].Code)
}

func TestValidateAllLargeFile(t *testing.T) {
	t.Parallel()
	data := benchFile(10 << 20)
	want := bytes.Count(data, []byte("\n"))
	sum, errs, err := ValidateAll(iotest.HalfReader(bytes.NewReader(data)), Rules{}, 0, 0)
	require.NoError(t, err)
	require.Empty(t, errs)
	assert.Equal(t, want, sum.Lines)
	assert.Len(t, sum.Models, 3)
}

func TestDeepNestingFailsFast(t *testing.T) {
	t.Parallel()
	for _, line := range []string{
		strings.Repeat("[", 100_000),
		strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000),
		strings.Repeat(`{"a":`, 100_000) + "1" + strings.Repeat("}", 100_000),
		req(okID, okMethod, okURL, `{"model":"m","x":`+strings.Repeat("[", 100_000)+strings.Repeat("]", 100_000)+`}`),
	} {
		start := time.Now()
		_, errs, err := ValidateAll(strings.NewReader(line), Rules{}, 0, 0)
		require.NoError(t, err)
		require.Len(t, errs, 1)
		assert.Equal(t, CodeInvalidJSONLine, errs[0].Code)
		assert.Contains(t, errs[0].Message, "exceeded max depth")
		assert.Less(t, time.Since(start), time.Second)
	}
}

func FuzzValidator(f *testing.F) {
	for _, tt := range validatorCases() {
		if len(tt.line) < 4096 {
			f.Add([]byte(tt.line))
		}
	}
	f.Add([]byte("\xEF\xBB\xBF" + req(okID, okMethod, okURL, okBody) + "\r\n\n" + req(okID, okMethod, okURL, okBody)))
	rules := Rules{
		MaxLines:     5,
		MaxBodyBytes: 1 << 10,
		MaxCustomID:  16,
		ModelAllowed: func(m string) bool { return m != "forbidden" },
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, errs, err := ValidateAll(bytes.NewReader(data), rules, 2048, 0)
		require.NoError(t, err)
		for _, e := range errs {
			require.NotEmpty(t, e.Code)
			if e.Line > 0 {
				require.True(t, strings.HasPrefix(e.Message, fmt.Sprintf("line %d: ", e.Line)), e.Message)
			}
		}

		// The whole input as one line: a request is only accepted if encoding/json, reading
		// the same bytes with exact key matching, sees the same fields.
		got, le := NewValidator(rules).Check(Line{Number: 1, Bytes: data})
		if le != nil {
			require.NotEmpty(t, le.Code)
			require.Equal(t, Request{}, got)
			return
		}
		var top map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(data, &top))
		var id, method, url string
		require.NoError(t, json.Unmarshal(top["custom_id"], &id))
		require.NoError(t, json.Unmarshal(top["method"], &method))
		require.NoError(t, json.Unmarshal(top["url"], &url))
		require.Equal(t, id, got.CustomID)
		require.True(t, strings.EqualFold(method, got.Method))
		require.Equal(t, url, got.URL)
		require.Equal(t, []byte(top["body"]), []byte(got.Body))
		var body map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(got.Body, &body))
		var model string
		require.NoError(t, json.Unmarshal(body["model"], &model))
		require.Equal(t, model, got.Model)
		require.NotEqual(t, "forbidden", got.Model)
		if s, ok := body["stream"]; ok {
			require.Contains(t, []string{"false", "null"}, string(s))
		}
		require.LessOrEqual(t, len(got.CustomID), 16)
		for _, c := range []byte(got.CustomID) {
			require.True(t, c >= 0x20 && c <= 0x7e)
		}
	})
}

func BenchmarkValidate(b *testing.B) {
	data := benchFile(10 << 20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		_, errs, err := ValidateAll(bytes.NewReader(data), Rules{}, 0, 0)
		require.NoError(b, err)
		require.Empty(b, errs)
	}
}

// BenchmarkCheck measures the import path, which also copies each body.
func BenchmarkCheck(b *testing.B) {
	data := benchFile(10 << 20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rd := NewReader(bytes.NewReader(data), 0)
		v := NewValidator(Rules{})
		for {
			line, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(b, err)
			_, le := v.Check(line)
			require.Nil(b, le)
		}
	}
}

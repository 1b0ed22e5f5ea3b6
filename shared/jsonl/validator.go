package jsonl

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
)

// Defaults applied by NewValidator and ValidateAll to zero (or negative) settings.
const (
	DefaultMaxBodyBytes = 10 << 20 // raw bytes of one request's body
	DefaultMaxLines     = 50000    // request lines per file, as in the OpenAI Batch API
	DefaultMaxCustomID  = 64       // bytes of custom_id
	DefaultMaxErrors    = 1000     // errors collected by ValidateAll
)

// MaxModelBytes caps body.model. Real model names are far shorter; the cap keeps the per-model
// summary small even when Rules.ModelAllowed accepts anything.
const MaxModelBytes = 256

// defaultAllowedURLs are the endpoints a batch line may target when Rules.AllowedURLs is empty.
var defaultAllowedURLs = []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages"}

// Rules configures a Validator. The zero value is usable and means the defaults.
type Rules struct {
	// AllowedURLs is matched exactly, byte for byte; default /v1/chat/completions,
	// /v1/completions, /v1/embeddings, /v1/responses and /v1/messages (Anthropic's).
	AllowedURLs []string
	// Endpoint, when set, is the batch's endpoint and every line's url must equal it.
	Endpoint string
	// ModelAllowed reports whether body.model may be used; nil accepts any model.
	ModelAllowed func(model string) bool
	// MaxBodyBytes limits the raw size of each body value; default 10 MiB.
	MaxBodyBytes int
	// MaxLines limits the number of request lines; default 50000.
	MaxLines int
	// MaxCustomID limits the length of custom_id in bytes; default 64.
	MaxCustomID int
}

// Request is a validated line.
type Request struct {
	Line     int             // 1-based physical line number
	CustomID string          // unique within the file, printable ASCII
	Method   string          // always "POST"
	URL      string          // one of Rules.AllowedURLs
	Model    string          // body.model
	Body     json.RawMessage // the body value byte for byte as sent (its own copy)
}

// Summary describes the valid requests of a file. Lines equals the sum of Models[*].Requests
// and BodyBytes the sum of Models[*].BodyBytes. Lines beyond Rules.MaxLines are not included.
type Summary struct {
	Lines     int
	BodyBytes int64
	Models    map[string]ModelSummary
}

// ModelSummary is the per-model share of a Summary, used for cost estimates.
type ModelSummary struct {
	Requests  int
	BodyBytes int64
}

// Validator checks request lines one at a time and remembers what is needed across lines
// (custom_ids, counts). Memory is bounded by Rules.MaxLines: once the limit is passed, later
// lines are still checked on their own but no longer recorded, so a duplicate custom_id after
// the limit is only detected against the lines before it. A Validator is not safe for
// concurrent use.
type Validator struct {
	rules   Rules
	allowed []string
	seen    int               // lines passed to Check (or rejected by the Reader in ValidateAll)
	over    bool              // too_many_lines has been reported
	ids     map[string]int    // custom_id -> line of its first occurrence
	names   map[string]string // interned model names, so each valid line does not allocate one
	summary Summary
}

// NewValidator returns a Validator for rules, with defaults filled in.
func NewValidator(rules Rules) *Validator {
	if rules.MaxBodyBytes <= 0 {
		rules.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if rules.MaxLines <= 0 {
		rules.MaxLines = DefaultMaxLines
	}
	if rules.MaxCustomID <= 0 {
		rules.MaxCustomID = DefaultMaxCustomID
	}
	allowed := slices.Clone(rules.AllowedURLs)
	if len(allowed) == 0 {
		allowed = slices.Clone(defaultAllowedURLs)
	}
	rules.AllowedURLs = allowed
	return &Validator{
		rules:   rules,
		allowed: allowed,
		ids:     make(map[string]int),
		names:   make(map[string]string),
		summary: Summary{Models: make(map[string]ModelSummary)},
	}
}

// Check validates one line and returns the request with its own copy of the body. A line gets
// at most one error. Lines past Rules.MaxLines still get their own checks but, apart from the
// one too_many_lines error, a valid line past the limit returns a nil error: callers that import
// requests must stop at the first error rather than skip bad lines.
func (v *Validator) Check(line Line) (Request, *LineError) {
	if le := v.count(line.Number); le != nil {
		return Request{}, le
	}
	return v.check(line, true)
}

// Finish reports file-level problems once all lines have been checked: empty_file when no
// request line was seen (blank lines do not count).
func (v *Validator) Finish() *LineError {
	if v.seen == 0 {
		return &LineError{Code: CodeEmptyFile, Message: "the file contains no requests"}
	}
	return nil
}

// Summary returns the totals of the valid requests so far. The map is a copy.
func (v *Validator) Summary() Summary {
	s := v.summary
	s.Models = maps.Clone(v.summary.Models)
	return s
}

// count registers one request line against MaxLines and returns too_many_lines for the first
// line over the limit.
func (v *Validator) count(n int) *LineError {
	v.seen++
	if v.seen > v.rules.MaxLines && !v.over {
		v.over = true
		return lineErr(n, CodeTooManyLines, "",
			"the file has more than %d requests; split it into several batches", v.rules.MaxLines)
	}
	return nil
}

// topKeys and bodyKeys are the object keys the validator reads; other keys are ignored.
var (
	topKeys  = []string{"custom_id", "method", "url", "body"}
	bodyKeys = []string{"model", "stream"}
)

func (v *Validator) check(line Line, cloneBody bool) (Request, *LineError) {
	n, b := line.Number, line.Bytes
	if le := checkEncoding(line); le != nil {
		return Request{}, le
	}
	// json.Valid runs encoding/json's iterative scanner, which caps nesting at 10000 levels, so
	// hostile nesting fails fast without recursion; everything after this walks valid JSON.
	if !json.Valid(b) {
		return Request{}, invalidJSON(n, b)
	}
	start := skipSpace(b, 0)
	if b[start] != '{' {
		return Request{}, lineErr(n, CodeInvalidJSONLine, "",
			"this line is not a valid request: expected a JSON object, got %s", kind(b[start:]))
	}
	var top [4][]byte // custom_id, method, url, body
	if k, err := collect(b, start, topKeys, top[:]); err != nil {
		return Request{}, lineErr(n, CodeInvalidJSONLine, topKeys[k],
			"the key %q appears more than once", topKeys[k])
	}
	rawID, rawMethod, rawURL, body := top[0], top[1], top[2], top[3]

	id, le := v.checkCustomID(n, rawID)
	if le != nil {
		return Request{}, le
	}
	req := Request{Line: n, CustomID: id, Method: "POST"}
	fail := func(le *LineError) (Request, *LineError) {
		le.CustomID = id
		return Request{}, le
	}

	if !isPost(rawMethod) {
		return fail(lineErr(n, CodeInvalidMethod, "method",
			`method must be "POST", got %s`, describe(rawMethod)))
	}

	url, le := v.checkURL(n, rawURL)
	if le != nil {
		return fail(le)
	}
	req.URL = url

	if len(body) == 0 || body[0] != '{' {
		return fail(lineErr(n, CodeInvalidBody, "body",
			"body must be a JSON object, got %s", describe(body)))
	}
	if len(body) > v.rules.MaxBodyBytes {
		return fail(lineErr(n, CodeBodyTooLarge, "body",
			"body is %d bytes; the limit is %d bytes", len(body), v.rules.MaxBodyBytes))
	}
	var inBody [2][]byte // model, stream
	if k, err := collect(body, 0, bodyKeys, inBody[:]); err != nil {
		return fail(lineErr(n, CodeInvalidBody, "body."+bodyKeys[k],
			"the key %q appears more than once in body", bodyKeys[k]))
	}
	model, le := v.checkModel(n, inBody[0])
	if le != nil {
		return fail(le)
	}
	req.Model = model
	if s := inBody[1]; s != nil && string(s) != "false" && string(s) != "null" {
		return fail(lineErr(n, CodeStreamNotSupported, "body.stream",
			"body.stream is not supported in batches; remove it or set it to false"))
	}

	if cloneBody {
		req.Body = bytes.Clone(body)
	}
	if !v.over {
		if _, ok := v.names[model]; !ok {
			v.names[model] = model
		}
		v.summary.Lines++
		v.summary.BodyBytes += int64(len(body))
		ms := v.summary.Models[model]
		ms.Requests++
		ms.BodyBytes += int64(len(body))
		v.summary.Models[model] = ms
	}
	return req, nil
}

// isPost reports whether the raw method value is the string "POST" in any letter case.
func isPost(raw []byte) bool {
	if s, ok := rawString(raw); ok {
		return strings.EqualFold(string(s), "POST")
	}
	s, ok := decodeString(raw)
	return ok && strings.EqualFold(s, "POST")
}

// collect stores the raw values of the wanted keys of the object at b[start] into out (same
// order as keys). It returns the index of a key that occurs twice and a non-nil error then.
func collect(b []byte, start int, keys []string, out [][]byte) (int, error) {
	it := members{b: b, i: start}
	var buf [maxKeyName]byte
	for {
		k, val, ok := it.next()
		if !ok {
			return 0, nil
		}
		text, ok := keyName(k, &buf)
		if !ok {
			continue
		}
		for i, name := range keys {
			if string(text) == name {
				if out[i] != nil {
					return i, errDuplicateKey
				}
				out[i] = val
				break
			}
		}
	}
}

var errDuplicateKey = errors.New("duplicate key")

// checkCustomID validates custom_id and its uniqueness. A well-formed id is recorded even if a
// later check fails on its line, so a dry run reports the duplicate together with the other
// error instead of only after the first one is fixed.
func (v *Validator) checkCustomID(n int, raw []byte) (string, *LineError) {
	if raw == nil || string(raw) == "null" {
		return "", lineErr(n, CodeMissingCustomID, "custom_id", "custom_id is missing")
	}
	id, ok := decodeString(raw)
	if !ok {
		return "", lineErr(n, CodeMissingCustomID, "custom_id",
			"custom_id must be a string, got %s", kind(raw))
	}
	if id == "" {
		return "", lineErr(n, CodeMissingCustomID, "custom_id", "custom_id must not be empty")
	}
	if len(id) > v.rules.MaxCustomID {
		return "", lineErr(n, CodeInvalidCustomID, "custom_id",
			"custom_id is %d bytes long; the limit is %d", len(id), v.rules.MaxCustomID)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c > 0x7e {
			return "", lineErr(n, CodeInvalidCustomID, "custom_id",
				"custom_id %s contains byte 0x%02x at position %d; only printable ASCII (0x20-0x7E) is allowed",
				quote(id), c, i)
		}
	}
	if id[0] == ' ' || id[len(id)-1] == ' ' {
		// HTTP trims header values, so such an id would not come back unchanged.
		return "", lineErr(n, CodeInvalidCustomID, "custom_id",
			"custom_id %s must not start or end with a space", quote(id))
	}
	if first, dup := v.ids[id]; dup {
		le := lineErr(n, CodeDuplicateCustomID, "custom_id",
			"duplicate custom_id %s (first seen on line %d)", quote(id), first)
		le.CustomID = id
		return "", le
	}
	if !v.over {
		v.ids[id] = n
	}
	return id, nil
}

// checkURL matches url exactly against the allow-list and the batch endpoint. An unescaped url
// is compared in place and the allow-list's own string is returned, so valid lines do not
// allocate one.
func (v *Validator) checkURL(n int, raw []byte) (string, *LineError) {
	var url string
	if s, ok := rawString(raw); ok {
		for _, a := range v.allowed {
			if string(s) == a {
				url = a
				break
			}
		}
		if url == "" {
			url = string(s)
		}
	} else if s, ok := decodeString(raw); ok {
		url = s
	} else {
		return "", lineErr(n, CodeInvalidURL, "url", "url must be a string, got %s", describe(raw))
	}
	if !slices.Contains(v.allowed, url) {
		return "", lineErr(n, CodeInvalidURL, "url",
			"url %s is not supported; use one of %s", quote(url), strings.Join(v.allowed, ", "))
	}
	if v.rules.Endpoint != "" && url != v.rules.Endpoint {
		return "", lineErr(n, CodeURLMismatch, "url",
			"url %s does not match the batch endpoint %s", quote(url), quote(v.rules.Endpoint))
	}
	return url, nil
}

// checkModel validates body.model and returns it interned.
func (v *Validator) checkModel(n int, raw []byte) (string, *LineError) {
	if raw == nil || string(raw) == "null" {
		return "", lineErr(n, CodeMissingModel, "body.model", "body.model is missing")
	}
	var model string
	if s, ok := rawString(raw); ok {
		if m, ok := v.names[string(s)]; ok {
			model = m
		} else {
			model = string(s)
		}
	} else if s, ok := decodeString(raw); ok {
		model = s
	} else {
		return "", lineErr(n, CodeMissingModel, "body.model",
			"body.model must be a string, got %s", kind(raw))
	}
	if model == "" {
		return "", lineErr(n, CodeMissingModel, "body.model", "body.model must not be empty")
	}
	if len(model) > MaxModelBytes {
		return "", lineErr(n, CodeModelNotFound, "body.model",
			"body.model is %d bytes long; the limit is %d", len(model), MaxModelBytes)
	}
	if v.rules.ModelAllowed != nil && !v.rules.ModelAllowed(model) {
		return "", lineErr(n, CodeModelNotFound, "body.model",
			"the model %s does not exist or is not available for batches", quote(model))
	}
	return model, nil
}

// describe renders a raw JSON value for a message: strings quoted (and shortened), other types
// by kind.
func describe(raw []byte) string {
	if raw == nil {
		return "nothing (the key is missing)"
	}
	if s, ok := decodeString(raw); ok {
		return quote(s)
	}
	return kind(raw)
}

// invalidJSON builds the invalid_json_line error, with encoding/json's reason and offset. It
// runs only on failure, so the second parse costs nothing on valid files.
func invalidJSON(n int, b []byte) *LineError {
	if len(bytes.TrimSpace(b)) == 0 {
		return lineErr(n, CodeInvalidJSONLine, "", "this line is empty")
	}
	var raw json.RawMessage
	err := json.Unmarshal(b, &raw)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return lineErr(n, CodeInvalidJSONLine, "",
			"this line is not parseable as valid JSON: %s (at byte %d of the line)", se.Error(), se.Offset)
	}
	return lineErr(n, CodeInvalidJSONLine, "", "this line is not parseable as valid JSON")
}

// ValidateAll reads a whole file and reports every bad line at once, for uploads and dry runs.
// maxLineBytes <= 0 means DefaultMaxLineBytes. It collects at most maxErrors errors (default 1000) and stops
// reading when it has that many: a file that broken needs fixing, not a full estimate, and
// formatting an error per line of a file of millions of garbage lines would cost far more than
// validating it. The summary then covers only the lines read. The error result is set only for
// I/O failures; the summary and errors gathered up to that point are returned with it.
func ValidateAll(r io.Reader, rules Rules, maxLineBytes, maxErrors int) (Summary, []LineError, error) {
	if maxErrors <= 0 {
		maxErrors = DefaultMaxErrors
	}
	rd := NewReader(r, maxLineBytes)
	v := NewValidator(rules)
	var errs []LineError
	add := func(le *LineError) {
		if le != nil && len(errs) < maxErrors {
			errs = append(errs, *le)
		}
	}
	for len(errs) < maxErrors {
		line, err := rd.Next()
		if errors.Is(err, io.EOF) {
			add(v.Finish())
			break
		}
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) {
				return v.Summary(), errs, err
			}
			// A line the Reader rejected is still a request line for the MaxLines limit.
			add(v.count(line.Number))
			add(le)
			continue
		}
		if le := v.count(line.Number); le != nil {
			add(le)
			continue
		}
		_, le := v.check(line, false)
		add(le)
	}
	return v.Summary(), errs, nil
}

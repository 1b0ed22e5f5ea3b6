// Package openapitest checks HTTP responses against the API's OpenAPI document
// (httpapi.OpenAPI), for tests: a Recorder captures the responses a client receives, and Spec
// validates each JSON body against the schema its route and status declare, with a JSON Schema
// draft 2020-12 validator (OpenAPI 3.1's schemas are that dialect).
package openapitest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/fusillade/fusillade/shared/httpapi"
)

// docURL is where the compiler holds the document; schema locations are pointers into it.
const docURL = "urn:fusillade:openapi.json"

// Spec is an OpenAPI document ready to check responses against.
type Spec struct {
	paths map[string]map[string]any // path template → method (lower case) → operation
	doc   map[string]any
	c     *jsonschema.Compiler

	mu      sync.Mutex
	schemas map[string]*jsonschema.Schema // by location
}

// Load reads the API's own document.
func Load() (*Spec, error) { return Parse(httpapi.OpenAPI()) }

// Parse reads an OpenAPI 3.1 document in JSON.
func Parse(doc []byte) (*Spec, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("openapitest: parse the document: %w", err)
	}
	root, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("openapitest: the document is not a JSON object")
	}
	s := &Spec{doc: root, paths: map[string]map[string]any{}, c: jsonschema.NewCompiler(), schemas: map[string]*jsonschema.Schema{}}
	s.c.DefaultDraft(jsonschema.Draft2020)
	if err := s.c.AddResource(docURL, root); err != nil {
		return nil, fmt.Errorf("openapitest: %w", err)
	}
	paths, _ := root["paths"].(map[string]any)
	for p, item := range paths {
		ops := map[string]any{}
		for m, op := range item.(map[string]any) {
			if slices.Contains([]string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}, m) {
				ops[m] = op
			}
		}
		s.paths[p] = ops
	}
	return s, nil
}

// Operations lists "METHOD /path/template" of every operation in the document, sorted.
func (s *Spec) Operations() []string {
	var out []string
	for p, ops := range s.paths {
		for m := range ops {
			out = append(out, strings.ToUpper(m)+" "+p)
		}
	}
	slices.Sort(out)
	return out
}

// SchemaLocations lists the location of every schema the document declares for a request body,
// a response body or a parameter, and of every component schema: compiling them all checks the
// document's schemas against the 2020-12 meta-schema.
func (s *Spec) SchemaLocations() []string {
	var out []string
	var walk func(v any, ptr string)
	walk = func(v any, ptr string) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				p := ptr + "/" + escape(k)
				if k == "schema" || k == "x-jsonl-line" {
					out = append(out, docURL+"#"+p)
					continue
				}
				walk(c, p)
			}
		case []any:
			for i, c := range x {
				walk(c, ptr+"/"+strconv.Itoa(i))
			}
		}
	}
	walk(s.doc["paths"], "/paths")
	comps, _ := s.doc["components"].(map[string]any)
	for _, kind := range []string{"parameters", "headers", "responses"} {
		walk(comps[kind], "/components/"+kind)
	}
	schemas, _ := comps["schemas"].(map[string]any)
	for name := range schemas {
		out = append(out, docURL+"#/components/schemas/"+escape(name))
	}
	slices.Sort(out)
	return out
}

// Compile compiles the schema at loc (a SchemaLocations value), once.
func (s *Spec) Compile(loc string) (*jsonschema.Schema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sch, ok := s.schemas[loc]; ok {
		return sch, nil
	}
	sch, err := s.c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", loc, err)
	}
	s.schemas[loc] = sch
	return sch, nil
}

// Match finds the operation of a request: its path template (the one with the most literal
// segments, when several match) and whether the document has it.
func (s *Spec) Match(method, path string) (string, bool) {
	segs := strings.Split(path, "/")
	best, bestLit := "", -1
	for tmpl, ops := range s.paths {
		if _, ok := ops[strings.ToLower(method)]; !ok {
			continue
		}
		ts := strings.Split(tmpl, "/")
		if len(ts) != len(segs) {
			continue
		}
		lit := 0
		for i, t := range ts {
			switch {
			case strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") && segs[i] != "":
			case t == segs[i]:
				lit++
			default:
				lit = -1
			}
			if lit < 0 {
				break
			}
		}
		if lit > bestLit {
			best, bestLit = tmpl, lit
		}
	}
	return best, bestLit >= 0
}

// Check validates one response to method path against the document: the route and status must
// be declared, the media type must be one the response declares, and a JSON body (or each line
// of a JSONL body with an x-jsonl-line schema) must be valid against its schema. It returns the
// operation ("METHOD /template") it checked against.
func (s *Spec) Check(method, path string, status int, header http.Header, body []byte) (string, error) {
	tmpl, ok := s.Match(method, path)
	if !ok {
		return "", fmt.Errorf("%s %s: no operation in the document", method, path)
	}
	op := method + " " + tmpl
	ptr := "/paths/" + escape(tmpl) + "/" + strings.ToLower(method) + "/responses"
	responses, _ := s.paths[tmpl][strings.ToLower(method)].(map[string]any)["responses"].(map[string]any)
	key := strconv.Itoa(status)
	if _, ok := responses[key]; !ok {
		key = strconv.Itoa(status/100) + "XX"
	}
	if _, ok := responses[key]; !ok {
		key = "default"
	}
	resp, ok := responses[key].(map[string]any)
	if !ok {
		return op, fmt.Errorf("%s: status %d is not declared", op, status)
	}
	ptr += "/" + escape(key)
	if ref, ok := resp["$ref"].(string); ok {
		ptr = strings.TrimPrefix(ref, "#")
		if resp, ok = s.at(ptr).(map[string]any); !ok {
			return op, fmt.Errorf("%s: %s does not resolve", op, ref)
		}
	}
	content, declared := resp["content"].(map[string]any)
	if !declared {
		if status/100 == 2 && len(body) > 0 {
			return op, fmt.Errorf("%s %d: a body where none is declared: %.200s", op, status, body)
		}
		return op, nil
	}
	mt, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	if err != nil {
		return op, fmt.Errorf("%s %d: Content-Type %q: %w", op, status, header.Get("Content-Type"), err)
	}
	media, ok := content[mt].(map[string]any)
	if !ok {
		return op, fmt.Errorf("%s %d: media type %s is not declared (%s)", op, status, mt, strings.Join(keys(content), ", "))
	}
	ptr += "/content/" + escape(mt)
	switch {
	case mt == "application/json":
		return op, s.validate(op, status, docURL+"#"+ptr+"/schema", body)
	case media["x-jsonl-line"] != nil:
		for i, line := range bytes.Split(body, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if err := s.validate(fmt.Sprintf("%s line %d", op, i+1), status, docURL+"#"+ptr+"/x-jsonl-line", line); err != nil {
				return op, err
			}
		}
	}
	return op, nil
}

func (s *Spec) validate(what string, status int, loc string, body []byte) error {
	sch, err := s.Compile(loc)
	if err != nil {
		return fmt.Errorf("%s %d: %w", what, status, err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %d: the body is not JSON: %w: %.200s", what, status, err, body)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("%s %d: %w\nbody: %.2000s", what, status, err, body)
	}
	return nil
}

// at resolves a JSON pointer in the document; nil when it names nothing.
func (s *Spec) at(ptr string) any {
	var v any = s.doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")]
	}
	return v
}

func escape(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Exchange is one recorded response.
type Exchange struct {
	Method, Host, Path string
	Status             int
	Header             http.Header
	Body               []byte
}

// Recorder is an http.RoundTripper that records every response it carries, body included, and
// hands the caller an unread copy. Next defaults to http.DefaultTransport. Safe for concurrent
// use.
type Recorder struct {
	Next http.RoundTripper

	mu        sync.Mutex
	exchanges []Exchange
}

// RoundTrip implements http.RoundTripper.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	next := r.Next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("openapitest: read the response to %s %s: %w", req.Method, req.URL.Path, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	r.exchanges = append(r.exchanges, Exchange{Method: req.Method, Host: req.URL.Host, Path: req.URL.Path, Status: resp.StatusCode, Header: resp.Header.Clone(), Body: body})
	r.mu.Unlock()
	return resp, nil
}

// Exchanges returns what was recorded so far, in order.
func (r *Recorder) Exchanges() []Exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.exchanges)
}

package httpapi

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"

	"github.com/fusillade/fusillade/shared/domain"
)

// Hostile input stops here, before any handler or query sees it: a path id that does not have
// its kind's shape, and a query parameter or JSON string that PostgreSQL could not take as text
// (NUL, invalid UTF-8), answer 400. The store maps whatever still slips through (a data
// exception) to a 400 as well; this is the first line, with precise messages.

// pathParam is what a path wildcard holds.
type pathParam struct {
	kind  string // as messages name it
	shape string // what a valid value looks like
	valid func(string) bool
}

// pathParams declares every path wildcard by the collection segment before it. New panics on a
// route whose wildcard is not declared here, so no route can skip the check.
var pathParams = map[string]pathParam{
	"files":    {"file", "'file-' followed by 24 letters or digits", domain.IsFileID},
	"batches":  {"batch", "'batch_' followed by 32 lower-case hexadecimal digits", domain.IsBatchID},
	"uploads":  {"upload", "'upload_' followed by 24 letters or digits", domain.IsUploadID},
	"tenants":  {"tenant", "'tenant_' followed by 16 letters or digits", domain.IsTenantID},
	"keys":     {"API key", "a positive integer", domain.IsKeyID},
	"webhooks": {"webhook endpoint", "'we_' followed by 24 letters or digits", domain.IsWebhookEndpointID},
	// Anthropic's message batches: declared by the two segments before the wildcard, which
	// take precedence over the one.
	"messages/batches": {"message batch", "'msgbatch_' followed by 32 lower-case hexadecimal digits", domain.IsMessageBatchID},
	"models": {"model", fmt.Sprintf("1 to %d letters, digits or . _ : / @ + -", domain.MaxModelNameLen),
		domain.IsModelName},
}

// checkInput wraps a route's handler with the checks of its path wildcards and query string.
func (s *server) checkInput(pattern string, next http.Handler) http.Handler {
	type wildcard struct {
		name string
		pathParam
	}
	var wcs []wildcard
	segs := strings.Split(pattern, "/")
	for i, seg := range segs {
		name, ok := strings.CutPrefix(seg, "{")
		if !ok {
			continue
		}
		name = strings.TrimSuffix(name, "}")
		p, ok := pathParams[segs[i-1]]
		if i >= 2 {
			if p2, ok2 := pathParams[segs[i-2]+"/"+segs[i-1]]; ok2 {
				p, ok = p2, true
			}
		}
		if !ok {
			panic(fmt.Sprintf("httpapi: route %s: wildcard {%s} after %q is not declared in pathParams", pattern, name, segs[i-1]))
		}
		wcs = append(wcs, wildcard{name, p})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, wc := range wcs {
			if !wc.valid(r.PathValue(wc.name)) {
				s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: wc.name,
					Message: fmt.Sprintf("Invalid %s id in the URL: expected %s.", wc.kind, wc.shape)})
				return
			}
		}
		if err := checkQuery(r.URL.RawQuery); err != nil {
			s.error(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkQuery rejects a query string that does not parse (bad percent-encoding, a ';' separator)
// or whose names or values are not text. net/url would silently drop such a pair, and the
// store cannot take NUL or invalid UTF-8.
func checkQuery(raw string) error {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return &domain.Error{Code: domain.EInvalid, Message: "The query string is malformed: use '&' between parameters and valid percent-encoding."}
	}
	for name, vals := range v {
		if !domain.ValidText(name) {
			return &domain.Error{Code: domain.EInvalid, Message: "A query parameter name is not UTF-8 text or contains a NUL character."}
		}
		for _, val := range vals {
			if !domain.ValidText(val) {
				return domain.NotText(name)
			}
		}
	}
	return nil
}

// checkText finds the first string in a decoded JSON request (struct fields by their JSON
// names, map keys and values, slice elements) that is not text the store can take, and names
// it. encoding/json decodes "\u0000" to a NUL byte.
func checkText(v any) error {
	if p := badText(reflect.ValueOf(v), ""); p != "" {
		return domain.NotText(p)
	}
	return nil
}

func badText(v reflect.Value, path string) string {
	join := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return badText(v.Elem(), path)
		}
	case reflect.String:
		if !domain.ValidText(v.String()) {
			return cmp.Or(path, "body")
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" {
				name = f.Name
			}
			p := join(name)
			if f.Anonymous {
				p = path
			}
			if bad := badText(v.Field(i), p); bad != "" {
				return bad
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if it.Key().Kind() == reflect.String && !domain.ValidText(it.Key().String()) {
				return path
			}
			if bad := badText(it.Value(), path); bad != "" {
				return bad
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if bad := badText(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); bad != "" {
				return bad
			}
		}
	}
	return ""
}

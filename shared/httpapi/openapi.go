package httpapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"gopkg.in/yaml.v3"
)

// openAPIYAML is the API's OpenAPI 3.1 document. It is written as YAML, to be read and kept by
// hand, and served as JSON, what tools fetch.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// OpenAPI returns the OpenAPI document as JSON, as GET /v1/openapi.json serves it. It is
// converted once, on first use, so that a function that never serves it pays nothing at start.
var OpenAPI = sync.OnceValue(func() []byte {
	b, err := yamlToJSON(openAPIYAML)
	if err != nil {
		panic(fmt.Sprintf("httpapi: openapi.yaml: %v", err)) // embedded and tested: cannot happen in a build
	}
	return b
})

func yamlToJSON(y []byte) ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(y, &doc); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	b, err := json.Marshal(doc) // fails on a mapping with a non-string key, which JSON cannot hold
	if err != nil {
		return nil, fmt.Errorf("to JSON: %w", err)
	}
	return b, nil
}

// openAPI handles GET /v1/openapi.json. It is public: the document is the same for every caller
// and every deployment (it is in the source) and holds no tenant's data, so a key would protect
// nothing, and code generators and API consoles can fetch it without one.
func (s *server) openAPI(w http.ResponseWriter, r *http.Request) {
	b := OpenAPI()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

package domain

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"strconv"
)

// Request coalescing (opt-in per batch, with a per-tenant default): the lines of one tenant that
// name the same model and endpoint path and carry the same canonical body are sent upstream
// once, and the one result is written to every such line still pending in that tenant's running
// batches. docs/architecture.md ("Coalescing") has the design.

// MetadataCoalesce is the batch metadata key that turns coalescing on ("true") or off ("false")
// for a batch created without the coalesce extension field; any other value is refused.
const MetadataCoalesce = "fusillade_coalesce"

// BodyKey is the coalescing key of a request: SHA-256 over the tenant, the model, the endpoint
// path, the variant (what the batch sends upstream beside the body that can change the answer:
// a message batch's anthropic-version, AnthropicVersionKey; "" for any other batch) and the
// canonical JSON of the body, each length-prefixed so that no two tuples share an encoding. The canonical form is the body decoded (numbers kept as written) and re-encoded:
// object keys sorted, insignificant whitespace gone. A body that is not JSON (the validator
// refuses those before this is called) is hashed as it is.
func BodyKey(tenantID, model, path, variant string, body []byte) []byte {
	h := sha256.New()
	for _, part := range [][]byte{[]byte(tenantID), []byte(model), []byte(path), []byte(variant), CanonicalJSON(body)} {
		h.Write([]byte(strconv.Itoa(len(part))))
		h.Write([]byte{':'})
		h.Write(part)
	}
	return h.Sum(nil)
}

// CanonicalJSON re-encodes a JSON document with sorted object keys and no insignificant
// whitespace; numbers keep their literal text (UseNumber), so 1.0 and 1 stay distinct, as an
// upstream may treat them. A document that does not decode is returned as it is.
func CanonicalJSON(body []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		return body
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return body
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

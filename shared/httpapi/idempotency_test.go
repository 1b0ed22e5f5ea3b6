package httpapi_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/fusillade/fusillade/shared/batches"
	"github.com/fusillade/fusillade/shared/idempotency"
)

// The Idempotency-Key header reaches the service bound to the request as decoded: the same
// request spaced differently has the same hash, a changed request another; the key is scoped to
// the tenant and the route. Reserving, replaying and refusing it is the service's part.
func TestTheIdempotencyKeyIsBoundToTheDecodedRequest(t *testing.T) {
	f := withKeys(newFake(t))
	var keys []idempotency.Key
	f.CreateFn = func(_ context.Context, c batches.Create) (batches.Created, error) {
		keys = append(keys, c.Idempotency)
		return batches.Created{}, nil
	}
	h := newAPI(f)
	changed := validBatch[:len(validBatch)-1] + `,"metadata":{"a":"b"}}`
	for _, body := range []string{validBatch, " " + validBatch + "\n", changed} {
		if w := call(t, h, "POST", "/v1/batches", tenantKey, body, "Idempotency-Key", "k1"); w.Code != 200 {
			t.Fatalf("status %d body %s", w.Code, w.Body)
		}
	}
	if w := call(t, h, "POST", "/v1/batches", tenantKey, validBatch); w.Code != 200 {
		t.Fatalf("without a key: status %d body %s", w.Code, w.Body)
	}
	if len(keys) != 4 {
		t.Fatalf("%d creates, want 4", len(keys))
	}
	k := keys[0]
	if k.Name != "k1" || k.TenantID != tenantID || k.Route != idempotency.RouteCreateBatch || len(k.Hash) == 0 {
		t.Errorf("key %+v; want k1 of the tenant on %s, with a hash", k, idempotency.RouteCreateBatch)
	}
	if !bytes.Equal(keys[1].Hash, k.Hash) || bytes.Equal(keys[2].Hash, k.Hash) {
		t.Errorf("hashes %x, %x, %x: want the respaced request equal and the changed one different", k.Hash, keys[1].Hash, keys[2].Hash)
	}
	if keys[3].Name != "" {
		t.Errorf("a request without the header has key %+v, want none", keys[3])
	}
}

// An overlong key is refused when the service reserves it (package idempotency); the header
// reaches it whole.
func TestAnOverlongIdempotencyKeyReachesTheServiceWhole(t *testing.T) {
	f := withKeys(newFake(t))
	long := string(bytes.Repeat([]byte("k"), 256))
	f.CreateFn = func(_ context.Context, c batches.Create) (batches.Created, error) {
		if c.Idempotency.Name != long {
			t.Errorf("key of %d bytes, want 256", len(c.Idempotency.Name))
		}
		return batches.Created{}, nil
	}
	call(t, newAPI(f), "POST", "/v1/batches", tenantKey, validBatch, "Idempotency-Key", long)
}

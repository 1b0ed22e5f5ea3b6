package httpapi_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/fusillade/fusillade/shared/batches"
	"github.com/fusillade/fusillade/shared/idempotency"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Idempotency-Key header reaches the service bound to the request as decoded: the same
// request spaced differently has the same hash, a changed request another; the key is scoped to
// the tenant and the route. Reserving, replaying and refusing it is the service's part.
func TestTheIdempotencyKeyIsBoundToTheDecodedRequest(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	var keys []idempotency.Key
	f.CreateFn = func(_ context.Context, c batches.Create) (batches.Created, error) {
		keys = append(keys, c.Idempotency)
		return batches.Created{}, nil
	}
	h := newAPI(f)
	changed := validBatch[:len(validBatch)-1] + `,"metadata":{"a":"b"}}`
	for _, body := range []string{validBatch, " " + validBatch + "\n", changed} {
		w := call(t, h, "POST", "/v1/batches", tenantKey, body, "Idempotency-Key", "k1")
		require.Equal(t, 200, w.Code, "body %s", w.Body)
	}
	w := call(t, h, "POST", "/v1/batches", tenantKey, validBatch)
	require.Equal(t, 200, w.Code, "without a key: body %s", w.Body)
	require.Len(t, keys, 4, "creates")
	// k1 of the tenant on the create route, with a hash.
	k := keys[0]
	assert.Equal(t, "k1", k.Name)
	assert.Equal(t, tenantID, k.TenantID)
	assert.Equal(t, idempotency.RouteCreateBatch, k.Route)
	assert.NotEmpty(t, k.Hash)
	assert.True(t, bytes.Equal(keys[1].Hash, k.Hash), "hashes %x, %x: want the respaced request's equal", k.Hash, keys[1].Hash)
	assert.False(t, bytes.Equal(keys[2].Hash, k.Hash), "hashes %x, %x: want the changed request's different", k.Hash, keys[2].Hash)
	assert.Empty(t, keys[3].Name, "a request without the header has a key")
}

// An overlong key is refused when the service reserves it (package idempotency); the header
// reaches it whole.
func TestAnOverlongIdempotencyKeyReachesTheServiceWhole(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	long := string(bytes.Repeat([]byte("k"), 256))
	f.CreateFn = func(_ context.Context, c batches.Create) (batches.Created, error) {
		assert.Equal(t, long, c.Idempotency.Name, "key of %d bytes, want 256", len(c.Idempotency.Name))
		return batches.Created{}, nil
	}
	call(t, newAPI(f), "POST", "/v1/batches", tenantKey, validBatch, "Idempotency-Key", long)
}

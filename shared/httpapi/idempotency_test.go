package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
)

// idempotencyKeys makes f keep Idempotency-Keys as the store does: the first reservation of a
// (tenant, route, key) wins, later ones get its record.
func idempotencyKeys(f *fake) map[string]domain.IdempotencyRecord {
	keys := map[string]domain.IdempotencyRecord{}
	f.ReserveIdempotencyKeyFn = func(_ context.Context, tenant, route, key string, hash []byte, id string, now time.Time) (domain.IdempotencyRecord, bool, error) {
		k := tenant + "\x00" + route + "\x00" + key
		if rec, ok := keys[k]; ok {
			return rec, false, nil
		}
		keys[k] = domain.IdempotencyRecord{RequestHash: bytes.Clone(hash), ObjectID: id, CreatedAt: now}
		return domain.IdempotencyRecord{}, true, nil
	}
	return keys
}

func TestARetriedCreateBatchWithItsIdempotencyKeyReplaysTheFirstBatch(t *testing.T) {
	f := withKeys(newFake(t))
	batches := batchStore(f)
	idempotencyKeys(f)
	queued := 0
	f.SendPopulateFn = func(context.Context, string) error { queued++; return nil }
	h := newAPI(f)
	first := call(t, h, "POST", "/v1/batches", tenantKey, validBatch, "Idempotency-Key", "k1")
	// The same request again, spaced differently: the key binds the request, not its bytes.
	again := call(t, h, "POST", "/v1/batches", tenantKey, " "+validBatch+"\n", "Idempotency-Key", "k1")
	if first.Code != 200 || again.Code != 200 {
		t.Fatalf("statuses %d, %d; want 200 twice; %s", first.Code, again.Code, again.Body)
	}
	a, b := decodeBatch(t, first.Body), decodeBatch(t, again.Body)
	if a.ID != b.ID || len(batches) != 1 || queued != 1 {
		t.Errorf("ids %s, %s; %d batches stored, %d queued: want one batch, replayed", a.ID, b.ID, len(batches), queued)
	}
	other := call(t, h, "POST", "/v1/batches", tenantKey, validBatch, "Idempotency-Key", "k2")
	if other.Code != 200 || decodeBatch(t, other.Body).ID == a.ID {
		t.Errorf("another key gave %d %s; want a new batch", other.Code, other.Body)
	}
}

func TestAnIdempotencyKeyReusedWithAnotherRequestIs422(t *testing.T) {
	f := withKeys(newFake(t))
	batchStore(f)
	idempotencyKeys(f)
	f.SendPopulateFn = func(context.Context, string) error { return nil }
	h := newAPI(f)
	if w := call(t, h, "POST", "/v1/batches", tenantKey, validBatch, "Idempotency-Key", "k1"); w.Code != 200 {
		t.Fatalf("first: status %d", w.Code)
	}
	changed := validBatch[:len(validBatch)-1] + `,"metadata":{"a":"b"}}`
	w := call(t, h, "POST", "/v1/batches", tenantKey, changed, "Idempotency-Key", "k1")
	if w.Code != http.StatusUnprocessableEntity || w.Header().Get("x-should-retry") != "false" {
		t.Fatalf("status %d, x-should-retry %q: want 422, false", w.Code, w.Header().Get("x-should-retry"))
	}
	if e := errorOf(t, w); string(e.Error.Code) != `"idempotency_key_reused"` || string(e.Error.Param) != `"Idempotency-Key"` {
		t.Errorf("envelope %+v, want code idempotency_key_reused, param Idempotency-Key", e.Error)
	}
}

// A replayed key whose batch cannot be read is still being created (409, retried) within a
// minute of its first use, and gone (404) after.
func TestAReplayedKeyWithoutItsBatchIsInFlightThenGone(t *testing.T) {
	cases := []struct {
		age    time.Duration
		status int
	}{
		{10 * time.Second, http.StatusConflict},
		{2 * time.Minute, http.StatusNotFound},
	}
	for _, c := range cases {
		t.Run(c.age.String(), func(t *testing.T) {
			f := withKeys(newFake(t))
			batchStore(f)
			f.ReserveIdempotencyKeyFn = func(_ context.Context, _, _, _ string, hash []byte, _ string, _ time.Time) (domain.IdempotencyRecord, bool, error) {
				return domain.IdempotencyRecord{RequestHash: hash, ObjectID: domain.NewBatchID(), CreatedAt: testNow.Add(-c.age)}, false, nil
			}
			w := call(t, newAPI(f), "POST", "/v1/batches", tenantKey, validBatch, "Idempotency-Key", "k1")
			if w.Code != c.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, c.status, w.Body)
			}
			errorOf(t, w)
			if c.status == http.StatusConflict && w.Header().Get("Retry-After") != "1" {
				t.Errorf("Retry-After = %q, want 1", w.Header().Get("Retry-After"))
			}
		})
	}
}

func TestAnOverlongIdempotencyKeyIsRejected(t *testing.T) {
	f := withKeys(newFake(t))
	batchStore(f)
	long := string(bytes.Repeat([]byte("k"), 256))
	w := call(t, newAPI(f), "POST", "/v1/batches", tenantKey, validBatch, "Idempotency-Key", long)
	if w.Code != 400 {
		t.Fatalf("status %d, want 400", w.Code)
	}
	if e := errorOf(t, w); string(e.Error.Param) != `"Idempotency-Key"` {
		t.Errorf("param = %s, want Idempotency-Key", e.Error.Param)
	}
}

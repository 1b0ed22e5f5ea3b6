package idempotency_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/idempotency"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// store is a fake key store: taken holds the record of a key already used (nil = free).
type store struct {
	t        *testing.T
	taken    *domain.IdempotencyRecord
	err      error
	reserved []string // objectIDs
	released []string // objectIDs
}

func (s *store) ReserveIdempotencyKey(_ context.Context, tenantID, route, key string, _ []byte, objectID string, at time.Time) (domain.IdempotencyRecord, bool, error) {
	assert.True(s.t, tenantID == "tenant_1" && route == idempotency.RouteCreateBatch && key == "k1" && at.Equal(now),
		"ReserveIdempotencyKey(%s, %s, %s, %v)", tenantID, route, key, at)
	s.reserved = append(s.reserved, objectID)
	if s.err != nil {
		return domain.IdempotencyRecord{}, false, s.err
	}
	if s.taken != nil {
		return *s.taken, false, nil
	}
	return domain.IdempotencyRecord{}, true, nil
}

func (s *store) ReleaseIdempotencyKey(ctx context.Context, _, _, _, objectID string) error {
	assert.NoError(s.t, ctx.Err(), "ReleaseIdempotencyKey ran with a cancelled context")
	s.released = append(s.released, objectID)
	return nil
}

func key(name, hash string) idempotency.Key {
	return idempotency.Key{TenantID: "tenant_1", Route: idempotency.RouteCreateBatch, Name: name, Hash: []byte(hash)}
}

func TestReserve(t *testing.T) {
	t.Parallel()
	down := errors.New("db down")
	cases := []struct {
		name     string
		key      idempotency.Key
		taken    *domain.IdempotencyRecord
		storeErr error
		replay   string      // the Reservation's Replay
		code     domain.Code // "" = no error
		reason   string
		reserved bool // the store was asked
	}{
		{"no key", idempotency.Key{}, nil, nil, "", "", "", false},
		{"a fresh key", key("k1", "h"), nil, nil, "", "", "", true},
		{"the same request again", key("k1", "h"), &domain.IdempotencyRecord{RequestHash: []byte("h"), ObjectID: "first"}, nil,
			"first", "", "", true},
		{"another request", key("k1", "h2"), &domain.IdempotencyRecord{RequestHash: []byte("h"), ObjectID: "first"}, nil,
			"", domain.EConflict, idempotency.ReasonMismatch, true},
		{"an overlong key", key(strings.Repeat("k", idempotency.MaxKeyLen+1), "h"), nil, nil, "", domain.EInvalid, "", false},
		{"a key with a NUL", key("k\x00", "h"), nil, nil, "", domain.EInvalid, "", false},
		{"the store fails", key("k1", "h"), nil, down, "", domain.EInternal, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			st := &store{t: t, taken: c.taken, err: c.storeErr}
			res, err := idempotency.Reserve(context.Background(), st, nil, c.key, "new", now)
			if c.code == "" {
				require.NoError(t, err)
			} else {
				require.Equal(t, c.code, domain.ErrorCode(err), "error %v", err)
			}
			if c.reason != "" {
				var de *domain.Error
				if assert.ErrorAs(t, err, &de) {
					assert.Equal(t, c.reason, de.Reason, "error %v", err)
					assert.Equal(t, "Idempotency-Key", de.Param, "error %v", err)
				}
			}
			assert.Equal(t, c.replay, res.Replay)
			assert.Equal(t, c.reserved, len(st.reserved) > 0, "store asked %v", st.reserved)
		})
	}
}

// Only a key this request reserved is released, and even after the client went away.
func TestReleaseFreesOnlyAKeyThisRequestReserved(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fresh := &store{t: t}
	res, err := idempotency.Reserve(context.Background(), fresh, nil, key("k1", "h"), "new", now)
	require.NoError(t, err)
	res.Release(ctx)
	assert.Equal(t, []string{"new"}, fresh.released)
	replayed := &store{t: t, taken: &domain.IdempotencyRecord{RequestHash: []byte("h"), ObjectID: "first"}}
	res, err = idempotency.Reserve(context.Background(), replayed, nil, key("k1", "h"), "new", now)
	require.NoError(t, err)
	res.Release(ctx)
	idempotency.Reservation{}.Release(ctx) // no key: nothing to free
	assert.Empty(t, replayed.released, "a replay released")
}

func TestAReplayedObjectThatCannotBeReadIsInFlightThenGone(t *testing.T) {
	t.Parallel()
	gone := &domain.Error{Code: domain.ENotFound, Message: "No such Batch object."}
	for _, c := range []struct {
		age  time.Duration
		code domain.Code
	}{{10 * time.Second, domain.EConflict}, {idempotency.InFlightWindow, domain.ENotFound}} {
		st := &store{t: t, taken: &domain.IdempotencyRecord{RequestHash: []byte("h"), ObjectID: "first", CreatedAt: now.Add(-c.age)}}
		res, err := idempotency.Reserve(context.Background(), st, nil, key("k1", "h"), "new", now)
		require.NoError(t, err)
		got := res.ReplayError(gone, now)
		assert.Equal(t, c.code, domain.ErrorCode(got), "after %v: %v", c.age, got)
	}
}

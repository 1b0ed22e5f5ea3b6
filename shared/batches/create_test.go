package batches_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fusillade/fusillade/shared/batches"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/idempotency"
	"github.com/fusillade/fusillade/shared/ingest"
	"github.com/fusillade/fusillade/shared/jsonl"
)

const tenantID = "tenant_0123456789abcdef"

// testNow is the service's clock in these tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var aFileID = domain.NewFileID()

func newService(f *fake) *batches.Service {
	return batches.New(batches.Deps{Store: f, Checker: f, Populate: f, Engine: f, Now: func() time.Time { return testNow }})
}

// validCreate is a create request for aFileID that the HTTP API has checked.
func validCreate() batches.Create {
	return batches.Create{TenantID: tenantID, InputFileID: aFileID, Endpoint: "/v1/chat/completions", CompletionWindow: "24h"}
}

// withKey is c with the Idempotency-Key name, bound to hash.
func withKey(c batches.Create, name, hash string) batches.Create {
	c.Idempotency = idempotency.Key{TenantID: c.TenantID, Route: idempotency.RouteCreateBatch, Name: name, Hash: []byte(hash)}
	return c
}

// batchStore makes f keep inserted batches, and serve aFileID as a processed 3-line batch file.
func batchStore(f *fake) map[string]domain.Batch {
	stored := map[string]domain.Batch{}
	f.GetFileFn = func(_ context.Context, tenant, id string) (domain.File, error) {
		if tenant != tenantID || id != aFileID {
			return domain.File{}, &domain.Error{Code: domain.ENotFound, Message: "No such File object: " + id}
		}
		return domain.File{ID: aFileID, TenantID: tenantID, Purpose: domain.PurposeBatch, Status: "processed", Lines: 3, ObjectKey: "in"}, nil
	}
	f.InsertBatchFn = func(_ context.Context, b domain.Batch) error {
		stored[b.ID] = b
		return nil
	}
	f.GetBatchFn = func(_ context.Context, tenant, id string) (domain.Batch, error) {
		b, ok := stored[id]
		if !ok || b.TenantID != tenant {
			return domain.Batch{}, &domain.Error{Code: domain.ENotFound, Message: "No such Batch object: " + id}
		}
		return b, nil
	}
	return stored
}

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

func TestCreateNeedsAProcessedBatchFile(t *testing.T) {
	cases := []struct {
		name   string
		file   domain.File
		reason string // the error's Reason, the envelope's code
	}{
		{"an output file", domain.File{ID: aFileID, Purpose: domain.PurposeBatchOutput, Status: "processed"}, ""},
		{"a file still uploading", domain.File{ID: aFileID, Purpose: domain.PurposeBatch, Status: "uploaded"}, "file_not_ready"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t)
			f.GetFileFn = func(context.Context, string, string) (domain.File, error) { return c.file, nil }
			_, err := newService(f).Create(context.Background(), validCreate())
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.EInvalid {
				t.Fatalf("error %v, want an EInvalid domain error (400)", err)
			}
			if de.Reason != c.reason {
				t.Errorf("reason = %q, want %q (message %q)", de.Reason, c.reason, de.Message)
			}
		})
	}
}

func TestCreateRecordsTheBatchValidatingAndQueuesItsPopulate(t *testing.T) {
	f := newFake(t)
	stored := batchStore(f)
	var queued []string
	f.SendPopulateFn = func(_ context.Context, id string) error {
		if _, ok := stored[id]; !ok {
			t.Errorf("populate queued for %s before it was stored", id)
		}
		queued = append(queued, id)
		return nil
	}
	c := validCreate()
	c.Metadata = map[string]string{"k": "v"}
	got, err := newService(f).Create(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	b := got.Batch
	if len(queued) != 1 || queued[0] != b.ID || !domain.IsBatchID(b.ID) || got.Report != nil {
		t.Fatalf("queued %v, answered %q (report %v): want exactly the answered batch queued", queued, b.ID, got.Report)
	}
	if b.Status != domain.BatchValidating || b.InputFileID != aFileID || b.Counts.Total != 3 || b.Metadata["k"] != "v" ||
		!b.CreatedAt.Equal(testNow) || !b.ExpiresAt.Equal(testNow.Add(24*time.Hour)) {
		t.Errorf("answered %+v; want validating, total 3, the metadata, expiring 24h after creation", b)
	}
	if s := stored[b.ID]; s.TenantID != tenantID || s.OutputFileID == "" || s.ErrorFileID == "" || s.Endpoint != c.Endpoint {
		t.Errorf("stored %+v; want the tenant's batch with its output and error file ids reserved", s)
	}
}

// Populate may start the batch before Create answers: the answer is the batch as it was read
// back after the insert, before the message was sent.
func TestCreateAnswersTheBatchAsCreatedEvenIfPopulateStartedIt(t *testing.T) {
	f := newFake(t)
	stored := batchStore(f)
	f.SendPopulateFn = func(_ context.Context, id string) error {
		b := stored[id]
		b.Status = domain.BatchInProgress
		stored[id] = b
		return nil
	}
	got, err := newService(f).Create(context.Background(), validCreate())
	if err != nil || got.Batch.Status != domain.BatchValidating {
		t.Fatalf("Create = %+v, %v; want the batch validating", got.Batch, err)
	}
}

func TestCreateValidateOnlyChecksTheFileAndCreatesNothing(t *testing.T) {
	f := newFake(t)
	batchStore(f)
	f.InsertBatchFn = nil // inserting fails the test
	rep := ingest.Report{Errors: []jsonl.LineError{{Line: 2, Code: "invalid_model"}}}
	f.CheckFn = func(_ context.Context, key, endpoint string, anyModel bool, maxErrors int) (ingest.Report, error) {
		if key != "in" || endpoint != "/v1/chat/completions" || anyModel || maxErrors != batches.MaxReportedErrors {
			t.Errorf("Check(%q, %q, %v, %d)", key, endpoint, anyModel, maxErrors)
		}
		return rep, nil
	}
	c := withKey(validCreate(), "k1", "h") // a dry run reserves no key: ReserveIdempotencyKey is unset
	c.ValidateOnly = true
	got, err := newService(f).Create(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if got.Report == nil || len(got.Report.Errors) != 1 || got.File.ID != aFileID || got.Batch.ID != "" {
		t.Errorf("Create = %+v; want the report on the file and no batch", got)
	}
}

func TestCreateFailsTheBatchWhenItsPopulateCannotBeQueued(t *testing.T) {
	f := newFake(t)
	stored := batchStore(f)
	type failCall struct {
		id   string
		errs []domain.BatchError
	}
	var failed []failCall
	f.FailBatchFn = func(ctx context.Context, id string, now time.Time, errs []domain.BatchError) error {
		if ctx.Err() != nil {
			t.Error("FailBatch ran with a cancelled context")
		}
		failed = append(failed, failCall{id, errs})
		return nil
	}
	// The client gave up as the enqueue failed: the batch must still be failed.
	ctx, cancel := context.WithCancel(context.Background())
	f.SendPopulateFn = func(context.Context, string) error {
		cancel()
		return errors.New("sqs: AccessDenied for arn:aws:sqs:secret")
	}
	_, err := newService(f).Create(ctx, validCreate())
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.EUnavailable {
		t.Fatalf("error %v, want EUnavailable (503, retried)", err)
	}
	if strings.Contains(de.Message, "sqs") {
		t.Errorf("the queue's error leaks: %q", de.Message)
	}
	if len(stored) != 1 || len(failed) != 1 {
		t.Fatalf("%d batches stored, FailBatch called %d times: want one of each", len(stored), len(failed))
	}
	for id := range stored {
		if failed[0].id != id {
			t.Errorf("FailBatch(%s), want the stored batch %s", failed[0].id, id)
		}
	}
	if len(failed[0].errs) != 1 || failed[0].errs[0].Code != domain.CodeEnqueueFailed {
		t.Errorf("FailBatch errors %+v, want one enqueue_failed", failed[0].errs)
	}
}

func TestCreateReleasesItsIdempotencyKeyWhenTheInsertFails(t *testing.T) {
	f := newFake(t)
	batchStore(f)
	var reservedFor, released string
	f.ReserveIdempotencyKeyFn = func(_ context.Context, _, _, _ string, _ []byte, id string, _ time.Time) (domain.IdempotencyRecord, bool, error) {
		reservedFor = id
		return domain.IdempotencyRecord{}, true, nil
	}
	f.ReleaseIdempotencyKeyFn = func(ctx context.Context, _, _, _, id string) error {
		if ctx.Err() != nil {
			t.Error("ReleaseIdempotencyKey ran with a cancelled context")
		}
		released = id
		return nil
	}
	f.InsertBatchFn = func(context.Context, domain.Batch) error { return errors.New("insert failed") }
	_, err := newService(f).Create(context.Background(), withKey(validCreate(), "k1", "h"))
	if err == nil || domain.ErrorCode(err) != domain.EInternal {
		t.Fatalf("error %v, want the internal insert error (500)", err)
	}
	if reservedFor == "" || released != reservedFor {
		t.Errorf("reserved for %q, released %q: want the key released for the batch it was reserved for", reservedFor, released)
	}
}

func TestARetriedCreateWithItsIdempotencyKeyReplaysTheFirstBatch(t *testing.T) {
	f := newFake(t)
	stored := batchStore(f)
	idempotencyKeys(f)
	queued := 0
	f.SendPopulateFn = func(context.Context, string) error { queued++; return nil }
	svc := newService(f)
	first, err := svc.Create(context.Background(), withKey(validCreate(), "k1", "h"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := svc.Create(context.Background(), withKey(validCreate(), "k1", "h"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Batch.ID != again.Batch.ID || len(stored) != 1 || queued != 1 {
		t.Errorf("ids %s, %s; %d batches stored, %d queued: want one batch, replayed", first.Batch.ID, again.Batch.ID, len(stored), queued)
	}
	other, err := svc.Create(context.Background(), withKey(validCreate(), "k2", "h"))
	if err != nil || other.Batch.ID == first.Batch.ID {
		t.Errorf("another key gave %+v, %v; want a new batch", other.Batch, err)
	}
}

func TestAnIdempotencyKeyReusedWithAnotherRequestIsRefused(t *testing.T) {
	f := newFake(t)
	batchStore(f)
	idempotencyKeys(f)
	f.SendPopulateFn = func(context.Context, string) error { return nil }
	svc := newService(f)
	if _, err := svc.Create(context.Background(), withKey(validCreate(), "k1", "h")); err != nil {
		t.Fatalf("first: %v", err)
	}
	_, err := svc.Create(context.Background(), withKey(validCreate(), "k1", "another request"))
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.EConflict || de.Reason != idempotency.ReasonMismatch || de.Param != "Idempotency-Key" {
		t.Errorf("error %v, want a conflict with reason %s on Idempotency-Key (422)", err, idempotency.ReasonMismatch)
	}
}

// A replayed key whose batch cannot be read is still being created (a 409 the SDKs retry)
// within a minute of its first use, and gone (404) after.
func TestAReplayedKeyWithoutItsBatchIsInFlightThenGone(t *testing.T) {
	cases := []struct {
		age    time.Duration
		code   domain.Code
		reason string
	}{
		{10 * time.Second, domain.EConflict, idempotency.ReasonInFlight},
		{2 * time.Minute, domain.ENotFound, ""},
	}
	for _, c := range cases {
		t.Run(c.age.String(), func(t *testing.T) {
			f := newFake(t)
			batchStore(f)
			f.ReserveIdempotencyKeyFn = func(_ context.Context, _, _, _ string, hash []byte, _ string, _ time.Time) (domain.IdempotencyRecord, bool, error) {
				return domain.IdempotencyRecord{RequestHash: hash, ObjectID: domain.NewBatchID(), CreatedAt: testNow.Add(-c.age)}, false, nil
			}
			_, err := newService(f).Create(context.Background(), withKey(validCreate(), "k1", "h"))
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != c.code || de.Reason != c.reason {
				t.Fatalf("error %v, want code %s reason %q", err, c.code, c.reason)
			}
		})
	}
}

func TestAnOverlongIdempotencyKeyIsRejected(t *testing.T) {
	for name, key := range map[string]string{"256 characters": strings.Repeat("k", 256), "a NUL": "k\x00"} {
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			batchStore(f) // ReserveIdempotencyKey unset: the key is refused before the store sees it
			_, err := newService(f).Create(context.Background(), withKey(validCreate(), key, "h"))
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.EInvalid || de.Param != "Idempotency-Key" {
				t.Errorf("error %v, want EInvalid on Idempotency-Key (400)", err)
			}
		})
	}
}

// When the populate message cannot be sent and failing the batch fails too, the batch is left
// validating (until its window expires): that error must reach the caller, which logs the whole
// chain, while the client still sees only the safe 503.
func TestCreateReportsThatAnUnqueuedBatchCouldNotBeFailed(t *testing.T) {
	f := newFake(t)
	batchStore(f)
	f.SendPopulateFn = func(context.Context, string) error { return errors.New("sqs: throttled") }
	failErr := errors.New("fail batch: connection reset")
	f.FailBatchFn = func(context.Context, string, time.Time, []domain.BatchError) error { return failErr }
	_, err := newService(f).Create(context.Background(), validCreate())
	if domain.ErrorCode(err) != domain.EUnavailable {
		t.Fatalf("error %v, want EUnavailable (503, retried)", err)
	}
	if !errors.Is(err, failErr) {
		t.Errorf("error %v does not carry FailBatch's error %v", err, failErr)
	}
}

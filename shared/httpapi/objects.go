package httpapi

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
)

// fileObject is OpenAI's File object. Every key is always emitted; status is always present
// because the npm SDK's waitForProcessing polls until it sees one.
type fileObject struct {
	ID            string  `json:"id"`
	Object        string  `json:"object"`
	Bytes         int64   `json:"bytes"`
	CreatedAt     int64   `json:"created_at"`
	ExpiresAt     *int64  `json:"expires_at"`
	Filename      string  `json:"filename"`
	Purpose       string  `json:"purpose"`
	Status        string  `json:"status"`
	StatusDetails *string `json:"status_details"`
	// CreatedByKey extends OpenAI's object: the id of the API key that created the file (a batch's
	// output and error files: the batch's creator) as a string; null when unknown.
	CreatedByKey *string `json:"created_by_key"`
}

func toFileObject(f domain.File) fileObject {
	o := fileObject{ID: f.ID, Object: "file", Bytes: f.Bytes, CreatedAt: f.CreatedAt.Unix(), ExpiresAt: unixPtr(f.ExpiresAt),
		Filename: f.Filename, Purpose: f.Purpose, Status: f.Status, CreatedByKey: keyIDString(f.CreatedByKey)}
	if f.StatusDetails != "" {
		d := f.StatusDetails
		o.StatusDetails = &d
	}
	return o
}

type requestCounts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
}

type batchErrors struct {
	Object string              `json:"object"`
	Data   []domain.BatchError `json:"data"`
}

// batchObject is OpenAI's Batch object with every key present (explicit nulls), as OpenAI's own
// examples emit it. output_file_id and error_file_id are null until the batch is sealed, as
// OpenAI's are (clients wait for output_file_id, then download); the partial_* extensions name
// the same files from creation on, for reading results while the batch runs.
type batchObject struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Endpoint         string            `json:"endpoint"`
	Model            *string           `json:"model"`
	Errors           *batchErrors      `json:"errors"`
	InputFileID      string            `json:"input_file_id"`
	CompletionWindow string            `json:"completion_window"`
	Status           string            `json:"status"`
	OutputFileID     *string           `json:"output_file_id"`
	ErrorFileID      *string           `json:"error_file_id"`
	CreatedAt        int64             `json:"created_at"`
	InProgressAt     *int64            `json:"in_progress_at"`
	ExpiresAt        *int64            `json:"expires_at"`
	FinalizingAt     *int64            `json:"finalizing_at"`
	CompletedAt      *int64            `json:"completed_at"`
	FailedAt         *int64            `json:"failed_at"`
	ExpiredAt        *int64            `json:"expired_at"`
	CancellingAt     *int64            `json:"cancelling_at"`
	CancelledAt      *int64            `json:"cancelled_at"`
	RequestCounts    requestCounts     `json:"request_counts"`
	Usage            json.RawMessage   `json:"usage"`
	Metadata         map[string]string `json:"metadata"`

	PartialOutputFileID *string `json:"partial_output_file_id"`
	PartialErrorFileID  *string `json:"partial_error_file_id"`
	// CreatedByKey: the id of the API key that created the batch, as a string; null when unknown.
	CreatedByKey *string `json:"created_by_key"`
	// RerunOf and RerunBatchID link a rerun (POST /v1/batches/{id}/rerun) and the batch it runs
	// the unfinished lines of again; null when there is none.
	RerunOf      *string `json:"rerun_of"`
	RerunBatchID *string `json:"rerun_batch_id"`
	// FailFastAfter is the batch's fail-fast K; 0 = off.
	FailFastAfter int `json:"fail_fast_after"`
	// Coalesce says whether the batch coalesces its lines; CoalescedCount counts the lines that
	// took another line's upstream result and CachedCount those served from the result cache
	// (each is also in request_counts.completed or failed). request_counts stays OpenAI's.
	Coalesce       bool `json:"coalesce"`
	CoalescedCount int  `json:"coalesced_count"`
	CachedCount    int  `json:"cached_count"`
	// The progress extensions of a running batch as GET /batches and GET /batches/{id} show it
	// (null otherwise, and in the answers of the writes): lines finished per minute over the
	// last domain.ProgressWindow, when the pending lines finish at that pace (null without a
	// pace), and whether that is after the deadline or the batch has stalled.
	ThroughputPerMinute   *float64 `json:"throughput_per_minute"`
	EstimatedCompletionAt *int64   `json:"estimated_completion_at"`
	DeadlineAtRisk        *bool    `json:"deadline_at_risk"`
}

func toBatchObject(b domain.Batch) batchObject {
	o := batchObject{
		ID: b.ID, Object: "batch", Endpoint: b.Endpoint, Model: strPtr(b.Model), InputFileID: b.InputFileID,
		CompletionWindow: b.CompletionWindow, Status: string(b.Status), CreatedAt: b.CreatedAt.Unix(), InProgressAt: unixPtr(b.InProgressAt),
		ExpiresAt: unixPtr(&b.ExpiresAt), FinalizingAt: unixPtr(b.FinalizingAt), CompletedAt: unixPtr(b.CompletedAt),
		FailedAt: unixPtr(b.FailedAt), ExpiredAt: unixPtr(b.ExpiredAt), CancellingAt: unixPtr(b.CancellingAt),
		CancelledAt: unixPtr(b.CancelledAt), Metadata: b.Metadata,
		RequestCounts:       requestCounts{Total: b.Counts.Total, Completed: b.Counts.Completed, Failed: b.Counts.Failed},
		Usage:               b.Usage,
		PartialOutputFileID: strPtr(b.OutputFileID), PartialErrorFileID: strPtr(b.ErrorFileID),
		CreatedByKey: keyIDString(b.CreatedByKey), RerunOf: strPtr(b.RerunOf), RerunBatchID: strPtr(b.RerunBatchID),
		FailFastAfter: b.FailFastAfter, Coalesce: b.Coalesce != nil && *b.Coalesce, CoalescedCount: b.Coalesced, CachedCount: b.Cached,
	}
	if b.Sealed() {
		o.OutputFileID, o.ErrorFileID = strPtr(b.OutputFileID), strPtr(b.ErrorFileID)
	}
	if len(o.Usage) == 0 {
		o.Usage = json.RawMessage("null")
	}
	if len(b.Errors) > 0 {
		o.Errors = &batchErrors{Object: "list", Data: b.Errors}
	}
	return o
}

func unixPtr(t *time.Time) *int64 {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.Unix()
	return &u
}

// keyIDString renders an API key id as the objects' created_by_key: nil (null) for 0, unknown.
func keyIDString(id int64) *string {
	if id == 0 {
		return nil
	}
	s := strconv.FormatInt(id, 10)
	return &s
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

package domain

import (
	"fmt"

	"github.com/google/uuid"
)

// The bucket's object-key layout, in one place: the API, ingestion and the engine build keys
// only with these functions, and template.yaml's S3 grants and lifecycle rule are checked against
// them (deploy/samtemplate), so a changed layout fails that test instead of AccessDenied on AWS.
//
//	tenants/<tenant>/files/<file>.jsonl            a directly uploaded input file
//	tenants/<tenant>/files/<file>.<uuid>.jsonl     the validated content of a pending file
//	tenants/<tenant>/uploads/<upload>/<part>       an Uploads API part, until complete or cancel
//	tenants/<tenant>/batches/<batch>/output.jsonl  a batch's output file (errors.jsonl: its error file)
//	tenants/<tenant>/batches/<batch>/message_results.jsonl  a message batch's results, when too large to answer inline
//	staging/<tenant>/<file>.jsonl                  where a client PUTs a presigned upload

// InputFileKey is where a directly uploaded input file lives in the bucket.
func InputFileKey(tenantID, fileID string) string {
	return fmt.Sprintf("tenants/%s/files/%s.jsonl", tenantID, fileID)
}

// ContentKey is a fresh key for the content of a pending file, one per attempt to complete it.
// Only the server writes it, with the bytes it validates, and no URL is ever presigned for it, so
// what batches and downloads read is what was validated; a fresh key per attempt also keeps two
// concurrent completes from overwriting each other's content.
func ContentKey(tenantID, fileID string) string {
	return fmt.Sprintf("tenants/%s/files/%s.%s.jsonl", tenantID, fileID, uuid.NewString())
}

// StagingKey is where a client PUTs a presigned upload. Complete reads it once and copies the
// bytes it validates to a ContentKey; nothing else ever reads it, so a PUT after complete
// changes nothing. It has its own top-level prefix so that a bucket lifecycle rule can expire
// what such a late PUT leaves behind.
func StagingKey(tenantID, fileID string) string {
	return fmt.Sprintf("staging/%s/%s.jsonl", tenantID, fileID)
}

// UploadPartsPrefix is where an upload's parts live (the prefix plus the part id) until it
// completes or is cancelled.
func UploadPartsPrefix(tenantID, uploadID string) string {
	return fmt.Sprintf("tenants/%s/uploads/%s/", tenantID, uploadID)
}

// BatchFileKey is where a batch's output file (output true) or error file lives in the bucket.
func BatchFileKey(tenantID, batchID string, output bool) string {
	kind := "errors"
	if output {
		kind = "output"
	}
	return fmt.Sprintf("tenants/%s/batches/%s/%s.jsonl", tenantID, batchID, kind)
}

// MessageResultsKey is where the API writes a message batch's results when they are too large to
// answer inline, to redirect to; the purge deletes it with the batch's other files.
func MessageResultsKey(tenantID, batchID string) string {
	return fmt.Sprintf("tenants/%s/batches/%s/message_results.jsonl", tenantID, batchID)
}

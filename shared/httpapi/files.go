package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fusillade/fusillade/shared/batches"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/idempotency"
	"github.com/fusillade/fusillade/shared/ingest"
	"github.com/fusillade/fusillade/shared/jsonl"
)

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// createFile handles POST /v1/files. A multipart body is OpenAI's direct upload; a JSON body
// {filename, purpose, bytes} starts the large-file path: the answer carries a presigned
// upload_url to PUT the content to, and POST /v1/files/{id}/complete validates it.
func (s *server) createFile(w http.ResponseWriter, r *http.Request) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/json" {
		s.createPresignedFile(w, r)
		return
	}
	s.createDirectFile(w, r)
}

// errTooLargeForDirect names the paths that take big files.
func (s *server) errTooLargeForDirect(what string) error {
	return &domain.Error{Code: domain.ETooLarge, Reason: "upload_too_large", Message: fmt.Sprintf(
		"%s is larger than %d bytes, the most a request can carry (the AWS Lambda payload limit). "+
			"For larger files, POST /v1/files with a JSON body {\"filename\",\"purpose\",\"bytes\"} to get a presigned upload_url, "+
			"PUT the content to it, then POST /v1/files/{id}/complete; or use the Uploads API (/v1/uploads) with parts of at most %d bytes.",
		what, s.cfg.MaxDirectUploadBytes, s.cfg.MaxDirectUploadBytes)}
}

// createDirectFile handles the multipart upload as both official SDKs send it: openai-go
// buffers the body and sorts parts by name (expires_after[…], then file, then purpose),
// openai-node streams it chunked with no Content-Length. The file part is streamed through
// validation into S3 as it arrives, so purpose, which may come after it, is checked afterwards
// and the file deleted if it is wrong. The whole body is capped at MaxDirectUploadBytes.
func (s *server) createDirectFile(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Message: "Expected a multipart/form-data body with 'file' and 'purpose' fields, " +
			"or a JSON body {\"filename\",\"purpose\",\"bytes\"} for a presigned upload."})
		return
	}
	if r.ContentLength > s.cfg.MaxDirectUploadBytes {
		s.error(w, r, s.errTooLargeForDirect("The request"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxDirectUploadBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Message: "Invalid multipart request: " + err.Error()})
		return
	}
	var (
		purpose, anchor, seconds string
		usedAnchor, usedSeconds  string // the expires_after that the stored file got
		file                     *domain.File
		fileSum                  hash.Hash
		filename                 string
	)
	fail := func(err error) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			err = s.errTooLargeForDirect("The request")
		}
		if file != nil {
			s.discard(r, *file, "The upload was rejected.")
		}
		s.error(w, r, err)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if !errors.As(err, &mbe) {
				err = &domain.Error{Code: domain.EInvalid, Message: "Invalid multipart request: " + err.Error()}
			}
			fail(err)
			return
		}
		switch part.FormName() {
		case "file":
			if file != nil {
				fail(&domain.Error{Code: domain.EInvalid, Message: "Only one 'file' field is allowed.", Param: "file"})
				return
			}
			exp, err := s.fileExpiry(anchor, seconds)
			if err != nil {
				fail(err)
				return
			}
			usedAnchor, usedSeconds = anchor, seconds
			filename = part.FileName()
			if filename == "" {
				filename = "anonymous_file"
			}
			if !domain.ValidText(filename) {
				fail(domain.NotText("filename"))
				return
			}
			fileSum = sha256.New()
			f, err := s.ingester.Store(r.Context(), ingest.Upload{TenantID: p.TenantID, Filename: filename, Purpose: domain.PurposeBatch,
				ExpiresAt: &exp, Body: io.TeeReader(part, fileSum), CreatedByKey: p.KeyID})
			if err != nil {
				fail(err)
				return
			}
			file = &f
		case "purpose":
			purpose, err = formValue(part)
		case "expires_after[anchor]":
			anchor, err = formValue(part)
		case "expires_after[seconds]":
			seconds, err = formValue(part)
		default:
			// Unknown form fields are ignored, as OpenAI does.
			_, err = io.Copy(io.Discard, part)
		}
		if err != nil {
			fail(err)
			return
		}
	}
	if file == nil {
		fail(&domain.Error{Code: domain.EInvalid, Message: "Missing required parameter: 'file'.", Param: "file"})
		return
	}
	if err := checkPurpose(purpose); err != nil {
		fail(err)
		return
	}
	if anchor != usedAnchor || seconds != usedSeconds {
		// expires_after came after the file part (openai-node sends fields in the order written).
		exp, err := s.fileExpiry(anchor, seconds)
		if err == nil {
			err = s.store.SetFileExpiry(r.Context(), file.TenantID, file.ID, exp)
		}
		if err != nil {
			fail(err)
			return
		}
		file.ExpiresAt = &exp
	}
	// The idempotency hash covers every field that shapes the file, and the content itself.
	key := fmt.Sprintf("purpose=%s\nanchor=%s\nseconds=%s\nfilename=%s\nsha256=%s", purpose, anchor, seconds, filename,
		hex.EncodeToString(fileSum.Sum(nil)))
	got, err := s.idempotentFile(r, idempotency.RouteCreateFile, []byte(key), *file)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toFileObject(got))
}

// discard hides a file that must not be kept and deletes its content.
func (s *server) discard(r *http.Request, f domain.File, reason string) {
	ctx := r.Context()
	if err := s.store.DiscardFile(ctx, f.TenantID, f.ID, reason, s.now()); err != nil {
		s.log.WarnContext(ctx, "discard file", "file_id", f.ID, "err", err)
	}
	if f.ObjectKey != "" {
		if err := s.blobs.Delete(ctx, f.ObjectKey); err != nil {
			s.log.WarnContext(ctx, "delete discarded file content", "file_id", f.ID, "err", err)
		}
	}
}

func checkPurpose(purpose string) error {
	if purpose == "" {
		return &domain.Error{Code: domain.EInvalid, Message: "Missing required parameter: 'purpose'.", Param: "purpose"}
	}
	if purpose != domain.PurposeBatch {
		// The content is validated as batch input; no other purpose is supported.
		return &domain.Error{Code: domain.EInvalid, Param: "purpose",
			Message: fmt.Sprintf("Invalid purpose %q: only 'batch' is supported.", purpose)}
	}
	return nil
}

// fileExpiry applies expires_after (both parts as sent, possibly empty) to now.
func (s *server) fileExpiry(anchor, seconds string) (time.Time, error) {
	ttl := s.cfg.FileTTL
	if seconds != "" || anchor != "" {
		if anchor != "created_at" {
			return time.Time{}, &domain.Error{Code: domain.EInvalid, Message: "expires_after[anchor] must be 'created_at'.", Param: "expires_after[anchor]"}
		}
		n, err := strconv.ParseInt(seconds, 10, 64)
		if err != nil {
			return time.Time{}, &domain.Error{Code: domain.EInvalid, Message: "expires_after[seconds] must be an integer.", Param: "expires_after[seconds]"}
		}
		if n < 3600 || n > 2592000 {
			return time.Time{}, &domain.Error{Code: domain.EInvalid, Message: "expires_after[seconds] must be between 3600 and 2592000.", Param: "expires_after[seconds]"}
		}
		ttl = time.Duration(n) * time.Second
	}
	return s.now().Add(ttl), nil
}

func formValue(part *multipart.Part) (string, error) {
	b, err := io.ReadAll(io.LimitReader(part, 4096))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", err
		}
		return "", &domain.Error{Code: domain.EInvalid, Message: "Invalid multipart request: " + err.Error()}
	}
	return strings.TrimSpace(string(b)), nil
}

type expiresAfter struct {
	Anchor  string `json:"anchor"`
	Seconds int64  `json:"seconds"`
}

func (e *expiresAfter) parts() (string, string) {
	if e == nil {
		return "", ""
	}
	return e.Anchor, strconv.FormatInt(e.Seconds, 10)
}

type presignedFileRequest struct {
	Filename     string        `json:"filename"`
	Purpose      string        `json:"purpose"`
	Bytes        int64         `json:"bytes"`
	ExpiresAfter *expiresAfter `json:"expires_after"`
}

// pendingFileObject is a File in status "uploaded" plus where and how to upload its content.
type pendingFileObject struct {
	fileObject
	UploadURL       string            `json:"upload_url"`
	UploadMethod    string            `json:"upload_method"`
	UploadHeaders   map[string]string `json:"upload_headers"`
	UploadExpiresAt int64             `json:"upload_expires_at"`
}

// createPresignedFile records a pending input file and returns a presigned S3 PUT URL for its
// content, so that files up to MaxFileBytes (200 MB) never pass through API Gateway or Lambda.
// The file stays "uploaded" until POST /v1/files/{id}/complete validates the content. The URL
// is for a staging key: complete copies what it validates to the file's own key, which is never
// presigned, so a PUT after complete cannot change the file.
func (s *server) createPresignedFile(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	var req presignedFileRequest
	if err := decodeJSON(r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	exp, err := s.checkNewFile(req.Purpose, req.Bytes, req.ExpiresAfter)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if req.Filename == "" {
		req.Filename = "anonymous_file"
	}
	id := domain.NewFileID()
	f := domain.File{ID: id, TenantID: p.TenantID, Filename: req.Filename, Purpose: domain.PurposeBatch, Bytes: req.Bytes,
		Status: domain.FileUploaded, ObjectKey: domain.StagingKey(p.TenantID, id), CreatedAt: s.now(), ExpiresAt: &exp,
		CreatedByKey: p.KeyID}
	res, err := s.reserve(r, idempotency.RouteCreateFile, canonicalJSON(req), id)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if res.Replay != "" {
		orig, err := s.store.GetFile(r.Context(), p.TenantID, res.Replay)
		switch {
		case err != nil:
			s.error(w, r, res.ReplayError(err, s.now()))
		case orig.Status == domain.FileUploaded:
			s.writePending(w, r, orig) // a fresh URL for the same pending file
		default:
			writeJSON(w, http.StatusOK, toFileObject(orig))
		}
		return
	}
	if err := s.store.InsertFile(r.Context(), f); err != nil {
		res.Release(r.Context())
		s.error(w, r, err)
		return
	}
	s.writePending(w, r, f)
}

func (s *server) writePending(w http.ResponseWriter, r *http.Request, f domain.File) {
	url, err := s.blobs.PresignPut(r.Context(), f.ObjectKey, f.Bytes, s.cfg.PresignTTL)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pendingFileObject{fileObject: toFileObject(f), UploadURL: url, UploadMethod: http.MethodPut,
		UploadHeaders:   map[string]string{"Content-Length": strconv.FormatInt(f.Bytes, 10)},
		UploadExpiresAt: s.now().Add(s.cfg.PresignTTL).Unix()})
}

// checkNewFile applies the rules shared by both ways of announcing a file before its content
// arrives (a presigned upload and the Uploads API): purpose, declared size, and expiry.
func (s *server) checkNewFile(purpose string, size int64, ea *expiresAfter) (time.Time, error) {
	if err := checkPurpose(purpose); err != nil {
		return time.Time{}, err
	}
	if err := s.checkDeclaredSize(size); err != nil {
		return time.Time{}, err
	}
	anchor, seconds := ea.parts()
	return s.fileExpiry(anchor, seconds)
}

func (s *server) checkDeclaredSize(n int64) error {
	max := s.ingester.Limits().MaxFileBytes
	if n <= 0 {
		return &domain.Error{Code: domain.EInvalid, Param: "bytes", Message: "bytes must be the size of the file, a positive integer."}
	}
	if n > max {
		return &domain.Error{Code: domain.ETooLarge, Param: "bytes", Reason: "file_too_large",
			Message: fmt.Sprintf("File is too large: the limit is %d bytes.", max)}
	}
	return nil
}

// completeFile validates the content uploaded to a pending file's presigned URL. A bad line
// answers 400 naming it, and the file and its content are gone; a valid file becomes processed.
// Completing a processed file again returns it unchanged.
func (s *server) completeFile(w http.ResponseWriter, r *http.Request) {
	f, err := s.store.GetFile(r.Context(), principal(r).TenantID, r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	if f.Status != domain.FileUploaded {
		writeJSON(w, http.StatusOK, toFileObject(f))
		return
	}
	got, err := s.ingester.Complete(r.Context(), f)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toFileObject(got))
}

func (s *server) getFile(w http.ResponseWriter, r *http.Request) {
	f, err := s.store.ViewFile(r.Context(), principal(r).TenantID, r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toFileObject(f))
}

type listObject[T any] struct {
	Object  string  `json:"object"`
	Data    []T     `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

func newList[T any](data []T, more bool, id func(T) string) listObject[T] {
	l := listObject[T]{Object: "list", Data: data, HasMore: more}
	if l.Data == nil {
		l.Data = []T{}
	}
	if len(data) > 0 {
		first, last := id(data[0]), id(data[len(data)-1])
		l.FirstID, l.LastID = &first, &last
	}
	return l
}

// listFiles is GET /v1/files: after (a file id), limit (1..10,000, default 10,000), order (asc
// or desc by creation, default desc) and purpose, as OpenAI defines them, plus created_by_key
// (API key ids, repeated or comma-separated: files created by any of them).
func (s *server) listFiles(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	p := domain.FileListParams{After: q.str("after"), Limit: q.int("limit", 10000, 1, 10000),
		Asc: q.oneOf("order", "desc", "asc", "desc") == "asc", Purpose: q.str("purpose"), CreatedByKeys: q.keyIDs("created_by_key")}
	if q.err != nil {
		s.error(w, r, q.err)
		return
	}
	files, more, err := s.store.ListFiles(r.Context(), principal(r).TenantID, p)
	if err != nil {
		s.error(w, r, err)
		return
	}
	out := make([]fileObject, len(files))
	for i, f := range files {
		out[i] = toFileObject(f)
	}
	writeJSON(w, http.StatusOK, newList(out, more, func(f fileObject) string { return f.ID }))
}

// inputFile fetches a tenant's input file that is ready to be read. It reads the newest state
// (GetFile): a replica's older copy of an upload completed a moment ago would answer "not ready".
func (s *server) inputFile(r *http.Request) (domain.File, error) {
	f, err := s.store.GetFile(r.Context(), principal(r).TenantID, r.PathValue("id"))
	if err != nil {
		return f, err
	}
	if f.Purpose != domain.PurposeBatch {
		return f, &domain.Error{Code: domain.EInvalid, Param: "file_id",
			Message: fmt.Sprintf("File %s has purpose %q; only batch input files can be checked.", f.ID, f.Purpose)}
	}
	if f.Status != domain.FileProcessed {
		return f, domain.FileNotReady(f.ID)
	}
	return f, nil
}

type modelStats struct {
	Model                string `json:"model"`
	Requests             int    `json:"requests"`
	BodyBytes            int64  `json:"body_bytes"`
	EstimatedInputTokens int64  `json:"estimated_input_tokens"`
}

// estimateTokens is the usual rough rule of four bytes of JSON per input token.
func estimateTokens(bytes int64) int64 { return (bytes + 3) / 4 }

func perModel(sum jsonl.Summary) []modelStats {
	out := make([]modelStats, 0, len(sum.Models))
	for m, ms := range sum.Models {
		out = append(out, modelStats{Model: m, Requests: ms.Requests, BodyBytes: ms.BodyBytes, EstimatedInputTokens: estimateTokens(ms.BodyBytes)})
	}
	slices.SortFunc(out, func(a, b modelStats) int { return strings.Compare(a.Model, b.Model) })
	return out
}

type costEstimate struct {
	Object               string       `json:"object"`
	FileID               string       `json:"file_id"`
	TotalRequests        int          `json:"total_requests"`
	TotalBodyBytes       int64        `json:"total_body_bytes"`
	EstimatedInputTokens int64        `json:"estimated_input_tokens"`
	Models               []modelStats `json:"models"`
}

// costEstimate is GET /v1/files/{id}/cost-estimate: per model, the number of requests, their
// body bytes and an input-token estimate (bytes / 4), read from the stored file.
func (s *server) costEstimate(w http.ResponseWriter, r *http.Request) {
	f, err := s.inputFile(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	rep, err := s.ingester.Check(r.Context(), f.ObjectKey, "", true, 1)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, costEstimate{Object: "file.cost_estimate", FileID: f.ID, TotalRequests: rep.Summary.Lines,
		TotalBodyBytes: rep.Summary.BodyBytes, EstimatedInputTokens: estimateTokens(rep.Summary.BodyBytes), Models: perModel(rep.Summary)})
}

type lineProblem struct {
	Line     *int    `json:"line"`
	CustomID *string `json:"custom_id"`
	Code     string  `json:"code"`
	Param    *string `json:"param"`
	Message  string  `json:"message"`
}

// toLineProblems renders the bad lines of a rejected upload as a dry run lists them.
func toLineProblems(ps []domain.LineProblem) []lineProblem {
	out := make([]lineProblem, len(ps))
	for i, p := range ps {
		out[i] = lineProblem{Code: p.Reason, Param: strPtr(p.Param), CustomID: strPtr(p.CustomID), Message: p.Message}
		if p.Line > 0 {
			n := p.Line
			out[i].Line = &n
		}
	}
	return out
}

type validationReport struct {
	Object          string        `json:"object"`
	FileID          string        `json:"file_id"`
	Endpoint        *string       `json:"endpoint"`
	Valid           bool          `json:"valid"`
	TotalRequests   int           `json:"total_requests"`
	Errors          []lineProblem `json:"errors"`
	ErrorsTruncated bool          `json:"errors_truncated"`
	Models          []modelStats  `json:"models"`
}

func toReport(f domain.File, endpoint string, rep ingest.Report) validationReport {
	out := validationReport{Object: "file.validation", FileID: f.ID, Endpoint: strPtr(endpoint), Valid: len(rep.Errors) == 0,
		TotalRequests: rep.Summary.Lines, Errors: []lineProblem{}, ErrorsTruncated: rep.Truncated, Models: perModel(rep.Summary)}
	for _, le := range rep.Errors {
		lp := lineProblem{Code: le.Code, Param: strPtr(le.Param), CustomID: strPtr(le.CustomID), Message: le.Message}
		if le.Line > 0 {
			n := le.Line
			lp.Line = &n
		}
		out.Errors = append(out.Errors, lp)
	}
	return out
}

type validateFileRequest struct {
	Endpoint string `json:"endpoint"`
}

// validateFile is POST /v1/files/{id}/validate, a dry run: it checks a stored input file against
// an optional batch endpoint and the models configured now, and reports every bad line at once
// with per-model totals. Nothing changes. Useful before creating a batch, since a file accepted
// at upload can still mismatch the endpoint or name a model that was removed since.
func (s *server) validateFile(w http.ResponseWriter, r *http.Request) {
	var req validateFileRequest
	if err := decodeOptionalJSON(r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	if req.Endpoint != "" && !domain.ValidEndpoint(req.Endpoint) {
		s.error(w, r, errBadEndpoint(req.Endpoint))
		return
	}
	f, err := s.inputFile(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	rep, err := s.ingester.Check(r.Context(), f.ObjectKey, req.Endpoint, false, batches.MaxReportedErrors)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toReport(f, req.Endpoint, rep))
}

func errBadEndpoint(e string) error {
	return &domain.Error{Code: domain.EInvalid, Param: "endpoint",
		Message: fmt.Sprintf("Invalid endpoint %q: must be one of %s.", e, strings.Join(domain.Endpoints, ", "))}
}

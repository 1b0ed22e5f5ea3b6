package httpapi

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"

	"github.com/fusillade/fusillade/shared/domain"
)

// OpenAI's Uploads API (POST /v1/uploads, …/parts, …/complete, …/cancel) builds one file from
// parts sent through the API. Differences from OpenAI, both forced by AWS:
//
//   - A part is at most MaxDirectUploadBytes (4.5 MB by default), not 64 MB: it is a request
//     body, and API Gateway hands the function at most 6 MB. For 200 MB files the presigned path
//     of POST /v1/files (one PUT straight to S3) is the better fit.
//   - Each part is kept as its own S3 object and complete streams them, in the order given,
//     through validation into the file. S3's own multipart upload would reject parts under
//     5 MiB (all but the last), which OpenAI allows.
//
// An upload is its file in status "uploaded": upload_X and file-X share their random part, so
// no other table is needed. It accepts parts for UploadTTL (1 hour) after its creation.

const uploadPrefix = domain.UploadPrefix

// uploadFileID maps an upload id to the id of the file it builds; ok is false for a malformed id.
func uploadFileID(id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, uploadPrefix)
	if !ok || rest == "" {
		return "", false
	}
	return domain.FilePrefix + rest, true
}

func uploadID(fileID string) string {
	return uploadPrefix + strings.TrimPrefix(fileID, domain.FilePrefix)
}

var partIDPattern = regexp.MustCompile(`^part_[0-9A-Za-z]{24}$`)

type uploadObject struct {
	ID        string      `json:"id"`
	Object    string      `json:"object"`
	Bytes     int64       `json:"bytes"`
	CreatedAt int64       `json:"created_at"`
	ExpiresAt int64       `json:"expires_at"`
	Filename  string      `json:"filename"`
	Purpose   string      `json:"purpose"`
	Status    string      `json:"status"`
	File      *fileObject `json:"file"`
}

func (s *server) toUploadObject(f domain.File, status string) uploadObject {
	o := uploadObject{ID: uploadID(f.ID), Object: "upload", Bytes: f.Bytes, CreatedAt: f.CreatedAt.Unix(),
		ExpiresAt: f.CreatedAt.Add(s.cfg.UploadTTL).Unix(), Filename: f.Filename, Purpose: f.Purpose, Status: status}
	if status == domain.UploadCompleted {
		fo := toFileObject(f)
		o.File = &fo
	}
	return o
}

type createUploadRequest struct {
	Bytes        int64         `json:"bytes"`
	Filename     string        `json:"filename"`
	MimeType     string        `json:"mime_type"`
	Purpose      string        `json:"purpose"`
	ExpiresAfter *expiresAfter `json:"expires_after"`
}

// createUpload is POST /v1/uploads.
func (s *server) createUpload(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	var req createUploadRequest
	if err := decodeJSON(r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	if req.Filename == "" {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: "filename", Message: "Missing required parameter: 'filename'."})
		return
	}
	if req.MimeType == "" {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: "mime_type", Message: "Missing required parameter: 'mime_type'."})
		return
	}
	exp, err := s.checkNewFile(req.Purpose, req.Bytes, req.ExpiresAfter)
	if err != nil {
		s.error(w, r, err)
		return
	}
	id := domain.NewFileID()
	f := domain.File{ID: id, TenantID: p.TenantID, Filename: req.Filename, Purpose: domain.PurposeBatch, Bytes: req.Bytes,
		Status: domain.FileUploaded, ObjectKey: domain.InputFileKey(p.TenantID, id), CreatedAt: s.now(), ExpiresAt: &exp,
		CreatedByKey: p.KeyID}
	if err := s.store.InsertFile(r.Context(), f); err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.toUploadObject(f, domain.UploadPending))
}

// pendingUpload fetches the tenant's upload named in the path and checks it still accepts
// parts. Malformed, unknown and other tenants' ids are all "no such upload".
func (s *server) pendingUpload(r *http.Request) (domain.File, error) {
	id := r.PathValue("id")
	notFound := &domain.Error{Code: domain.ENotFound, Param: "upload_id", Message: fmt.Sprintf("No such Upload object: %s", id)}
	fileID, ok := uploadFileID(id)
	if !ok {
		return domain.File{}, notFound
	}
	f, err := s.store.GetFile(r.Context(), principal(r).TenantID, fileID)
	if domain.ErrorCode(err) == domain.ENotFound {
		return f, notFound
	}
	if err != nil {
		return f, err
	}
	if f.Status != domain.FileUploaded {
		return f, &domain.Error{Code: domain.EConflict, Param: "upload_id", Message: fmt.Sprintf("Upload %s is already completed.", id)}
	}
	if !s.now().Before(f.CreatedAt.Add(s.cfg.UploadTTL)) {
		return f, &domain.Error{Code: domain.EConflict, Param: "upload_id", Message: fmt.Sprintf("Upload %s has expired.", id)}
	}
	return f, nil
}

type uploadPartObject struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	CreatedAt int64  `json:"created_at"`
	UploadID  string `json:"upload_id"`
}

// addUploadPart is POST /v1/uploads/{id}/parts, multipart with one "data" field.
func (s *server) addUploadPart(w http.ResponseWriter, r *http.Request) {
	f, err := s.pendingUpload(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "multipart/form-data" {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Message: "Expected a multipart/form-data body with a 'data' field."})
		return
	}
	if r.ContentLength > s.cfg.MaxDirectUploadBytes {
		s.error(w, r, s.errTooLargeForDirect("The part"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxDirectUploadBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Message: "Invalid multipart request: " + err.Error()})
		return
	}
	var data []byte
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil && part.FormName() == "data" && data == nil {
			data, err = io.ReadAll(part)
			if err == nil && data == nil {
				data = []byte{}
			}
		} else if err == nil {
			_, err = io.Copy(io.Discard, part)
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				err = s.errTooLargeForDirect("The part")
			} else {
				err = &domain.Error{Code: domain.EInvalid, Message: "Invalid multipart request: " + err.Error()}
			}
			s.error(w, r, err)
			return
		}
	}
	if len(data) == 0 {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: "data", Message: "Missing required parameter: 'data' (a non-empty part)."})
		return
	}
	id := "part_" + strings.TrimPrefix(domain.NewFileID(), domain.FilePrefix)
	uid := uploadID(f.ID)
	if err := s.blobs.PutSmall(r.Context(), domain.UploadPartsPrefix(f.TenantID, uid)+id, data, "application/octet-stream"); err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, uploadPartObject{ID: id, Object: "upload.part", CreatedAt: s.now().Unix(), UploadID: uid})
}

type completeUploadRequest struct {
	PartIDs []string `json:"part_ids"`
	MD5     string   `json:"md5"`
}

// completeUpload is POST /v1/uploads/{id}/complete: the parts, in the order given, must add up
// to the announced bytes; their concatenation is validated into the file (a bad line answers
// 400 naming it, and the upload is gone). The optional md5 is checked too.
func (s *server) completeUpload(w http.ResponseWriter, r *http.Request) {
	var req completeUploadRequest
	if err := decodeJSON(r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	f, err := s.pendingUpload(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if len(req.PartIDs) == 0 {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: "part_ids", Message: "part_ids must list at least one part."})
		return
	}
	prefix := domain.UploadPartsPrefix(f.TenantID, uploadID(f.ID))
	keys := make([]string, len(req.PartIDs))
	var total int64
	for i, id := range req.PartIDs {
		n := int64(-1)
		if partIDPattern.MatchString(id) {
			n, err = s.blobs.Size(r.Context(), prefix+id)
		}
		if n < 0 || err != nil {
			s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: "part_ids", Message: fmt.Sprintf("No such part %q in this upload.", id)})
			return
		}
		keys[i], total = prefix+id, total+n
	}
	if total != f.Bytes {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: "part_ids", Reason: "size_mismatch",
			Message: fmt.Sprintf("The parts add up to %d bytes but the upload was created with bytes=%d.", total, f.Bytes)})
		return
	}
	sum := md5.New()
	body := &partsReader{ctx: r.Context(), blobs: s.blobs, keys: keys, sum: sum}
	defer func() { _ = body.Close() }() // closes the part being read; nothing to report
	got, err := s.ingester.Fill(r.Context(), f, body)
	if err != nil {
		s.cleanParts(r, prefix)
		s.error(w, r, err)
		return
	}
	if req.MD5 != "" && !strings.EqualFold(req.MD5, hex.EncodeToString(sum.Sum(nil))) {
		s.discard(r, got, "The md5 of the upload did not match.")
		s.cleanParts(r, prefix)
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: "md5", Message: "The md5 checksum does not match the uploaded parts."})
		return
	}
	s.cleanParts(r, prefix)
	writeJSON(w, http.StatusOK, s.toUploadObject(got, domain.UploadCompleted))
}

// cancelUpload is POST /v1/uploads/{id}/cancel: no part may be added afterwards.
func (s *server) cancelUpload(w http.ResponseWriter, r *http.Request) {
	f, err := s.pendingUpload(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	s.cleanParts(r, domain.UploadPartsPrefix(f.TenantID, uploadID(f.ID)))
	if err := s.store.DiscardFile(r.Context(), f.TenantID, f.ID, "The upload was cancelled.", s.now()); err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.toUploadObject(f, domain.UploadCancelled))
}

func (s *server) cleanParts(r *http.Request, prefix string) {
	ctx := context.WithoutCancel(r.Context())
	if err := s.blobs.DeletePrefix(ctx, prefix); err != nil {
		s.log.WarnContext(ctx, "delete upload parts", "prefix", prefix, "err", err)
	}
}

// partsReader reads the parts one after the other, opening each only when the previous one is
// exhausted, and feeds every byte to sum.
type partsReader struct {
	ctx   context.Context
	blobs Blobs
	keys  []string
	sum   hash.Hash
	cur   io.ReadCloser
}

func (p *partsReader) Read(b []byte) (int, error) {
	for {
		if p.cur == nil {
			if len(p.keys) == 0 {
				return 0, io.EOF
			}
			rc, _, err := p.blobs.Get(p.ctx, p.keys[0])
			if err != nil {
				return 0, err
			}
			p.cur, p.keys = rc, p.keys[1:]
		}
		n, err := p.cur.Read(b)
		p.sum.Write(b[:n])
		if errors.Is(err, io.EOF) {
			p.cur.Close()
			p.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (p *partsReader) Close() error {
	if p.cur != nil {
		return p.cur.Close()
	}
	return nil
}

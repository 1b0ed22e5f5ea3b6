package httpapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/ingest"
)

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// createFile handles POST /v1/files as both official SDKs send it: openai-go buffers the body and
// sorts parts by name (expires_after[…], then file, then purpose), openai-node streams it chunked
// with no Content-Length. The file part is streamed through validation into S3 as it arrives, so
// purpose, which may come after it, is checked afterwards and the file deleted if it is wrong.
func (s *server) createFile(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Message: "Expected a multipart/form-data body with 'file' and 'purpose' fields."})
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Message: "Invalid multipart request: " + err.Error()})
		return
	}
	var (
		purpose, anchor string
		seconds         int64
		file            *domain.File
	)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.error(w, r, &domain.Error{Code: domain.EInvalid, Message: "Invalid multipart request: " + err.Error()})
			return
		}
		switch part.FormName() {
		case "file":
			if file != nil {
				s.error(w, r, &domain.Error{Code: domain.EInvalid, Message: "Only one 'file' field is allowed.", Param: "file"})
				return
			}
			f, err := s.storeUpload(r, p, part, anchor, seconds)
			if err != nil {
				s.error(w, r, err)
				return
			}
			file = &f
		case "purpose":
			purpose, err = formValue(part)
		case "expires_after[anchor]":
			anchor, err = formValue(part)
		case "expires_after[seconds]":
			var v string
			if v, err = formValue(part); err == nil {
				if seconds, err = strconv.ParseInt(v, 10, 64); err != nil {
					err = &domain.Error{Code: domain.EInvalid, Message: "expires_after[seconds] must be an integer.", Param: "expires_after[seconds]"}
				}
			}
		default:
			// Unknown form fields are ignored, as OpenAI does.
			_, _ = io.Copy(io.Discard, part)
		}
		if err != nil {
			s.error(w, r, err)
			return
		}
	}
	if file == nil {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Message: "Missing required parameter: 'file'.", Param: "file"})
		return
	}
	if purpose != domain.PurposeBatch {
		// The content was validated as batch input; any other purpose is not supported.
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: "purpose",
			Message: fmt.Sprintf("Invalid purpose %q: only 'batch' is supported.", purpose)})
		return
	}
	writeJSON(w, http.StatusOK, toFileObject(*file))
}

func (s *server) storeUpload(r *http.Request, p domain.Principal, part *multipart.Part, anchor string, seconds int64) (domain.File, error) {
	ttl := s.cfg.FileTTL
	if seconds != 0 || anchor != "" {
		if anchor != "created_at" {
			return domain.File{}, &domain.Error{Code: domain.EInvalid, Message: "expires_after[anchor] must be 'created_at'.", Param: "expires_after[anchor]"}
		}
		if seconds < 3600 || seconds > 2592000 {
			return domain.File{}, &domain.Error{Code: domain.EInvalid, Message: "expires_after[seconds] must be between 3600 and 2592000.", Param: "expires_after[seconds]"}
		}
		ttl = time.Duration(seconds) * time.Second
	}
	exp := s.now().Add(ttl)
	name := part.FileName()
	if name == "" {
		name = "anonymous_file"
	}
	return s.ingester.Store(r.Context(), ingest.Upload{TenantID: p.TenantID, Filename: name, Purpose: domain.PurposeBatch, ExpiresAt: &exp, Body: part})
}

func formValue(part *multipart.Part) (string, error) {
	b, err := io.ReadAll(io.LimitReader(part, 4096))
	if err != nil {
		return "", &domain.Error{Code: domain.EInvalid, Message: "Invalid multipart request: " + err.Error()}
	}
	return strings.TrimSpace(string(b)), nil
}

func (s *server) getFile(w http.ResponseWriter, r *http.Request) {
	f, err := s.store.GetFile(r.Context(), principal(r).TenantID, r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toFileObject(f))
}

// fileContent streams a file's bytes.
func (s *server) fileContent(w http.ResponseWriter, r *http.Request) {
	f, err := s.store.GetFile(r.Context(), principal(r).TenantID, r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	body, size, err := s.blobs.Get(r.Context(), f.ObjectKey)
	if err != nil {
		s.error(w, r, err)
		return
	}
	defer body.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", f.Filename))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, body); err != nil {
		s.log.DebugContext(r.Context(), "file download interrupted", "file_id", f.ID, "err", err)
	}
}

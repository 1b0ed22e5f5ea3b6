package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// client is a thin typed client of the fusillade (OpenAI-compatible) API: only what the commands
// use, over net/http, so that the CLI shows the API's own error messages unchanged.
type client struct {
	base string // e.g. http://127.0.0.1:8080/v1, without a trailing slash
	key  string
	http *http.Client
}

// apiError is an OpenAI-shaped error answer; Errors lists the bad lines of a rejected file.
type apiError struct {
	Status  int
	Message string        `json:"message"`
	Code    string        `json:"code"`
	Param   string        `json:"param"`
	Line    int           `json:"line"`
	Errors  []lineProblem `json:"errors"`
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("API error %d", e.Status)
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// lineProblem is one bad line, as the API's file.validation object and rejected uploads list them.
type lineProblem struct {
	Line     int    `json:"line"`
	CustomID string `json:"custom_id,omitempty"`
	Code     string `json:"code"`
	Param    string `json:"param,omitempty"`
	Message  string `json:"message"`
}

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

	// Presigned path only.
	UploadURL     string            `json:"upload_url,omitempty"`
	UploadMethod  string            `json:"upload_method,omitempty"`
	UploadHeaders map[string]string `json:"upload_headers,omitempty"`
}

type requestCounts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
}

type batchError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Line    *int   `json:"line"`
}

type batchObject struct {
	ID               string            `json:"id"`
	Endpoint         string            `json:"endpoint"`
	InputFileID      string            `json:"input_file_id"`
	CompletionWindow string            `json:"completion_window"`
	Status           string            `json:"status"`
	OutputFileID     *string           `json:"output_file_id"`
	ErrorFileID      *string           `json:"error_file_id"`
	CreatedAt        int64             `json:"created_at"`
	RequestCounts    requestCounts     `json:"request_counts"`
	Metadata         map[string]string `json:"metadata"`
	Errors           *struct {
		Data []batchError `json:"data"`
	} `json:"errors"`
}

// terminal reports whether the batch has ended (nothing more will change without a retry).
func (b *batchObject) terminal() bool {
	switch b.Status {
	case "completed", "failed", "expired", "cancelled":
		return true
	}
	return false
}

type list[T any] struct {
	Data    []T  `json:"data"`
	HasMore bool `json:"has_more"`
}

type uploadObject struct {
	ID     string      `json:"id"`
	Status string      `json:"status"`
	File   *fileObject `json:"file"`
}

func (c *client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if w, ok := out.(io.Writer); ok {
		_, err = io.Copy(w, resp.Body)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// send adds the key and turns a non-2xx answer into an *apiError.
func (c *client) send(req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var body struct {
		Error apiError `json:"error"`
	}
	e := &apiError{Status: resp.StatusCode}
	if json.Unmarshal(raw, &body) == nil && body.Error.Message != "" {
		*e = body.Error
		e.Status = resp.StatusCode
	} else {
		e.Message = strings.TrimSpace(string(raw))
	}
	return nil, e
}

func (c *client) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	return c.do(ctx, method, path, body, ct, out)
}

// uploadDirect is OpenAI's multipart POST /v1/files, for files under the direct limit.
func (c *client) uploadDirect(ctx context.Context, name string, content []byte) (fileObject, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("purpose", "batch")
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		return fileObject{}, err
	}
	_, _ = fw.Write(content)
	_ = mw.Close()
	var f fileObject
	err = c.do(ctx, http.MethodPost, "/files", &buf, mw.FormDataContentType(), &f)
	return f, err
}

// uploadPresigned is fusillade's large-file path: POST /v1/files with a JSON body, one PUT of the
// whole file to the presigned URL, then POST /v1/files/{id}/complete, which validates it.
func (c *client) uploadPresigned(ctx context.Context, name, path string, size int64) (fileObject, error) {
	var f fileObject
	if err := c.doJSON(ctx, http.MethodPost, "/files", map[string]any{"filename": name, "purpose": "batch", "bytes": size}, &f); err != nil {
		return f, err
	}
	if f.UploadURL == "" {
		return f, errNoPresign
	}
	file, err := os.Open(path)
	if err != nil {
		return f, err
	}
	defer file.Close()
	method := f.UploadMethod
	if method == "" {
		method = http.MethodPut
	}
	req, err := http.NewRequestWithContext(ctx, method, f.UploadURL, file)
	if err != nil {
		return f, err
	}
	req.ContentLength = size
	for k, v := range f.UploadHeaders {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req) // no API key: the URL carries its own authorisation
	if err != nil {
		return f, fmt.Errorf("upload to the presigned URL: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return f, fmt.Errorf("upload to the presigned URL: HTTP %d", resp.StatusCode)
	}
	var done fileObject
	err = c.do(ctx, http.MethodPost, "/files/"+url.PathEscape(f.ID)+"/complete", nil, "", &done)
	return done, err
}

// errNoPresign: the server answered the JSON POST /v1/files without an upload_url (not fusillade).
var errNoPresign = errors.New("the server offers no presigned upload")

// uploadParts is OpenAI's Uploads API: create, add parts of at most partSize bytes, complete with
// their ids in order.
func (c *client) uploadParts(ctx context.Context, name, path string, size int64, partSize int) (fileObject, error) {
	var up uploadObject
	if err := c.doJSON(ctx, http.MethodPost, "/uploads", map[string]any{"filename": name, "purpose": "batch", "bytes": size,
		"mime_type": "application/jsonl"}, &up); err != nil {
		return fileObject{}, err
	}
	file, err := os.Open(path)
	if err != nil {
		return fileObject{}, err
	}
	defer file.Close()
	buf := make([]byte, partSize)
	var ids []string
	for {
		n, err := io.ReadFull(file, buf)
		if n > 0 {
			var body bytes.Buffer
			mw := multipart.NewWriter(&body)
			fw, _ := mw.CreateFormFile("data", "part")
			_, _ = fw.Write(buf[:n])
			_ = mw.Close()
			var part struct {
				ID string `json:"id"`
			}
			if err := c.do(ctx, http.MethodPost, "/uploads/"+url.PathEscape(up.ID)+"/parts", &body, mw.FormDataContentType(), &part); err != nil {
				return fileObject{}, err
			}
			ids = append(ids, part.ID)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fileObject{}, err
		}
	}
	if err := c.doJSON(ctx, http.MethodPost, "/uploads/"+url.PathEscape(up.ID)+"/complete", map[string]any{"part_ids": ids}, &up); err != nil {
		return fileObject{}, err
	}
	if up.File == nil {
		return fileObject{}, fmt.Errorf("upload %s completed without a file", up.ID)
	}
	return *up.File, nil
}

// download writes a file's content to w; a large finished file comes by a redirect to S3, which
// net/http follows (without the Authorization header, as the presigned URL needs none).
func (c *client) download(ctx context.Context, id string, w io.Writer) error {
	return c.do(ctx, http.MethodGet, "/files/"+url.PathEscape(id)+"/content", nil, "", w)
}

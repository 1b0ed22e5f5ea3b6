package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
)

// client speaks to the API as any HTTP client would: JSON in, JSON out, bearer key.
type client struct {
	base string
	key  string
	http *http.Client
}

func newClient(base, key string) *client {
	return &client{base: base, key: key, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
}

func (c *client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

type fileObject struct {
	ID            string            `json:"id"`
	Status        string            `json:"status"`
	Bytes         int64             `json:"bytes"`
	UploadURL     string            `json:"upload_url"`
	UploadHeaders map[string]string `json:"upload_headers"`
}

// upload stores a batch input file through the large-file path every size can take: create
// the file with its size, PUT the content to the presigned URL, then complete (validate) it.
// It returns the file id and how long the complete step (the validation pass) took.
func (c *client) upload(ctx context.Context, content io.Reader, size int64) (string, time.Duration, error) {
	id, err := c.createAndPut(ctx, content, size)
	if err != nil {
		return "", 0, err
	}
	t0 := time.Now()
	var done fileObject
	if err := c.do(ctx, "POST", "/v1/files/"+id+"/complete", nil, &done); err != nil {
		return "", 0, err
	}
	if done.Status != domain.FileProcessed {
		return "", 0, fmt.Errorf("file %s is %s after complete", id, done.Status)
	}
	return id, time.Since(t0), nil
}

// createAndPut creates a pending file and PUTs its content to the presigned URL, leaving the
// validation (complete) to the caller.
func (c *client) createAndPut(ctx context.Context, content io.Reader, size int64) (string, error) {
	var f fileObject
	if err := c.do(ctx, "POST", "/v1/files", map[string]any{"filename": "bench.jsonl", "purpose": "batch", "bytes": size}, &f); err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, "PUT", f.UploadURL, content)
	if err != nil {
		return "", err
	}
	req.ContentLength = size
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("PUT upload: %s", resp.Status)
	}
	return f.ID, nil
}

type batchObject struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	OutputFileID  string `json:"output_file_id"`
	ErrorFileID   string `json:"error_file_id"`
	RequestCounts struct {
		Total     int `json:"total"`
		Completed int `json:"completed"`
		Failed    int `json:"failed"`
	} `json:"request_counts"`
}

func (c *client) createBatch(ctx context.Context, fileID string) (batchObject, error) {
	var b batchObject
	err := c.do(ctx, "POST", "/v1/batches", map[string]any{"input_file_id": fileID, "endpoint": chatPath, "completion_window": "24h"}, &b)
	return b, err
}

func (c *client) batch(ctx context.Context, id string) (batchObject, error) {
	var b batchObject
	err := c.do(ctx, "GET", "/v1/batches/"+id, nil, &b)
	return b, err
}

// download streams a file's content to w, following the API's redirect to S3 for large files.
func (c *client) download(ctx context.Context, fileID string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v1/files/"+fileID+"/content", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("download %s: %s: %s", fileID, resp.Status, b)
	}
	return io.Copy(w, resp.Body)
}

// postJSON sends body to url as the comparators call the mock upstream (the errgroup baseline and
// River's worker) and returns the status and the whole answer.
func postJSON(ctx context.Context, hc *http.Client, url string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, answer, nil
}

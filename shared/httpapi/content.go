package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/jsonl"
)

// Content of input, output and error files, and the merged results view.
//
// A whole finished file is served from S3: inline when it is at most MaxInlineResponseBytes,
// otherwise by a 302 to a presigned GET URL (both SDKs follow it, and Go drops the
// Authorization header on the cross-host hop). Everything else — a page (offset, limit, search)
// or the output and error files of a batch that is still running — is assembled by the API, one
// bounded page at a time:
//
//   - X-Last-Line is offset + the number of lines in this response: pass it as the next offset.
//   - X-Incomplete is true when more lines may follow: the page stopped at limit or at the
//     response size cap, or the batch is still running and its files can still grow.
//
// Output and error files of a running batch are read from the requests table in the order lines
// finished, so reading on from X-Last-Line never misses a line; once sealed, the plain download
// is the S3 file, in input order (OpenAI does not promise an order: match on custom_id).

// errPageFull stops an iteration when a page is complete.
var errPageFull = errors.New("page full")

// page collects whole JSONL lines up to a line limit and a byte cap.
type page struct {
	buf      bytes.Buffer
	lines    int
	limit    int   // lines wanted
	maxBytes int64 // response size cap; the first line is always taken, whatever its size
	more     bool  // something was left out
}

// add appends one line (without its newline); errPageFull means the page is complete and line
// was not taken.
func (p *page) add(line []byte) error {
	if p.lines >= p.limit || (p.lines > 0 && int64(p.buf.Len()+len(line)+1) > p.maxBytes) {
		p.more = true
		return errPageFull
	}
	p.buf.Write(line)
	p.buf.WriteByte('\n')
	p.lines++
	return nil
}

// write sends the page as JSONL with the continuation headers.
func (p *page) write(w http.ResponseWriter, offset int, running bool) {
	h := w.Header()
	h.Set("Content-Type", "application/jsonl")
	h.Set("Content-Length", strconv.Itoa(p.buf.Len()))
	h.Set("X-Incomplete", strconv.FormatBool(p.more || running))
	h.Set("X-Last-Line", strconv.Itoa(offset+p.lines))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(p.buf.Bytes())
}

type contentQuery struct {
	offset int
	limit  int // math.MaxInt32 when absent
	search string
	paged  bool // any of the three was given
}

func parseContentQuery(q *query) contentQuery {
	c := contentQuery{offset: q.int("offset", 0, 0, math.MaxInt32), limit: q.int("limit", math.MaxInt32, 1, math.MaxInt32),
		search: q.str("search")}
	c.paged = q.v.Has("offset") || q.v.Has("limit") || c.search != ""
	return c
}

func (s *server) newPage(c contentQuery) *page {
	return &page{limit: c.limit, maxBytes: s.cfg.MaxInlineResponseBytes}
}

// fileContent is GET /v1/files/{id}/content with optional offset, limit and search (a
// case-insensitive substring of custom_id).
func (s *server) fileContent(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	q := newQuery(r)
	c := parseContentQuery(q)
	if q.err != nil {
		s.error(w, r, q.err)
		return
	}
	f, err := s.store.ViewFile(r.Context(), p.TenantID, r.PathValue("id"))
	if err == nil && f.Status == domain.FileUploaded {
		// A replica's copy may predate the upload's completion: "not ready" is the newest
		// state's answer, not an older copy's.
		f, err = s.store.GetFile(r.Context(), p.TenantID, f.ID)
	}
	if err != nil {
		s.error(w, r, err)
		return
	}
	if f.Status == domain.FileUploaded {
		s.error(w, r, domain.FileNotReady(f.ID))
		return
	}
	if f.BatchID == "" {
		if !c.paged {
			s.serveObject(w, r, f)
			return
		}
		s.serveInputPage(w, r, f, c)
		return
	}
	// An output or error file: sealed (content in S3) or still growing.
	running := f.ObjectKey == ""
	if !running && !c.paged {
		s.serveObject(w, r, f)
		return
	}
	if running {
		// Sealing happens after the last request ends; a batch that stopped without being sealed
		// (failed at validation) has no more lines to come.
		if b, err := s.store.ViewBatch(r.Context(), p.TenantID, f.BatchID); err == nil {
			running = !b.Status.Terminal()
		}
	}
	pg := s.newPage(c)
	var line []byte
	err = s.store.ResultFile(r.Context(), p.TenantID, f.BatchID, f.Purpose == domain.PurposeBatchOutput,
		domain.ResultQuery{Offset: c.offset, Limit: min(c.limit, math.MaxInt32-1) + 1, Search: c.search},
		func(row domain.ResultRow) error {
			line = domain.AppendResultLine(line[:0], row)
			return pg.add(line[:len(line)-1])
		})
	if err != nil && !errors.Is(err, errPageFull) {
		s.error(w, r, err)
		return
	}
	pg.write(w, c.offset, running)
}

// serveObject sends a whole stored file: inline when small, else a redirect to S3.
func (s *server) serveObject(w http.ResponseWriter, r *http.Request, f domain.File) {
	w.Header().Set("X-Incomplete", "false")
	w.Header().Set("X-Last-Line", strconv.Itoa(f.Lines))
	if f.Bytes > s.cfg.MaxInlineResponseBytes {
		url, err := s.blobs.PresignGet(r.Context(), f.ObjectKey, f.Filename, s.cfg.PresignTTL)
		if err != nil {
			s.error(w, r, err)
			return
		}
		http.Redirect(w, r, url, http.StatusFound)
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

// serveInputPage reads a stored input file line by line and returns the requested page. Blank
// lines are not counted: offsets count requests, as X-Last-Line does.
func (s *server) serveInputPage(w http.ResponseWriter, r *http.Request, f domain.File, c contentQuery) {
	body, _, err := s.blobs.Get(r.Context(), f.ObjectKey)
	if err != nil {
		s.error(w, r, err)
		return
	}
	defer body.Close()
	needle := strings.ToLower(c.search)
	rd := jsonl.NewReader(body, 0)
	pg := s.newPage(c)
	skipped := 0
	for {
		line, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.error(w, r, err) // the file was validated on upload: this is an I/O failure
			return
		}
		if needle != "" {
			var id struct {
				CustomID string `json:"custom_id"`
			}
			_ = json.Unmarshal(line.Bytes, &id)
			if !strings.Contains(strings.ToLower(id.CustomID), needle) {
				continue
			}
		}
		if skipped < c.offset {
			skipped++
			continue
		}
		if pg.add(bytes.TrimSpace(line.Bytes)) != nil {
			break
		}
	}
	pg.write(w, c.offset, false)
}

// resultLine is one line of GET /v1/batches/{id}/results: the request as submitted and, when it
// has finished, its outcome in the output-file shape.
type resultLine struct {
	ID       string          `json:"id"`
	CustomID string          `json:"custom_id"`
	Line     int             `json:"line"`
	Model    string          `json:"model"`
	Status   string          `json:"status"`
	Input    json.RawMessage `json:"input"`
	Response json.RawMessage `json:"response"`
	Error    json.RawMessage `json:"error"`
	// LatencyMS is domain.BatchResult.Latency in whole milliseconds; null without one.
	LatencyMS *int64 `json:"latency_ms"`
}

// resultStatuses maps the status filter of the results view to request states.
var resultStatuses = map[string][]string{
	"pending":     {string(domain.StatePending)},
	"in_progress": {string(domain.StateClaimed), string(domain.StateProcessing)},
	"completed":   {string(domain.StateCompleted)},
	"failed":      {string(domain.StateFailed)},
	"canceled":    {string(domain.StateCanceled)},
	"cancelled":   {string(domain.StateCanceled)},
	"expired":     {string(domain.StateExpired)},
}

// resultStatus is how the results view names a request state.
func resultStatus(st domain.RequestState) string {
	if st == domain.StateClaimed || st == domain.StateProcessing {
		return "in_progress"
	}
	return string(st)
}

// batchResults is GET /v1/batches/{id}/results: every line of the batch in input order with its
// input body and outcome, filtered by status (pending, in_progress, completed, failed,
// canceled, expired; comma-separated) and custom_id search, paged by offset and limit.
func (s *server) batchResults(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	q := newQuery(r)
	c := parseContentQuery(q)
	var states []string
	if v := q.str("status"); v != "" {
		for _, st := range strings.Split(v, ",") {
			m, ok := resultStatuses[strings.TrimSpace(st)]
			if !ok {
				q.fail("status", "Invalid 'status' %q: expected pending, in_progress, completed, failed, canceled or expired.", st)
				break
			}
			states = append(states, m...)
		}
	}
	if q.err != nil {
		s.error(w, r, q.err)
		return
	}
	b, err := s.store.ViewBatch(r.Context(), p.TenantID, r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	pg := s.newPage(c)
	var out []byte
	err = s.store.BatchResults(r.Context(), p.TenantID, b.ID,
		domain.ResultQuery{Offset: c.offset, Limit: min(c.limit, math.MaxInt32-1) + 1, Search: c.search, States: states},
		func(row domain.BatchResult) error {
			rl := resultLine{ID: domain.OutputLineID(row.RequestID), CustomID: row.CustomID, Line: row.Line, Model: row.Model,
				Status: resultStatus(row.State), Input: row.Input, Response: json.RawMessage("null"), Error: json.RawMessage("null")}
			if row.Latency != nil {
				ms := max(0, row.Latency.Milliseconds())
				rl.LatencyMS = &ms
			}
			if row.State.Terminal() {
				// Reuse the output-file rendering for the outcome, so both views agree.
				var o struct {
					Response json.RawMessage `json:"response"`
					Error    json.RawMessage `json:"error"`
				}
				if err := json.Unmarshal(domain.AppendResultLine(nil, row.ResultRow), &o); err == nil {
					rl.Response, rl.Error = o.Response, o.Error
				}
			}
			if !json.Valid(rl.Input) {
				rl.Input, _ = json.Marshal(string(row.Input))
			}
			out, _ = json.Marshal(rl)
			return pg.add(out)
		})
	if err != nil && !errors.Is(err, errPageFull) {
		s.error(w, r, err)
		return
	}
	pg.write(w, c.offset, !b.Status.Terminal())
}

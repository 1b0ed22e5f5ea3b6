package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// cappedReader passes through at most limit bytes. It asks the underlying
// reader for at most limit+1 bytes in total, which is enough to tell "exactly
// at the cap" from "over it", and reports errTooLarge once the cap is
// exceeded.
type cappedReader struct {
	r     io.Reader
	limit int64
	n     int64
}

func newCappedReader(r io.Reader, limit int64) *cappedReader {
	return &cappedReader{r: r, limit: limit}
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.n > c.limit {
		return 0, errTooLarge
	}
	if room := c.limit + 1 - c.n; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.limit {
		return n - int(c.n-c.limit), errTooLarge
	}
	return n, err
}

// sseReader yields the data payloads of server-sent events: consecutive
// "data:" lines joined with "\n", dispatched on a blank line. Comments
// (":..."), and the event, id and retry fields are ignored. Lines may end
// in LF, CRLF or CR.
type sseReader struct {
	sc      *bufio.Scanner
	buf     bytes.Buffer
	hasData bool
	started bool
}

func newSSEReader(r io.Reader, maxLine int64) *sseReader {
	sc := bufio.NewScanner(r)
	// The capped reader already bounds the total; the scanner limit only
	// has to be no smaller so the cap, not the scanner, decides.
	limit := maxLine + 2
	if limit > int64(int(^uint(0)>>1)) || limit <= 0 {
		limit = int64(int(^uint(0) >> 1))
	}
	sc.Buffer(make([]byte, 0, 64<<10), int(limit))
	sc.Split(splitSSELines)
	return &sseReader{sc: sc}
}

// next returns the next event's data, io.EOF at the end of the stream, or
// the read error. An event left unterminated at a clean end of stream is
// still delivered: some servers close right after the last data line.
func (r *sseReader) next() (string, error) {
	for r.sc.Scan() {
		line := r.sc.Bytes()
		if !r.started {
			r.started = true
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if len(line) == 0 {
			if r.hasData {
				return r.take(), nil
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		if string(field) != "data" {
			continue
		}
		if r.hasData {
			r.buf.WriteByte('\n')
		}
		r.buf.Write(value)
		r.hasData = true
	}
	if err := r.sc.Err(); err != nil {
		return "", err
	}
	if r.hasData {
		return r.take(), nil
	}
	return "", io.EOF
}

func (r *sseReader) take() string {
	s := r.buf.String()
	r.buf.Reset()
	r.hasData = false
	return s
}

// splitSSELines is a bufio.SplitFunc for the three SSE line endings.
func splitSSELines(data []byte, atEOF bool) (int, []byte, error) {
	if atEOF && len(data) == 0 {
		return 0, nil, nil
	}
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		if i+1 < len(data) {
			if data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		}
		if atEOF {
			return i + 1, data[:i], nil
		}
		// A trailing CR may be the first half of CRLF: wait for more.
		return 0, nil, nil
	}
	if atEOF {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// readStream consumes a 2xx text/event-stream answer on a streamable path.
// FirstByteTimeout keeps running until the first event, ChunkTimeout then
// bounds each gap between events, and BodyTimeout (already armed by Do)
// bounds the whole read.
func (c *Client) readStream(parent, reqCtx context.Context, cancel context.CancelCauseFunc,
	resp *http.Response, firstByte *time.Timer, res Result) Result {
	capped := newCappedReader(resp.Body, c.maxBytes)
	sr := newSSEReader(capped, c.maxBytes)

	var chunk *time.Timer
	defer func() {
		if chunk != nil {
			chunk.Stop()
		}
	}()
	var events []string
	sawEvent, done := false, false
	for {
		data, err := sr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			phase := "waiting for the first stream event"
			if sawEvent {
				phase = "reading the stream"
			}
			failed := c.errorResult(parent, reqCtx, err, phase)
			failed.StatusCode, failed.Header, failed.UpstreamRequestID = res.StatusCode, res.Header, res.UpstreamRequestID
			return failed
		}
		if !sawEvent {
			sawEvent = true
			firstByte.Stop()
			chunk = time.AfterFunc(c.chunkTimeout, func() { cancel(errChunkTimeout) })
		} else {
			chunk.Reset(c.chunkTimeout)
		}
		data = strings.TrimSpace(data)
		if data == "[DONE]" {
			done = true
			break
		}
		if data == "" {
			continue // an empty event is a keep-alive
		}
		if status, msg, ok := streamError(data); ok {
			res.StatusCode = status
			res.Body = []byte(data)
			res = c.classifyStatus(res, CodeUpstreamStreamError, false)
			if msg != "" {
				res.Message += ": " + msg
			}
			return res
		}
		events = append(events, data)
	}

	if done {
		// Read what little follows [DONE] (normally just the end of the
		// chunked body) so the connection returns to the pool, but never
		// wait long for it.
		chunk.Stop()
		drain := time.AfterFunc(drainTimeout, func() { cancel(errDrainDone) })
		_, _ = io.Copy(io.Discard, io.LimitReader(capped, drainLimit))
		drain.Stop()
	}

	if len(events) == 0 {
		res.Verdict = Retriable
		res.Code = CodeUpstreamStreamError
		res.Message = "stream ended without any data event"
		return res
	}
	body, isJSON := reassemble(events)
	res.Body = body
	if isJSON {
		// The body is no longer an event stream; say so to anyone who
		// forwards these headers.
		res.Header = res.Header.Clone()
		res.Header.Set("Content-Type", "application/json")
		res.Header.Del("Content-Length")
	}
	return c.classifyStatus(res, CodeHTTPStatus, false)
}

// streamError recognises an SSE event that reports a failure: a JSON object
// with a non-null top-level "error". The status is error.code when that is
// an integer in 400-599, else 500. msg is error.message when present.
func streamError(data string) (status int, msg string, ok bool) {
	if data[0] != '{' || !strings.Contains(data, `"error"`) {
		return 0, "", false
	}
	var ev struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal([]byte(data), &ev) != nil || len(ev.Error) == 0 || string(ev.Error) == "null" {
		return 0, "", false
	}
	status = http.StatusInternalServerError
	var detail struct {
		Code    json.RawMessage `json:"code"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(ev.Error, &detail) == nil {
		var code int64
		if json.Unmarshal(detail.Code, &code) == nil && code >= 400 && code <= 599 {
			status = int(code)
		}
		msg = detail.Message
	} else {
		_ = json.Unmarshal(ev.Error, &msg) // "error": "text"
	}
	return status, msg, true
}

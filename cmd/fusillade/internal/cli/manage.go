package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// getRaw fetches a JSON answer, returning it unchanged (for --json) and decoded into out.
func (c *client) getRaw(ctx context.Context, method, path string, out any) (json.RawMessage, error) {
	var raw json.RawMessage
	if err := c.do(ctx, method, path, nil, "", &raw); err != nil {
		return nil, err
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return raw, nil
}

func (r *runner) printRaw(raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	return writeJSON(r.out, v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func when(unix int64) string {
	if unix == 0 {
		return "-"
	}
	return time.Unix(unix, 0).UTC().Format("2006-01-02 15:04:05")
}

func deref(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

func (r *runner) batches(ctx context.Context, sub string, args []string) (int, error) {
	fs, c := r.flags("batches " + sub)
	var limit *int
	var status, offset *string
	switch sub {
	case "ls":
		limit = fs.Int("limit", 20, "how many batches to list, newest first")
		status = fs.String("status", "", "only batches in these statuses (comma-separated)")
	case "results":
		limit = fs.Int("limit", 0, "at most this many lines (default all)")
		offset = fs.String("offset", "", "skip this many lines")
		status = fs.String("status", "", "only lines in these statuses (comma-separated)")
	case "wait":
		fs.DurationVar(&c.poll, "poll", time.Second, "how often to poll the batch")
	}
	var every *time.Duration
	if sub == "wait" {
		every = fs.Duration("report-every", 10*time.Second, "when stdout is not a terminal: least time between two progress lines")
	}
	pos, err := parse(fs, args)
	if err != nil {
		return 0, err
	}
	cl, err := r.client(c)
	if err != nil {
		return 0, err
	}
	if sub == "ls" {
		if len(pos) != 0 {
			return 0, usagef("batches ls takes no arguments")
		}
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if *status != "" {
			q.Set("status", *status)
		}
		var l list[batchObject]
		raw, err := cl.getRaw(ctx, http.MethodGet, "/batches?"+q.Encode(), &l)
		if err != nil {
			return 0, err
		}
		if c.json {
			return ExitOK, r.printRaw(raw)
		}
		tw := table(r.out)
		fmt.Fprintln(tw, "ID\tSTATUS\tCOMPLETED\tFAILED\tTOTAL\tCREATED\tENDPOINT\tINPUT FILE")
		for _, b := range l.Data {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", b.ID, b.Status, b.RequestCounts.Completed, b.RequestCounts.Failed,
				b.RequestCounts.Total, when(b.CreatedAt), b.Endpoint, b.InputFileID)
		}
		return ExitOK, tw.Flush()
	}
	id, err := one(pos, "batch ID")
	if err != nil {
		return 0, err
	}
	path := "/batches/" + url.PathEscape(id)
	switch sub {
	case "get", "cancel", "retry":
		method, p := http.MethodGet, path
		if sub != "get" {
			method, p = http.MethodPost, path+"/"+sub
		}
		var b batchObject
		raw, err := cl.getRaw(ctx, method, p, &b)
		if err != nil {
			return 0, err
		}
		if c.json {
			return ExitOK, r.printRaw(raw)
		}
		r.printBatch(b)
		return ExitOK, nil
	case "wait":
		w := &watcher{r: r, cl: cl, poll: c.poll, every: *every, info: r.out}
		if c.json { // stdout holds only the batch
			w.info = r.errw
		}
		b, err := w.wait(ctx, id)
		if errors.Is(err, errDetached) {
			fmt.Fprintf(w.info, "stopped waiting; %s keeps running\n", id)
			return ExitOK, nil
		}
		if err != nil {
			return 0, err
		}
		if c.json {
			raw, err := cl.getRaw(ctx, http.MethodGet, path, nil)
			if err != nil {
				return 0, err
			}
			return outcome(b), r.printRaw(raw)
		}
		r.printBatch(b)
		return outcome(b), nil
	case "results":
		q := url.Values{}
		if *limit > 0 {
			q.Set("limit", strconv.Itoa(*limit))
		}
		if *offset != "" {
			q.Set("offset", *offset)
		}
		if *status != "" {
			q.Set("status", *status)
		}
		p := path + "/results"
		if len(q) > 0 {
			p += "?" + q.Encode()
		}
		if c.json { // JSONL, one line per input line, as the API gives it
			return ExitOK, cl.do(ctx, http.MethodGet, p, nil, "", r.out)
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(cl.do(ctx, http.MethodGet, p, nil, "", pw)) }()
		return ExitOK, r.resultsTable(pr)
	}
	return 0, usagef("unknown command batches %s (want ls, get, cancel, retry, results or wait)", sub)
}

// resultsTable renders GET /batches/{id}/results lines for people.
func (r *runner) resultsTable(body io.Reader) error {
	tw := table(r.out)
	fmt.Fprintln(tw, "LINE\tCUSTOM ID\tSTATUS\tDETAIL")
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var l struct {
			Line     int    `json:"line"`
			CustomID string `json:"custom_id"`
			Status   string `json:"status"`
			Response *struct {
				StatusCode int `json:"status_code"`
			} `json:"response"`
			Error *struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("results: %w", err)
		}
		detail := "-"
		switch {
		case l.Error != nil && l.Error.Code != "":
			detail = l.Error.Code
		case l.Response != nil:
			detail = "HTTP " + strconv.Itoa(l.Response.StatusCode)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", l.Line, l.CustomID, l.Status, detail)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return tw.Flush()
}

func (r *runner) printBatch(b batchObject) {
	tw := table(r.out)
	fmt.Fprintf(tw, "id\t%s\n", b.ID)
	fmt.Fprintf(tw, "status\t%s\n", b.Status)
	fmt.Fprintf(tw, "requests\t%d completed, %d failed, %d total\n", b.RequestCounts.Completed, b.RequestCounts.Failed, b.RequestCounts.Total)
	fmt.Fprintf(tw, "endpoint\t%s\n", b.Endpoint)
	fmt.Fprintf(tw, "input file\t%s\n", b.InputFileID)
	fmt.Fprintf(tw, "output file\t%s\n", deref(b.OutputFileID))
	fmt.Fprintf(tw, "error file\t%s\n", deref(b.ErrorFileID))
	fmt.Fprintf(tw, "created\t%s\n", when(b.CreatedAt))
	if len(b.Metadata) > 0 {
		var kv []string
		for k, v := range b.Metadata {
			kv = append(kv, k+"="+v)
		}
		fmt.Fprintf(tw, "metadata\t%s\n", strings.Join(kv, " "))
	}
	if b.Errors != nil {
		for _, e := range b.Errors.Data {
			fmt.Fprintf(tw, "error\t%s: %s\n", e.Code, e.Message)
		}
	}
	_ = tw.Flush()
}

func (r *runner) files(ctx context.Context, sub string, args []string) (int, error) {
	fs, c := r.flags("files " + sub)
	var limit *int
	var out *string
	switch sub {
	case "ls":
		limit = fs.Int("limit", 20, "how many files to list, newest first")
	case "download":
		out = fs.String("o", "", "write to this path (default: stdout)")
	}
	pos, err := parse(fs, args)
	if err != nil {
		return 0, err
	}
	cl, err := r.client(c)
	if err != nil {
		return 0, err
	}
	if sub == "ls" {
		if len(pos) != 0 {
			return 0, usagef("files ls takes no arguments")
		}
		var l list[fileObject]
		raw, err := cl.getRaw(ctx, http.MethodGet, "/files?limit="+strconv.Itoa(*limit), &l)
		if err != nil {
			return 0, err
		}
		if c.json {
			return ExitOK, r.printRaw(raw)
		}
		tw := table(r.out)
		fmt.Fprintln(tw, "ID\tPURPOSE\tSTATUS\tBYTES\tCREATED\tFILENAME")
		for _, f := range l.Data {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", f.ID, f.Purpose, f.Status, f.Bytes, when(f.CreatedAt), f.Filename)
		}
		return ExitOK, tw.Flush()
	}
	id, err := one(pos, "file ID")
	if err != nil {
		return 0, err
	}
	path := "/files/" + url.PathEscape(id)
	switch sub {
	case "get":
		var f fileObject
		raw, err := cl.getRaw(ctx, http.MethodGet, path, &f)
		if err != nil {
			return 0, err
		}
		if c.json {
			return ExitOK, r.printRaw(raw)
		}
		tw := table(r.out)
		fmt.Fprintf(tw, "id\t%s\nfilename\t%s\npurpose\t%s\nstatus\t%s\nbytes\t%d\ncreated\t%s\n", f.ID, f.Filename, f.Purpose, f.Status, f.Bytes, when(f.CreatedAt))
		return ExitOK, tw.Flush()
	case "rm":
		raw, err := cl.getRaw(ctx, http.MethodDelete, path, nil)
		if err != nil {
			return 0, err
		}
		if c.json {
			return ExitOK, r.printRaw(raw)
		}
		fmt.Fprintf(r.out, "deleted %s\n", id)
		return ExitOK, nil
	case "download":
		if *out == "" {
			return ExitOK, cl.download(ctx, id, r.out)
		}
		return ExitOK, downloadTo(ctx, cl, id, *out)
	}
	return 0, usagef("unknown command files %s (want ls, get, rm or download)", sub)
}

// downloadTo writes a file's content to path, through a temporary file so that a failed
// download leaves nothing half-written under the name.
func downloadTo(ctx context.Context, cl *client, id, path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := cl.download(ctx, id, tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

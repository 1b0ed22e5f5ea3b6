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
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/fusillade/fusillade/shared/httpapi"
)

// partBytes is the Uploads API part size: under the direct-request cap with room for the
// multipart framing of each part (docs/api.md, Large files).
const partBytes = 4_000_000

// metadataFlag collects repeated --metadata k=v.
type metadataFlag map[string]string

func (m metadataFlag) String() string { return "" }

func (m metadataFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", v)
	}
	m[k] = val
	return nil
}

// summary is what submit prints at the end (--json: this object).
type summary struct {
	Batch       batchObject    `json:"batch"`
	WallSeconds float64        `json:"wall_seconds"`
	ErrorCodes  map[string]int `json:"error_codes"`
	OutputPath  string         `json:"output_path,omitempty"`
	ErrorPath   string         `json:"error_path,omitempty"`
	Detached    bool           `json:"detached,omitempty"`
}

func (r *runner) submit(ctx context.Context, args []string) (int, error) {
	fs, c := r.flags("submit")
	endpoint := fs.String("endpoint", "/v1/chat/completions", "the batch's endpoint; every line's url must equal it")
	window := fs.String("window", "24h", "completion window")
	meta := metadataFlag{}
	fs.Var(meta, "metadata", "batch metadata key=value; repeatable")
	outDir := fs.String("out", ".", "directory the output and error files are downloaded into")
	detach := fs.Bool("detach", false, "create the batch and exit without waiting")
	upload := fs.String("upload", "auto", "how to upload: auto (direct up to the direct-upload limit, else presigned, else the Uploads API), direct, presigned or parts")
	fs.DurationVar(&c.poll, "poll", time.Second, "how often to poll the batch")
	every := fs.Duration("report-every", 10*time.Second, "when stdout is not a terminal: least time between two progress lines")
	pos, err := parse(fs, args)
	if err != nil {
		return 0, err
	}
	path, err := one(pos, "FILE")
	if err != nil {
		return 0, err
	}
	switch *upload {
	case "auto", "direct", "presigned", "parts":
	default:
		return 0, usagef("--upload: %q is not auto, direct, presigned or parts", *upload)
	}
	cl, err := r.client(c)
	if err != nil {
		return 0, err
	}
	info := r.out // messages for people; with --json stdout holds only the summary
	if c.json {
		info = r.errw
	}
	start := time.Now()

	rep, err := checkFile(path, *endpoint)
	if err != nil {
		return 0, err
	}
	if !rep.Valid {
		fmt.Fprintf(r.errw, "%s: %d bad line(s); nothing was uploaded\n", path, len(rep.Errors))
		printProblems(r.errw, rep.Errors, rep.ErrorsTruncated)
		return ExitUsage, nil
	}

	// Ctrl-C before the batch exists abandons the upload.
	upCtx, cancelUp := context.WithCancelCause(ctx)
	upDone := make(chan struct{})
	go func() {
		select {
		case <-r.env.Signals:
			cancelUp(errInterrupted)
		case <-upDone:
		}
	}()
	f, how, err := r.upload(upCtx, cl, path, rep.Bytes, *upload)
	close(upDone)
	interrupted := errors.Is(context.Cause(upCtx), errInterrupted)
	cancelUp(nil)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && len(ae.Errors) > 0 {
			fmt.Fprintf(r.errw, "%s: the server rejected %d line(s): %s\n", path, len(ae.Errors), ae.Message)
			printProblems(r.errw, ae.Errors, false)
			return ExitUsage, nil
		}
		if interrupted {
			return 0, errors.New("interrupted: nothing was submitted")
		}
		return 0, fmt.Errorf("upload %s: %w", path, err)
	}
	fmt.Fprintf(info, "uploaded %s as %s (%d bytes, %d requests, %s)\n", path, f.ID, f.Bytes, rep.TotalRequests, how)

	var b batchObject
	req := map[string]any{"input_file_id": f.ID, "endpoint": *endpoint, "completion_window": *window}
	if len(meta) > 0 {
		req["metadata"] = map[string]string(meta)
	}
	if err := cl.doJSON(ctx, http.MethodPost, "/batches", req, &b); err != nil {
		return 0, fmt.Errorf("create batch: %w", err)
	}
	fmt.Fprintf(info, "created %s\n", b.ID)
	if *detach {
		if c.json {
			return ExitOK, writeJSON(r.out, summary{Batch: b, Detached: true})
		}
		fmt.Fprintln(r.out, b.ID)
		return ExitOK, nil
	}

	w := &watcher{r: r, cl: cl, poll: c.poll, every: *every, info: info, interrupt: r.askCancelOrDetach}
	b, err = w.wait(ctx, b.ID)
	if errors.Is(err, errDetached) {
		fmt.Fprintf(info, "detached: %s keeps running; `fusillade batches wait %s` picks it up again\n", b.ID, b.ID)
		if c.json {
			return ExitOK, writeJSON(r.out, summary{Batch: b, Detached: true})
		}
		fmt.Fprintln(r.out, b.ID)
		return ExitOK, nil
	}
	if err != nil {
		return 0, err
	}
	s := summary{Batch: b, ErrorCodes: map[string]int{}}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return 0, err
	}
	if b.OutputFileID != nil && *b.OutputFileID != "" {
		s.OutputPath = filepath.Join(*outDir, b.ID+"_output.jsonl")
		if err := downloadTo(ctx, cl, *b.OutputFileID, s.OutputPath); err != nil {
			return 0, fmt.Errorf("download output file: %w", err)
		}
	}
	if b.ErrorFileID != nil && *b.ErrorFileID != "" {
		s.ErrorPath = filepath.Join(*outDir, b.ID+"_errors.jsonl")
		if err := downloadTo(ctx, cl, *b.ErrorFileID, s.ErrorPath); err != nil {
			return 0, fmt.Errorf("download error file: %w", err)
		}
		if s.ErrorCodes, err = countErrorCodes(s.ErrorPath); err != nil {
			return 0, err
		}
	}
	s.WallSeconds = time.Since(start).Seconds()
	if c.json {
		if err := writeJSON(r.out, s); err != nil {
			return 0, err
		}
	} else {
		printSummary(r.out, s)
	}
	return outcome(b), nil
}

// upload sends the file the way how says; auto sends it directly when the request fits under
// the API's direct-upload cap (httpapi.DefaultMaxDirectUploadBytes, 4.5 MB), else by the
// presigned path, else (a server without it) by the Uploads API.
func (r *runner) upload(ctx context.Context, cl *client, path string, size int64, how string) (fileObject, string, error) {
	name := filepath.Base(path)
	if how == "auto" || how == "direct" {
		// The multipart framing adds a few hundred bytes; a file that nearly fills the cap goes
		// the large way.
		if size+4096 <= httpapi.DefaultMaxDirectUploadBytes || how == "direct" {
			content, err := os.ReadFile(path)
			if err != nil {
				return fileObject{}, "", err
			}
			f, err := cl.uploadDirect(ctx, name, content)
			return f, "direct upload", err
		}
	}
	if how == "auto" || how == "presigned" {
		f, err := cl.uploadPresigned(ctx, name, path, size)
		if how == "presigned" || !presignRefused(err) {
			return f, "presigned upload", err
		}
	}
	f, err := cl.uploadParts(ctx, name, path, size, partBytes)
	return f, "Uploads API", err
}

// presignRefused tells a server without the presigned path (OpenAI's refuses a JSON POST
// /v1/files with a 4xx) from failures that the Uploads API would meet as well: the key, the
// size, the rate limit, the network.
func presignRefused(err error) bool {
	var ae *apiError
	if errors.Is(err, errNoPresign) {
		return true
	}
	if !errors.As(err, &ae) || ae.Status/100 != 4 {
		return false
	}
	switch ae.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		return false
	}
	return true
}

// errInterrupted: Ctrl-C during the upload.
var errInterrupted = errors.New("interrupted")

// errDetached: the user chose to leave the batch running.
var errDetached = errors.New("detached")

// askCancelOrDetach is submit's Ctrl-C: on a terminal it asks whether to cancel the batch or
// detach; otherwise (or on a second Ctrl-C, or no answer) it detaches. It returns true to cancel.
func (r *runner) askCancelOrDetach(ctx context.Context) (bool, error) {
	if !r.env.StdinTerminal {
		return false, nil
	}
	_, _ = fmt.Fprint(r.out, "\ninterrupted: cancel the batch (c) or detach and leave it running (d)? [c/d] ")
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r.env.Stdin).ReadString('\n')
		answer <- strings.ToLower(strings.TrimSpace(line))
	}()
	select {
	case a := <-answer:
		return a == "c" || a == "cancel" || a == "y" || a == "yes", nil
	case <-r.env.Signals:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// outcome maps an ended batch to the exit code.
func outcome(b batchObject) int {
	switch {
	case b.Status != "completed":
		return ExitBatchNotCompleted
	case b.RequestCounts.Failed > 0:
		return ExitLinesFailed
	}
	return ExitOK
}

// countErrorCodes tallies an error file's lines by error code; a line that got an HTTP answer
// counts under "http_<status>".
func countErrorCodes(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var l struct {
			Response *struct {
				StatusCode int `json:"status_code"`
			} `json:"response"`
			Error *struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		switch {
		case l.Error != nil:
			counts[l.Error.Code]++
		case l.Response != nil:
			counts[fmt.Sprintf("http_%d", l.Response.StatusCode)]++
		}
	}
	return counts, sc.Err()
}

func printSummary(w io.Writer, s summary) {
	b := s.Batch
	fmt.Fprintf(w, "\n%s %s in %s\n", b.ID, b.Status, (time.Duration(s.WallSeconds * float64(time.Second))).Round(time.Millisecond))
	tw := table(w)
	fmt.Fprintf(tw, "  requests\t%d total, %d completed, %d failed\n", b.RequestCounts.Total, b.RequestCounts.Completed, b.RequestCounts.Failed)
	codes := make([]string, 0, len(s.ErrorCodes))
	for c := range s.ErrorCodes {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool {
		if s.ErrorCodes[codes[i]] != s.ErrorCodes[codes[j]] {
			return s.ErrorCodes[codes[i]] > s.ErrorCodes[codes[j]]
		}
		return codes[i] < codes[j]
	})
	for _, c := range codes {
		fmt.Fprintf(tw, "  error code\t%s: %d\n", c, s.ErrorCodes[c])
	}
	if b.Errors != nil {
		for _, e := range b.Errors.Data {
			fmt.Fprintf(tw, "  batch error\t%s: %s\n", e.Code, e.Message)
		}
	}
	if s.OutputPath != "" {
		fmt.Fprintf(tw, "  output\t%s\n", s.OutputPath)
	}
	if s.ErrorPath != "" {
		fmt.Fprintf(tw, "  errors\t%s\n", s.ErrorPath)
	}
	_ = tw.Flush()
}

// watcher polls a batch until it ends, showing progress: a live bar on a terminal, else a plain
// line whenever the counts change (at most one per every; the last always).
type watcher struct {
	r     *runner
	cl    *client
	poll  time.Duration
	every time.Duration
	info  io.Writer
	// interrupt is asked on Ctrl-C and returns true to cancel the batch, false to detach; nil
	// detaches.
	interrupt func(ctx context.Context) (bool, error)

	bar       *progressbar.ProgressBar
	first     time.Time
	firstDone int
	lastLine  time.Time
	lastSeen  string
}

// A watch outlives short outages: a poll that fails for a reason that may pass (the network, a
// 5xx, a 429) is tried again after twice the delay of the one before (at most maxPollBackoff),
// maxPollFailures times in a row before the watch gives up.
const (
	maxPollFailures = 10
	maxPollBackoff  = 30 * time.Second
)

// transient reports whether a failed poll may succeed when tried again.
func transient(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests
	}
	return true // no answer: the network
}

func (w *watcher) wait(ctx context.Context, id string) (batchObject, error) {
	if w.info == nil {
		w.info = w.r.out
	}
	if w.poll <= 0 {
		w.poll = time.Second
	}
	cancelled := false
	failures := 0
	b := batchObject{ID: id}
	for {
		delay := w.poll
		var got batchObject
		if err := w.cl.doJSON(ctx, http.MethodGet, "/batches/"+url.PathEscape(id), nil, &got); err != nil {
			if !transient(ctx, err) || failures == maxPollFailures {
				return b, err
			}
			failures++
			delay = min(w.poll<<failures, maxPollBackoff)
			fmt.Fprintf(w.r.errw, "polling %s failed (%d of %d tries; again in %s): %v\n", id, failures, maxPollFailures, delay, err)
		} else {
			b, failures = got, 0
			w.show(b)
			if b.terminal() {
				w.done(b)
				return b, nil
			}
		}
		select {
		case <-ctx.Done():
			return b, ctx.Err()
		case <-time.After(delay):
		case <-w.r.env.Signals:
			if cancelled { // a second Ctrl-C while cancelling: stop waiting
				return b, errDetached
			}
			cancel := false
			if w.interrupt != nil {
				var err error
				if cancel, err = w.interrupt(ctx); err != nil {
					return b, err
				}
			}
			if !cancel {
				w.stopBar()
				return b, errDetached
			}
			if err := w.cl.doJSON(ctx, http.MethodPost, "/batches/"+url.PathEscape(id)+"/cancel", nil, &b); err != nil {
				return b, fmt.Errorf("cancel %s: %w", id, err)
			}
			cancelled = true
			fmt.Fprintf(w.info, "cancelling %s\n", id)
		}
	}
}

func (w *watcher) show(b batchObject) {
	n := b.RequestCounts
	done := n.Completed + n.Failed
	now := time.Now()
	if w.first.IsZero() && n.Total > 0 {
		w.first, w.firstDone = now, done
	}
	if w.r.env.StdoutTerminal {
		if w.bar == nil {
			w.bar = progressbar.NewOptions(max(n.Total, 1),
				progressbar.OptionSetWriter(w.info),
				progressbar.OptionSetWidth(30),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("req"),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionSetElapsedTime(true),
				progressbar.OptionSetRenderBlankState(true),
				progressbar.OptionThrottle(0),
			)
		}
		if n.Total > 0 && w.bar.GetMax() != n.Total {
			w.bar.ChangeMax(n.Total)
		}
		_ = w.bar.Set(done)
		w.bar.Describe(fmt.Sprintf("%-11s %d ok %d failed", b.Status, n.Completed, n.Failed))
		return
	}
	key := fmt.Sprintf("%s %d %d %d", b.Status, n.Completed, n.Failed, n.Total)
	if key == w.lastSeen || (now.Sub(w.lastLine) < w.every && !b.terminal()) {
		return
	}
	w.lastSeen, w.lastLine = key, now
	line := fmt.Sprintf("%s %s: %d/%d done, %d completed, %d failed", now.UTC().Format(time.TimeOnly), b.Status, done, n.Total, n.Completed, n.Failed)
	if el := now.Sub(w.first).Seconds(); !w.first.IsZero() && el > 0 && done > w.firstDone {
		rate := float64(done-w.firstDone) / el
		line += fmt.Sprintf(", %.1f req/s", rate)
		if left := n.Total - done; left > 0 && !b.terminal() {
			line += fmt.Sprintf(", ETA %s", (time.Duration(float64(left) / rate * float64(time.Second))).Round(time.Second))
		}
	}
	fmt.Fprintln(w.info, line)
}

// done ends the bar: at 100 % when every line ended, else where it stopped.
func (w *watcher) done(b batchObject) {
	if w.bar == nil {
		return
	}
	if b.RequestCounts.Completed+b.RequestCounts.Failed >= b.RequestCounts.Total {
		_ = w.bar.Finish()
	}
	w.stopBar()
}

func (w *watcher) stopBar() {
	if w.bar != nil {
		fmt.Fprintln(w.info)
		w.bar = nil
	}
}

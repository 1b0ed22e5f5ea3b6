package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/fusillade/fusillade/shared/ingest"
	"github.com/fusillade/fusillade/shared/jsonl"
)

// report is a local validation of an input file, shaped like the API's file.validation object.
type report struct {
	Object          string         `json:"object"`
	File            string         `json:"file"`
	Bytes           int64          `json:"bytes"`
	Valid           bool           `json:"valid"`
	TotalRequests   int            `json:"total_requests"`
	Models          map[string]int `json:"models"`
	Errors          []lineProblem  `json:"errors"`
	ErrorsTruncated bool           `json:"errors_truncated"`
}

// checkFile validates the file at path with the server's rules and limits (shared/jsonl, the
// limits of shared/ingest) against endpoint ("" = any allowed endpoint). Models are not checked:
// which ones the server serves is its business, and it reports model_not_found on upload.
func checkFile(path, endpoint string) (report, error) {
	f, err := os.Open(path)
	if err != nil {
		return report{}, usagef("%v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return report{}, err
	}
	rep := report{Object: "file.validation", File: path, Bytes: st.Size(), Models: map[string]int{}, Errors: []lineProblem{}}
	if st.Size() > ingest.DefaultMaxFileBytes {
		rep.Errors = append(rep.Errors, lineProblem{Code: "file_too_large",
			Message: fmt.Sprintf("the file has %d bytes, more than the %d a file may have", st.Size(), ingest.DefaultMaxFileBytes)})
		return rep, nil
	}
	rules := jsonl.Rules{Endpoint: endpoint, MaxLines: ingest.DefaultMaxLines}
	// One more error than listed, to tell whether the list was cut.
	summary, errs, err := jsonl.ValidateAll(f, rules, 0, jsonl.DefaultMaxErrors+1)
	if err != nil {
		return report{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(errs) > jsonl.DefaultMaxErrors {
		errs, rep.ErrorsTruncated = errs[:jsonl.DefaultMaxErrors], true
	}
	for _, e := range errs {
		rep.Errors = append(rep.Errors, lineProblem{Line: e.Line, CustomID: e.CustomID, Code: e.Code, Param: e.Param, Message: e.Message})
	}
	rep.TotalRequests = summary.Lines
	for m, s := range summary.Models {
		rep.Models[m] = s.Requests
	}
	rep.Valid = len(rep.Errors) == 0
	return rep, nil
}

// printProblems lists bad lines for people, one a line.
func printProblems(w io.Writer, problems []lineProblem, truncated bool) {
	for _, p := range problems {
		msg := p.Message
		if msg == "" {
			msg = fmt.Sprintf("line %d", p.Line)
		}
		fmt.Fprintf(w, "  %s  [%s]\n", msg, p.Code)
	}
	if truncated {
		fmt.Fprintf(w, "  … more bad lines not listed (the first %d are)\n", len(problems))
	}
}

func (r *runner) validate(args []string) (int, error) {
	fs, c := r.flags("validate")
	endpoint := fs.String("endpoint", "", "the batch's endpoint every line's url must equal (default: any allowed endpoint)")
	pos, err := parse(fs, args)
	if err != nil {
		return 0, err
	}
	path, err := one(pos, "FILE")
	if err != nil {
		return 0, err
	}
	rep, err := checkFile(path, *endpoint)
	if err != nil {
		return 0, err
	}
	code := ExitOK
	if !rep.Valid {
		code = ExitUsage
	}
	if c.json {
		return code, writeJSON(r.out, rep)
	}
	if rep.Valid {
		fmt.Fprintf(r.out, "%s: valid, %d requests (%s)\n", path, rep.TotalRequests, modelList(rep.Models))
		return code, nil
	}
	fmt.Fprintf(r.out, "%s: %d bad line(s)\n", path, len(rep.Errors))
	printProblems(r.out, rep.Errors, rep.ErrorsTruncated)
	return code, nil
}

// modelList renders "m1 3, m2 1" in name order.
func modelList(m map[string]int) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", n, m[n])
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

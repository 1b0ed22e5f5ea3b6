package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Report is the JSON document -json writes: the machine, the PostgreSQL server and its settings,
// and for every workload its knobs next to its numbers, so that a figure is never read without
// the configuration that produced it.
type Report struct {
	StartedAt time.Time         `json:"started_at"`
	Mode      string            `json:"mode"` // "quick" or "full"
	Machine   Machine           `json:"machine"`
	Postgres  map[string]string `json:"postgres"`
	// Durability is "durable" or "NOT durable", with the settings it was read from.
	Durability string    `json:"durability"`
	Workloads  []*Result `json:"workloads"`
}

// Machine describes where the numbers were taken.
type Machine struct {
	GoVersion  string `json:"go_version"`
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model"`
	MemTotal   string `json:"mem_total"`
}

// Result is one workload's outcome.
type Result struct {
	ID      string         `json:"id"`
	Name    string         `json:"name"`
	Summary string         `json:"summary"`
	Wall    float64        `json:"wall_s"` // time the workload took, set-up included
	Knobs   map[string]any `json:"knobs"`
	Metrics map[string]any `json:"metrics"`
	Targets []Target       `json:"targets"`
	// Compare holds the same-run comparison with River and the errgroup fan-out (P1, P2).
	Compare *Comparison `json:"comparison,omitempty"`
	// Cost is the run's AWS cost per million requests, from its own counters (P8).
	Cost  *CostReport `json:"cost,omitempty"`
	Error string      `json:"error,omitempty"`
}

// Comparison is one workload's headline figure for each system, measured in the same run one
// system after the other; 0 means not run.
type Comparison struct {
	Metric     string  `json:"metric"` // "U" (utilisation) or "req/s"
	Ours       float64 `json:"ours"`
	OursEngine float64 `json:"ours_engine_only,omitempty"` // P2: first upstream call → last persist
	River      float64 `json:"river"`
	Errgroup   float64 `json:"errgroup"`
	// Ratios are ours ÷ theirs (higher is better for fusillade).
	OursOverRiver    float64 `json:"ours_over_river"`
	OursOverErrgroup float64 `json:"ours_over_errgroup"`
	OursDB           *DBWork `json:"ours_db,omitempty"`
	RiverDB          *DBWork `json:"river_db,omitempty"`
}

func (c *Comparison) ratios() {
	if c.River > 0 {
		c.OursOverRiver = round3(c.Ours / c.River)
	}
	if c.Errgroup > 0 {
		c.OursOverErrgroup = round3(c.Ours / c.Errgroup)
	}
}

// Target is one pass criterion of the issue, with the measured value.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

func (r *Result) target(name, want, got string, met bool) {
	r.Targets = append(r.Targets, Target{Name: name, Want: want, Got: got, Met: met})
}

func newResult(id, name string) *Result {
	return &Result{ID: id, Name: name, Knobs: map[string]any{}, Metrics: map[string]any{}}
}

func machine() Machine {
	m := Machine{GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, NumCPU: runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0)}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	m.MemTotal = procField("/proc/meminfo", "MemTotal")
	return m
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// pgSettingNames are the server settings that move queue benchmarks the most (see the method's
// note on published numbers: commit durability, memory and connection limits).
var pgSettingNames = []string{"fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "work_mem",
	"max_connections", "wal_level", "checkpoint_timeout", "max_wal_size", "effective_cache_size", "random_page_cost",
	"autovacuum", "jit", "shared_preload_libraries"}

// durability names how the server commits: "durable" when none of fsync, synchronous_commit
// and full_page_writes is off, "NOT durable" otherwise, followed by the three settings.
func durability(pg map[string]string) string {
	label := "durable"
	var settings []string
	for _, k := range []string{"fsync", "synchronous_commit", "full_page_writes"} {
		if pg[k] == "off" {
			label = "NOT durable"
		}
		settings = append(settings, k+"="+pg[k])
	}
	return label + " (" + strings.Join(settings, " ") + ")"
}

// pgVersion is the version number out of version()'s sentence.
func pgVersion(v string) string {
	if f := strings.Fields(v); len(f) >= 2 {
		return f[1]
	}
	return v
}

func statStatements(pg map[string]string) string {
	if strings.Contains(pg["shared_preload_libraries"], "pg_stat_statements") {
		return "loaded"
	}
	return "not loaded (statements per request n/a)"
}

// printComparison prints the same-run comparison table of P1 and P2, and P2's database work per
// request.
func printComparison(w io.Writer, rep *Report) {
	var rows []*Result
	for _, r := range rep.Workloads {
		if r.Compare != nil && r.Error == "" {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return
	}
	num := func(x float64, f string) string {
		if x == 0 {
			return "-"
		}
		return fmt.Sprintf(f, x)
	}
	fmt.Fprintf(w, "\nsame-run comparison (%s; one system after the other, never at once)\n", rep.Durability)
	fmt.Fprintf(w, "%-5s %-6s %10s %12s %10s %10s %12s %15s\n", "", "metric", "ours", "ours engine", "River", "errgroup", "ours÷River", "ours÷errgroup")
	for _, r := range rows {
		c := r.Compare
		f := "%.3f"
		if c.Metric != "U" {
			f = "%.0f"
		}
		fmt.Fprintf(w, "%-5s %-6s %10s %12s %10s %10s %12s %15s\n", r.ID, c.Metric, num(c.Ours, f), num(c.OursEngine, f), num(c.River, f),
			num(c.Errgroup, f), num(c.OursOverRiver, "%.3f×"), num(c.OursOverErrgroup, "%.3f×"))
	}
	for _, r := range rows {
		c := r.Compare
		if c.OursDB != nil {
			fmt.Fprintf(w, "%s database work per request: ours %s", r.ID, c.OursDB)
			if c.RiverDB != nil {
				fmt.Fprintf(w, "; River %s", c.RiverDB)
			}
			fmt.Fprintln(w)
		}
	}
}

func postgresSettings(ctx context.Context, url string) (map[string]string, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	out := map[string]string{}
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return nil, err
	}
	out["version"] = v
	rows, err := conn.Query(ctx, "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY($1)", pgSettingNames)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var k, s string
		if err := rows.Scan(&k, &s); err != nil {
			return nil, err
		}
		out[k] = s
	}
	return out, rows.Err()
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// met renders a target verdict for the summary line.
func met(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

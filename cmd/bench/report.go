package main

import (
	"bufio"
	"context"
	"encoding/json"
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
	Workloads []*Result         `json:"workloads"`
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
	Error   string         `json:"error,omitempty"`
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
	"autovacuum", "jit"}

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

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/mockupstream"
	"github.com/fusillade/fusillade/local/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The quick path of the cheapest workload, through the command's own entry point, so that the
// tool cannot rot: flags, a fresh database, the in-process stack, the API, finalisation, the
// download and the JSON report. A few seconds.
func TestQuickDownloadWorkloadRunsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the in-process stack against PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	report := filepath.Join(t.TempDir(), "report.json")
	var out bytes.Buffer
	require.NoError(t, run(ctx, []string{"-quick", "-only", "P5", "-json", report}, os.Getenv, &out), "%s", out.String())
	require.Contains(t, out.String(), "P5 ")

	b, err := os.ReadFile(report)
	require.NoError(t, err)
	var rep Report
	require.NoError(t, json.Unmarshal(b, &rep))
	require.Equal(t, "quick", rep.Mode)
	require.NotEmpty(t, rep.Postgres["version"])
	require.NotEmpty(t, rep.Durability)
	require.Len(t, rep.Workloads, 1)
	w := rep.Workloads[0]
	require.Equal(t, "P5", w.ID)
	require.Empty(t, w.Error)
	require.Greater(t, w.Metrics["bytes"], float64(0))
	require.Len(t, w.Targets, 1)
}

func TestUnknownWorkloadIsRejected(t *testing.T) {
	err := run(context.Background(), []string{"-only", "P99"}, func(string) string { return "" }, &bytes.Buffer{})
	require.ErrorContains(t, err, `unknown workload "P99"`)
}

// Slot refill pairs each freed slot with the next request start, oldest freed slot first; the
// initial fill and the slots freed at the end are not pairs.
func TestRefillGapsPairFreedSlotsWithTheNextStarts(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	recs := []mockupstream.Recorded{
		{Received: at(0), Finished: at(100)},   // fills slot 1
		{Received: at(0), Finished: at(150)},   // fills slot 2
		{Received: at(103), Finished: at(300)}, // takes the slot freed at 100
		{Received: at(160), Finished: at(320)}, // takes the slot freed at 150
		{Received: at(310), Finished: at(400)}, // takes the slot freed at 300
	}
	require.Equal(t, []time.Duration{3 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}, refillGaps(recs))
}

func TestDistUsesNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := distOf(ds)
	require.Equal(t, 50.0, d.P50)
	require.Equal(t, 99.0, d.P99)
	require.Equal(t, 100.0, d.Max)
	require.Equal(t, 50.5, d.Mean)
	require.Equal(t, Dist{}, distOf(nil))
}

func TestGeneratedLinesAreTheRequestedSize(t *testing.T) {
	pad := p4LineBytes - len(appendLine(nil, 50_000, "bench-a", 0))
	line := appendLine(nil, 50_000, "bench-a", pad)
	require.Equal(t, p4LineBytes, len(line))
	require.True(t, json.Valid(bytes.TrimSpace(line)))
	require.True(t, strings.HasSuffix(string(line), "}}\n"))
}

// The River comparator does the same work per job as the engine per request: every line is
// POSTed to the mock (never more than the queue's MaxWorkers at once) and its answer committed
// with the job's completion.
func TestRiverComparatorCompletesEveryJobWithItsResultRow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL := pgtest.EmptyURL(t)
	models := []modelSpec{{"bench-a", 4}, {"bench-b", 2}}
	content := genJSONL(30, []string{"bench-a", "bench-b"}, 0)
	run, err := runRiver(ctx, riverOptions{DatabaseURL: dbURL, Models: models, Content: content,
		Upstream: mockupstream.Config{Latency: mockupstream.Fixed(5 * time.Millisecond), Record: true}})
	require.NoError(t, err)
	require.Equal(t, 30, run.Jobs)
	require.False(t, run.Last.Before(run.Started))
	results, completed, err := riverResultCount(ctx, dbURL)
	require.NoError(t, err)
	require.Equal(t, 30, results)
	require.Equal(t, 30, completed)
	require.Len(t, run.Requests, 30)
	require.Equal(t, 15, int(run.Stats.Models["bench-a"].Calls))
	require.LessOrEqual(t, run.Stats.Models["bench-a"].MaxInFlight, 4)
	require.LessOrEqual(t, run.Stats.Models["bench-b"].MaxInFlight, 2)
}

func TestDurabilityIsNamedFromTheServersSettings(t *testing.T) {
	on := map[string]string{"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
	require.Equal(t, "durable (fsync=on synchronous_commit=on full_page_writes=on)", durability(on))
	off := map[string]string{"fsync": "off", "synchronous_commit": "on", "full_page_writes": "on"}
	require.Equal(t, "NOT durable (fsync=off synchronous_commit=on full_page_writes=on)", durability(off))
}

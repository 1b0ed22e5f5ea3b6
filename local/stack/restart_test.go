package stack_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/pgcluster"
	"github.com/fusillade/fusillade/local/pgtest"
	"github.com/fusillade/fusillade/local/stack"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/wire"
)

// crashChildEnv makes the test binary, re-executed, run a persistent stack on the data
// directory it names instead of the tests, print childInfo on stdout and wait to be killed.
const crashChildEnv = "FUSILLADE_TEST_STACK_CHILD_DIR"

type childInfo struct {
	APIURL, APIKey, DatabaseURL string
}

// TestMain runs the child stack when asked to, the tests otherwise.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		runChildStack(dir)
		return
	}
	pgtest.Main(m)
}

func runChildStack(dir string) {
	st, err := stack.Start(context.Background(), stack.Options{DataDir: dir, APIAddr: "127.0.0.1:0",
		Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 4}}, Logger: wire.NewLogger(os.Stderr, "warn")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child stack:", err)
		os.Exit(2)
	}
	_ = json.NewEncoder(os.Stdout).Encode(childInfo{APIURL: st.APIURL, APIKey: st.APIKey, DatabaseURL: st.Env["DATABASE_URL"]})
	select {} // until SIGKILL
}

// startChildStack runs a stack on dir in a re-executed test binary and returns what it printed
// and a function that kills it with SIGKILL, which leaves its PostgreSQL running, as kill -9 of
// `make run` does.
func startChildStack(t *testing.T, dir string) (childInfo, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	kill := func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	t.Cleanup(func() {
		kill()
		stopLeftoverPostgres(filepath.Join(dir, "pg"))
	})
	var info childInfo
	line, err := bufio.NewReader(out).ReadBytes('\n')
	require.NoError(t, err, "the child stack started")
	require.NoError(t, json.Unmarshal(line, &info))
	return info, kill
}

// stopLeftoverPostgres stops a server a failed test left running in dir (SIGINT is its fast
// shutdown).
func stopLeftoverPostgres(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(string(b), "\n")
	if pid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGINT)
	}
}

func startOn(t *testing.T, dir string) *stack.Stack {
	t.Helper()
	st, err := stack.Start(context.Background(), stack.Options{DataDir: dir, APIAddr: "127.0.0.1:0",
		Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 4}}})
	require.NoError(t, err)
	t.Cleanup(st.Stop)
	return st
}

// A stack killed with SIGKILL leaves its PostgreSQL running on the data directory; the next
// start stops that server, starts cleanly and finds the file, the batch, its output and the keys.
func TestRestartAfterCrashKeepsFilesBatchesAndKeys(t *testing.T) {
	dir := t.TempDir()
	info, kill := startChildStack(t, dir)
	c := openaiClient(info.APIURL, info.APIKey)
	f := uploadSDK(t, c, jsonlFile(3, "mock-chat"))
	b := newBatch(t, c, f.ID)
	done := waitBatch(t, c, b.ID, time.Minute)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	before := readLines(t, c, done.OutputFileID)
	require.Len(t, before, 3)

	kill()
	require.True(t, pgcluster.Running(filepath.Join(dir, "pg")), "PostgreSQL outlives the killed stack")

	st := startOn(t, dir)
	require.Equal(t, info.APIKey, st.APIKey, "the key survives the crash")
	c = openaiClient(st.APIURL, st.APIKey)
	gotFile, err := c.Files.Get(context.Background(), f.ID)
	require.NoError(t, err)
	require.Equal(t, f.Bytes, gotFile.Bytes)
	gotBatch, err := c.Batches.Get(context.Background(), b.ID)
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusCompleted, gotBatch.Status)
	require.Equal(t, before, readLines(t, c, gotBatch.OutputFileID))

	st.Stop()
	require.False(t, pgcluster.Running(filepath.Join(dir, "pg")), "Stop stops PostgreSQL")
}

// What a crashed stack had in flight is taken back when the next one starts, not after the
// claim timeout and stale-worker threshold (a minute each): the batch finishes within seconds
// of the restart, every line exactly once.
func TestRestartRescuesTheWorkOfACrashedStackAtOnce(t *testing.T) {
	dir := t.TempDir()
	info, kill := startChildStack(t, dir)
	c := openaiClient(info.APIURL, info.APIKey)
	var content strings.Builder
	for i := range 20 {
		fmt.Fprintf(&content, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","messages":[],"mock_block":"hold"}}`+"\n", i)
	}
	f := uploadSDK(t, c, []byte(content.String()))
	b := newBatch(t, c, f.ID)

	// Wait until the child holds all four slots: processing rows owned by its worker.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := pgx.Connect(ctx, info.DatabaseURL)
	require.NoError(t, err)
	for {
		var n int
		require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM requests WHERE batch_id = $1 AND state = 'processing'`, b.ID).Scan(&n))
		if n == 4 {
			break
		}
		select {
		case <-ctx.Done():
			require.Failf(t, "the child never had 4 requests processing", "it has %d", n)
		case <-time.After(20 * time.Millisecond):
		}
	}
	require.NoError(t, db.Close(ctx))
	kill()

	restarted := time.Now()
	st := startOn(t, dir)
	st.Upstream.Release("hold")
	c = openaiClient(st.APIURL, st.APIKey)
	done := waitBatch(t, c, b.ID, 30*time.Second)
	took := time.Since(restarted)
	t.Logf("batch completed %s after the restart", took.Round(time.Millisecond))
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	require.EqualValues(t, 20, done.RequestCounts.Completed)
	require.Less(t, took, st.App.Config.ClaimTimeout/2, "well before the claim timeout")
	require.EqualValues(t, 20, st.Upstream.Calls(), "the restarted stack sends every line once")
	assertInvariants(t, st, c, done, map[string]int{"mock-chat": 4})
}

// A batch the crashed stack had accepted but not yet populated (its populate message died with
// the in-memory queue) is populated by the next start and runs to completion.
func TestRestartPopulatesABatchLeftValidatingByACrashedStack(t *testing.T) {
	dir := t.TempDir()
	info, kill := startChildStack(t, dir)
	c := openaiClient(info.APIURL, info.APIKey)
	f := uploadSDK(t, c, jsonlFile(5, "mock-chat"))
	kill()

	// The state the API leaves a batch in before populate: created, validating, no requests.
	// Inserted directly because the child's populate would otherwise win the race to the crash.
	ctx := context.Background()
	db, err := pgx.Connect(ctx, info.DatabaseURL)
	require.NoError(t, err)
	var tenant string
	require.NoError(t, db.QueryRow(ctx, `SELECT tenant_id FROM files WHERE id = $1`, f.ID).Scan(&tenant))
	batchID, outID, errID := domain.NewBatchID(), domain.NewFileID(), domain.NewFileID()
	_, err = db.Exec(ctx, `INSERT INTO files (id, tenant_id, filename, purpose, bytes, status, batch_id, created_at)
		VALUES ($2, $1, $4 || '_output.jsonl', 'batch_output', 0, 'processed', $4, now()),
		       ($3, $1, $4 || '_error.jsonl', 'batch_error', 0, 'processed', $4, now())`, tenant, outID, errID, batchID)
	require.NoError(t, err)
	_, err = db.Exec(ctx, `INSERT INTO batches (id, tenant_id, input_file_id, endpoint, completion_window, status, expires_at, output_file_id, error_file_id)
		VALUES ($3, $1, $2, '/v1/chat/completions', '24h', 'validating', now() + interval '24 hours', $4, $5)`, tenant, f.ID, batchID, outID, errID)
	require.NoError(t, err)
	require.NoError(t, db.Close(ctx))

	st := startOn(t, dir)
	c = openaiClient(st.APIURL, st.APIKey)
	done := waitBatch(t, c, batchID, 30*time.Second)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	require.EqualValues(t, 5, done.RequestCounts.Completed)
}

// A taken API address fails the start before anything else is started: one line naming the
// address, and no PostgreSQL left running.
func TestStartOnATakenAddressFailsInOneLineAndLeavesNothingRunning(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	dir := t.TempDir()
	st, err := stack.Start(context.Background(), stack.Options{DataDir: dir, APIAddr: taken.Addr().String()})
	require.Error(t, err)
	require.Nil(t, st)
	require.NotContains(t, err.Error(), "\n")
	require.Contains(t, err.Error(), taken.Addr().String())
	require.Contains(t, err.Error(), "address already in use")
	require.False(t, pgcluster.Running(filepath.Join(dir, "pg")))
}

// A failure after PostgreSQL started stops it again: here a bad setting, which fails once the
// database is up.
func TestFailedStartAfterPostgresStartedStopsIt(t *testing.T) {
	dir := t.TempDir()
	st, err := stack.Start(context.Background(), stack.Options{DataDir: dir, APIAddr: "127.0.0.1:0",
		Env: map[string]string{"COMPLETION_WINDOWS": "not-a-window"}})
	require.Error(t, err)
	require.Nil(t, st)
	require.Contains(t, err.Error(), "COMPLETION_WINDOWS")
	require.False(t, pgcluster.Running(filepath.Join(dir, "pg")), "the failed start stopped its PostgreSQL")
}

// Two live stacks never share a data directory: the second is refused, naming the first.
func TestSecondStackOnALiveDataDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	first, err := stack.Start(context.Background(), stack.Options{DataDir: dir, APIAddr: "127.0.0.1:0", Ephemeral: true,
		DatabaseURL: pgtest.URL(t)})
	require.NoError(t, err)
	defer first.Stop()
	_, err = stack.Start(context.Background(), stack.Options{DataDir: dir, APIAddr: "127.0.0.1:0", Ephemeral: true,
		DatabaseURL: pgtest.URL(t)})
	require.ErrorContains(t, err, "in use by another running stack (pid "+strconv.Itoa(os.Getpid())+")")
}

func openaiClient(apiURL, key string) openai.Client {
	return client(&stack.Stack{APIURL: apiURL}, key)
}

// Data a user keeps (a stack that is not Ephemeral, as make run starts it) is durable: fsync and
// synchronous commit are on, so a power cut loses no acknowledged file, batch or result.
func TestKeptDataIsDurable(t *testing.T) {
	st := startOn(t, t.TempDir())
	ctx := context.Background()
	db, err := pgx.Connect(ctx, st.Cluster.URL("postgres"))
	require.NoError(t, err)
	defer db.Close(ctx)
	for _, setting := range []string{"fsync", "synchronous_commit", "full_page_writes"} {
		var v string
		require.NoError(t, db.QueryRow(ctx, "SHOW "+setting).Scan(&v))
		require.Equal(t, "on", v, setting)
	}
}

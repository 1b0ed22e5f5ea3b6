// Package pgcluster runs a throwaway PostgreSQL cluster from the binaries installed on the
// machine, for the local stack and the test suite. It needs no Docker and no download: it looks
// for initdb and pg_ctl under /usr/lib/postgresql/<version>/bin (the Debian layout) or on PATH.
//
// initdb refuses to run as root, so when the process is root the cluster is created and run as
// the "postgres" system user through runuser, and the data directory is handed to that user.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options configures Start.
type Options struct {
	// Dir holds the cluster: Dir/data is the data directory, Dir/pg.log the server log and Dir is
	// also the socket directory. An existing initialised cluster in Dir is reused, which is how
	// the local stack keeps files and batches across restarts. Required.
	Dir string
	// Port to listen on at 127.0.0.1. 0 picks a free port.
	Port int
	// Durable keeps fsync on. Tests and throwaway clusters turn it off (the default) because
	// losing a test database on power failure does not matter and fsync dominates their run time.
	Durable bool
	// Settings are extra server settings, each "name=value" as for postgres -c, applied after the
	// defaults (a later value of the same name wins); values hold no spaces. Default none. The
	// benchmark uses it to preload pg_stat_statements.
	Settings []string
	// Logger receives start/stop messages. nil discards them.
	Logger *slog.Logger
}

// Cluster is a running PostgreSQL server.
type Cluster struct {
	dir    string
	port   int
	bin    string
	asUser string // "" when the current user runs the binaries directly
	log    *slog.Logger
	// settings are the server options given to pg_ctl start, kept for Start after Stop.
	settings []string
}

// ErrNoBinaries reports that PostgreSQL's server binaries are not installed.
var ErrNoBinaries = errors.New("pgcluster: PostgreSQL server binaries (initdb, pg_ctl) not found; install the postgresql package (make deps does)")

// Start initialises the cluster if needed and starts it, waiting until it accepts connections.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("pgcluster: Options.Dir is required")
	}
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, bin: bin, log: log, port: opts.Port}
	if os.Geteuid() == 0 {
		c.asUser = "postgres"
	}
	if c.port == 0 {
		if c.port, err = freePort(); err != nil {
			return nil, err
		}
	}
	if err := c.prepareDir(); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		start := time.Now()
		args := []string{"-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"}
		if !opts.Durable {
			args = append(args, "--no-sync")
		}
		if out, err := c.run(ctx, "initdb", args...); err != nil {
			return nil, fmt.Errorf("pgcluster: initdb: %w: %s", err, strings.Join(strings.Fields(string(out)), " "))
		}
		log.Info("postgres cluster initialised", "dir", dir, "took", time.Since(start).Round(time.Millisecond))
	}
	if err := c.stopLeftover(ctx); err != nil {
		return nil, err
	}
	c.settings = serverSettings(c.port, dir, opts)
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// serverSettings are the options pg_ctl start gives the server of cluster directory dir.
func serverSettings(port int, dir string, opts Options) []string {
	settings := []string{
		"-p " + strconv.Itoa(port),
		"-k " + dir,
		"-c listen_addresses=127.0.0.1",
		"-c max_connections=400",
		"-c shared_buffers=256MB",
		// Request rows change state several times each, leaving dead index entries that claims
		// and finalisation checks walk past; check for vacuum work every 10 s instead of every
		// minute (production databases should be tuned the same way).
		"-c autovacuum_naptime=10s",
	}
	if !opts.Durable {
		settings = append(settings, "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")
	}
	for _, s := range opts.Settings {
		settings = append(settings, "-c "+s)
	}
	return settings
}

// StartReplica makes a new cluster in opts.Dir a streaming replica (a hot standby) of primary
// and starts it, returning once it accepts read-only connections. pg_basebackup copies the
// primary's data directory over a replication connection and, with -R, writes standby.signal
// and the primary_conninfo that streams the primary's WAL from then on. The primary needs
// nothing initdb does not already give it: wal_level replica and max_wal_senders 10 are the
// defaults, and initdb's pg_hba.conf admits replication connections from 127.0.0.1 with the
// method it was given (trust). An existing replica in opts.Dir is reused.
//
// A replica replicates the whole cluster: every database created on the primary appears on it.
// Its Options.Settings should leave max_connections at or above the primary's, which a hot
// standby requires; Durable applies to the replica alone.
func StartReplica(ctx context.Context, primary *Cluster, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("pgcluster: Options.Dir is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, bin: primary.bin, log: log, port: opts.Port, asUser: primary.asUser}
	if c.port == 0 {
		if c.port, err = freePort(); err != nil {
			return nil, err
		}
	}
	if err := c.prepareDir(); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		start := time.Now()
		// -X stream: the WAL written while the copy runs comes along over a second connection, so
		// the copy is consistent on its own. -c fast: start at once with an immediate checkpoint
		// rather than waiting for the next scheduled one.
		args := []string{"-D", data, "-h", "127.0.0.1", "-p", strconv.Itoa(primary.port), "-U", "postgres",
			"-R", "-X", "stream", "-c", "fast", "--no-password"}
		if !opts.Durable {
			args = append(args, "--no-sync")
		}
		if out, err := c.run(ctx, "pg_basebackup", args...); err != nil {
			return nil, fmt.Errorf("pgcluster: pg_basebackup: %w: %s", err, strings.Join(strings.Fields(string(out)), " "))
		}
		log.Info("postgres replica copied", "dir", dir, "primary", primary.URL("postgres"), "took", time.Since(start).Round(time.Millisecond))
	}
	if err := c.stopLeftover(ctx); err != nil {
		return nil, err
	}
	c.settings = serverSettings(c.port, dir, opts)
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Start starts the server again after Stop, on the same port and with the same settings, so
// that connection strings handed out before stay valid (outage tests).
func (c *Cluster) Start(ctx context.Context) error {
	data := filepath.Join(c.dir, "data")
	if out, err := c.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(c.dir, "pg.log"), "-w", "-t", "60", "-o", strings.Join(c.settings, " "), "start"); err != nil {
		return c.startError(err, out)
	}
	c.log.Info("postgres started", "url", c.URL("postgres"))
	return nil
}

// stopLeftover deals with the postmaster.pid of an earlier run that ended without a clean stop.
// pg_ctl stop's fast mode shuts a server that outlived its runner down cleanly (pg_ctl starts
// the server in a session of its own, so killing the runner's process group leaves it running,
// holding the data directory); a pid file whose process is gone, or is no longer a postgres
// server, is removed. The caller owns Dir: no live process of its own may be using the server.
func (c *Cluster) stopLeftover(ctx context.Context) error {
	data := filepath.Join(c.dir, "data")
	pidFile := filepath.Join(data, "postmaster.pid")
	pid, found, err := serverPID(c.dir)
	if !found {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pgcluster: read %s: %w", pidFile, err)
	}
	if pid <= 0 || !isPostgres(pid) {
		c.log.Warn("removing a stale postmaster.pid", "dir", c.dir, "pid", pid)
		if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pgcluster: remove stale %s: %w", pidFile, err)
		}
		return nil
	}
	c.log.Warn("stopping a PostgreSQL server left running by an earlier run", "dir", c.dir, "pid", pid)
	if out, err := c.run(ctx, "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pgcluster: stop the server left running by an earlier run (pid %d): %w: %s", pid, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// isPostgres reports whether pid is a live postgres process. Where /proc exists its command
// line is checked, so a pid reused by another program is not taken for the server.
func isPostgres(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) || !isDir("/proc/self")
	}
	return strings.Contains(string(cmd), "postgres")
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// Running reports whether a server is running on the cluster's data directory (its pid file
// names a live postgres process).
func (c *Cluster) Running() bool { return Running(c.dir) }

// Running reports whether a server is running in the cluster directory dir (what Options.Dir
// was), for callers that only know the directory.
func Running(dir string) bool {
	pid, found, err := serverPID(dir)
	return found && err == nil && pid > 0 && isPostgres(pid)
}

// serverPID reads the pid on the first line of the postmaster.pid in cluster directory dir:
// found is false when there is no such file, and pid is 0 when its first line is not a number.
func serverPID(dir string) (pid int, found bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, true, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ = strconv.Atoi(strings.TrimSpace(first))
	return pid, true, nil
}

// URL returns a connection string for database db.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// Port returns the TCP port the server listens on.
func (c *Cluster) Port() int { return c.port }

// Stop shuts the server down (fast mode: open sessions are terminated).
func (c *Cluster) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.run(ctx, "pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "fast", "-w", "stop")
	if err != nil {
		return fmt.Errorf("pgcluster: pg_ctl stop: %w: %s", err, out)
	}
	c.log.Info("postgres stopped")
	return nil
}

// FindBinaries returns the directory holding initdb and pg_ctl, preferring the newest Debian
// versioned directory.
func FindBinaries() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoBinaries
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

// prepareDir creates the cluster directory and, when running as root, hands it to the postgres
// user and makes every parent traversable (t.TempDir's parents are 0700 root).
func (c *Cluster) prepareDir() error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	if c.asUser == "" {
		return nil
	}
	u, err := user.Lookup(c.asUser)
	if err != nil {
		return fmt.Errorf("pgcluster: running as root needs the %q system user: %w", c.asUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for p := filepath.Dir(c.dir); p != "/" && p != "."; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, st.Mode().Perm()|0o011); err != nil {
				return err
			}
		}
	}
	return filepath.Walk(c.dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func (c *Cluster) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, tool)
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	// pg_ctl's server inherits these descriptors; with pipes the child would keep CombinedOutput
	// waiting forever, so the server's own output goes to its log file (-l) and we only collect
	// pg_ctl's short messages through a temp file.
	f, err := os.CreateTemp("", "pgcluster-*.out")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = c.dir
	runErr := cmd.Run()
	out, _ := os.ReadFile(f.Name())
	return out, runErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startError says in one line why the server did not start: pg_ctl's own words and the server
// log's last complaint, with the log's path for the rest.
func (c *Cluster) startError(err error, out []byte) error {
	logPath := filepath.Join(c.dir, "pg.log")
	logText, _ := os.ReadFile(logPath)
	return fmt.Errorf("pgcluster: pg_ctl start: %w: %s; server log: %s (%s)", err,
		strings.Join(strings.Fields(string(out)), " "), lastComplaint(string(logText)), logPath)
}

// lastComplaint is the server log's last FATAL, PANIC or ERROR line, or its last line when it has
// none: the cause of a failed start is nearly always the last such line.
func lastComplaint(log string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := lines[i]; strings.Contains(l, "FATAL:") || strings.Contains(l, "PANIC:") || strings.Contains(l, "ERROR:") {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Files the stack keeps in its data directory besides the cluster (pg/), the S3 objects
// (s3.bolt) and the keys (api-keys).
const (
	// lockFile is held (flock) for as long as a stack runs on the directory and holds its pid. The
	// kernel drops the lock when the process dies, however it dies, so a lock that can be taken
	// proves that no live stack uses the directory any more.
	lockFile = "stack.lock"
	// instanceFile names the engine instance of the last run, whose worker records and request
	// owners carry that id.
	instanceFile = "instance"
)

// lockDataDir creates DataDir, takes its lock (failing when another live stack holds it) and,
// with Fresh, wipes everything else in it. The lock is released by Stop.
func (st *Stack) lockDataDir(opts Options) error {
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(opts.DataDir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("data directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("data directory %s is in use by another running stack (pid %s); stop it or use another --data", opts.DataDir, strings.TrimSpace(string(b)))
		}
		return fmt.Errorf("data directory lock: %w", err)
	}
	st.closers = append(st.closers, func() { f.Close() })
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if !opts.Fresh {
		return nil
	}
	entries, err := os.ReadDir(opts.DataDir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	for _, e := range entries {
		if e.Name() == lockFile {
			continue
		}
		if err := os.RemoveAll(filepath.Join(opts.DataDir, e.Name())); err != nil {
			return fmt.Errorf("wipe data directory: %w", err)
		}
	}
	return nil
}

// predecessors returns the engine instances of earlier runs on the data directory. Holding the
// lock, the stack knows they are dead.
func (st *Stack) predecessors(opts Options) []string {
	b, err := os.ReadFile(filepath.Join(opts.DataDir, instanceFile))
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// rescuePredecessors returns to pending, at once, what dead runs on this data directory held,
// instead of leaving it to the claim timeout and the stale-worker threshold (a minute each by
// default): requests processing under their instances, and every request claimed before now,
// whose work message died with the dead run's in-memory queue. Batches still validating get
// their lost populate message again. It must run before this stack's
// own dispatch claims anything. Then it records this run's instance for the next start.
//
// A database shared with another live stack (DatabaseURL) may lose that stack's claims this way;
// their messages are then fenced out by the attempt counter, so nothing runs twice.
func (st *Stack) rescuePredecessors(ctx context.Context, opts Options, dead []string) error {
	if len(dead) > 0 {
		now := time.Now()
		for _, id := range dead {
			if err := st.App.Store.StopWorker(ctx, id, now); err != nil {
				return fmt.Errorf("mark earlier run %s stopped: %w", id, err)
			}
		}
		cfg := st.App.Config
		rescued, err := st.App.Store.Rescue(ctx, now, 0, cfg.ProcessingTimeout, cfg.StaleWorker)
		if err != nil {
			return fmt.Errorf("rescue the work of an earlier run: %w", err)
		}
		if len(rescued) > 0 {
			st.log.Warn("rescued requests left claimed or processing by an earlier run", "count", len(rescued), "instances", dead)
		}
		// Populate messages died with the queue too: send them again for batches still validating.
		ids, err := st.App.Store.ValidatingBatches(ctx)
		if err != nil {
			return fmt.Errorf("batches left validating by an earlier run: %w", err)
		}
		for _, id := range ids {
			if err := st.App.Populate.SendPopulate(ctx, id); err != nil {
				return fmt.Errorf("populate %s again: %w", id, err)
			}
		}
		if len(ids) > 0 {
			st.log.Warn("populating again batches left validating by an earlier run", "count", len(ids))
		}
	}
	if opts.Ephemeral {
		return nil
	}
	if err := os.WriteFile(filepath.Join(opts.DataDir, instanceFile), []byte(st.App.Engine.Instance()+"\n"), 0o644); err != nil {
		return fmt.Errorf("record instance: %w", err)
	}
	return nil
}

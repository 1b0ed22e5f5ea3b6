package main

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// waitSampler samples pg_stat_activity every interval (default 50 ms) and counts what the
// database's active backends were doing: running on CPU ("CPU") or waiting, by wait event
// (Lock/tuple, Client/ClientRead, …). A backend seen waiting on a lock in many samples is where
// requests queue; this is how the method's reference harness attributes queue slowdowns.
type waitSampler struct {
	mu      sync.Mutex
	counts  map[string]int
	samples int
	active  int
	stop    context.CancelFunc
	done    chan struct{}
}

// WaitProfile is the share of sampled active backends in each state.
type WaitProfile struct {
	Samples          int                `json:"samples"`
	MeanActive       float64            `json:"mean_active_backends"`
	ShareByWaitEvent map[string]float64 `json:"share_by_wait_event"`
}

// waitSampleQuery is one sample (not counted as the system's database work).
const waitSampleQuery = `SELECT coalesce(wait_event_type || '/' || wait_event, 'CPU')
	FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()`

func startWaitSampler(ctx context.Context, dbURL string, every time.Duration) (*waitSampler, error) {
	if every <= 0 {
		every = 50 * time.Millisecond
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	w := &waitSampler{counts: map[string]int{}, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer conn.Close(context.Background())
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			rows, err := conn.Query(sctx, waitSampleQuery)
			if err != nil {
				continue
			}
			evs, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				continue
			}
			w.mu.Lock()
			w.samples++
			w.active += len(evs)
			for _, e := range evs {
				w.counts[e]++
			}
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// Stop ends the sampling and returns the profile.
func (w *waitSampler) Stop() WaitProfile {
	w.stop()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	p := WaitProfile{Samples: w.samples, ShareByWaitEvent: map[string]float64{}}
	if w.samples > 0 {
		p.MeanActive = round3(float64(w.active) / float64(w.samples))
	}
	keys := make([]string, 0, len(w.counts))
	for k := range w.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if w.active > 0 {
			p.ShareByWaitEvent[k] = round3(float64(w.counts[k]) / float64(w.active))
		}
	}
	return p
}

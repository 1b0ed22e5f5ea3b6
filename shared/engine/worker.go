package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/upstream"
)

// Process executes claimed requests concurrently and returns one error per input (nil when the
// message may be deleted). A duplicate or stale delivery is acknowledged without calling the
// upstream. An error means the message should come back (for example the database was
// unreachable before the request started); the fenced writes make the redelivery harmless.
//
// Each delivered request occupies a slot of its model, and a slot does not end with its request:
// the statement that records a result also claims the next request for the slot (see
// Engine.finish), which then runs in this invocation, until the slot finds no work, the
// invocation has run for LoopFor or has less than RefillReserve left. Only then is the slot given
// back to the work queue (a dispatch), so the queue is the kick-off, the safety net and the fan-out,
// not the path of every request.
//
// While requests run, a watcher polls every CancelPollEvery for requests that were cancelled (one
// by one, or with their batch) or whose batch expired, and aborts their upstream calls.
func (e *Engine) Process(ctx context.Context, work []domain.Work) []error {
	errs := make([]error, len(work))
	stop := e.beat(ctx)
	defer stop()
	inv := &invocation{ctx: ctx, started: time.Now(), watch: newWatcher()}
	wctx, cancelWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		e.watch(wctx, inv.watch)
	}()
	for i, item := range work {
		inv.wg.Add(1)
		go func() {
			defer inv.wg.Done()
			errs[i] = e.processOne(ctx, item, inv)
		}()
	}
	inv.wg.Wait()
	cancelWatch()
	<-watchDone
	return errs
}

// invocation is what the slots of one Process call share: its context, its start, the watcher
// that aborts their calls, and the wait group Process waits on (slots, and the follow-up work of
// the groups their results were written in).
type invocation struct {
	ctx     context.Context
	started time.Time
	watch   *watcher
	wg      sync.WaitGroup
}

// go runs f as part of the invocation: Process does not return before it ends.
func (inv *invocation) spawn(f func()) {
	inv.wg.Add(1)
	go func() {
		defer inv.wg.Done()
		f()
	}()
}

// refills reports whether a slot of inv that frees now takes the next request: the invocation is
// live, has run for less than LoopFor, and has at least RefillReserve left (a call started later
// might be cut off by the invocation's end). Real time, as contexts' deadlines are.
func (e *Engine) refills(inv *invocation) bool {
	if inv.ctx.Err() != nil || time.Since(inv.started) >= e.cfg.LoopFor {
		return false
	}
	dl, ok := inv.ctx.Deadline()
	return !ok || time.Until(dl) >= e.cfg.RefillReserve
}

func (e *Engine) processOne(ctx context.Context, w domain.Work, inv *invocation) error {
	job, err := e.store.StartProcessing(ctx, w, e.cfg.Instance, e.now())
	if errors.Is(err, domain.ErrStateConflict) {
		e.log.DebugContext(ctx, "dropping duplicate or stale delivery", "request_id", w.RequestID, "attempt", w.Attempt)
		return nil
	}
	if err != nil {
		return err
	}
	return e.runSlot(ctx, job, inv)
}

// runSlot runs job, then every request the slot is refilled with. Only the delivered request's
// failure to persist is returned (its message comes back; the fence makes that a no-op): a
// refilled request has no message, and rescue returns its row.
func (e *Engine) runSlot(ctx context.Context, job domain.Job, inv *invocation) error {
	var freed time.Time // when the slot's previous call ended; zero for the delivered request
	for first := true; ; first = false {
		if !freed.IsZero() {
			e.met.RefillGap(job.Model, time.Since(freed))
		}
		out := e.run(ctx, job, inv.watch)
		freed = time.Now()
		res := e.finish(ctx, out, inv)
		if res.err != nil {
			// The row stays processing; rescue returns it after the processing timeout or once this
			// worker's heartbeat stops.
			err := fmt.Errorf("persist %s: %w", job.RequestID, res.err)
			if first {
				return err
			}
			e.log.WarnContext(ctx, "result left to rescue", "err", err)
			return nil
		}
		if !res.won {
			e.log.InfoContext(ctx, "result fenced out: request was rescued meanwhile", "request_id", job.RequestID, "attempt", job.Attempt)
		}
		if res.next == nil {
			return nil
		}
		job = *res.next
	}
}

// run executes job, turning an abort by the watcher into the outcome it asked for.
func (e *Engine) run(ctx context.Context, job domain.Job, watch *watcher) domain.Outcome {
	callCtx, abort := watch.add(ctx, job.RequestID)
	defer abort()
	out := e.execute(callCtx, job)
	if a, aborted := watch.remove(job.RequestID); aborted && out.State != domain.StateCompleted {
		// Stopped on purpose. A response that arrived before the abort is kept (completed wins).
		out = domain.Outcome{Work: job.Work, Model: out.Model, State: a.State, ErrorCode: a.Code,
			ErrorMessage: abortMessage(a.Code), RoutedModel: out.RoutedModel}
	}
	return out
}

// followUp returns the context of one step of the work that follows a persisted result. That work
// must run even if the invocation is being cut short, so it is detached from ctx's cancellation,
// but bounded by PersistMargin from the step's start and by ctx's deadline (the invocation's).
// Each step gets its own bound: the refill may take all of one (it also serves the refills other
// requests asked of it meanwhile), and a finalisation left with none would wait for maintenance.
func (e *Engine) followUp(ctx context.Context) (context.Context, context.CancelFunc) {
	bound := time.Now().Add(e.cfg.PersistMargin)
	if dl, ok := ctx.Deadline(); ok && dl.Before(bound) {
		bound = dl
	}
	return context.WithDeadline(context.WithoutCancel(ctx), bound)
}

// persist writes a group of outcomes of refill.Model's slots with the fenced FinishAndClaim,
// claiming refill.Max replacements in the same transaction, and returns the outcomes that won and
// the claimed requests. The result must be written even if the invocation is being cut short, so
// ctx's cancellation is ignored; each try is bounded by PersistMargin. A write that failed because
// the database could not be reached is tried again with back-off (PersistRetry) until until, and
// only then left to rescue. A fenced-out write (no row won) is final.
//
// Every try writes the same time: a try whose commit went through unacknowledged fences out the
// next one's finishes, which FinishLanded then recognises as this group's rather than a rescue's,
// and its claims, which AdoptClaims finds by that time and owner.
func (e *Engine) persist(ctx context.Context, outs []domain.Outcome, refill domain.Refill, until time.Time) ([]domain.Finished, []domain.Job, error) {
	now := e.now()
	base := context.WithoutCancel(ctx)
	uncertain := false // an earlier try failed on the connection and may have committed
	for try := 0; ; try++ {
		bound := time.Now().Add(e.cfg.PersistMargin)
		if try > 0 && bound.After(until) {
			bound = until
		}
		tctx, cancel := context.WithDeadline(base, bound)
		won, jobs, err := e.store.FinishAndClaim(tctx, outs, refill, now)
		if err == nil && uncertain {
			won, jobs, err = e.landed(tctx, outs, refill, now)
		}
		cancel()
		if err == nil || !e.store.Transient(err) {
			return won, jobs, err
		}
		uncertain = true
		e.rndMu.Lock()
		delay := e.cfg.PersistRetry.Backoff(try, 0, e.rnd)
		e.rndMu.Unlock()
		if !time.Now().Add(delay).Before(until) {
			return nil, nil, fmt.Errorf("database unreachable for %d tries: %w", try+1, err)
		}
		e.log.WarnContext(ctx, "persist results: database unreachable, retrying", "model", refill.Model, "results", len(outs),
			"try", try+1, "retry_in", delay, "err", err)
		time.Sleep(delay)
	}
}

// landed reads back what the tries of one group at now wrote, after one of them may have committed
// unacknowledged: the outcomes that landed and the requests claimed for the group's slots.
func (e *Engine) landed(ctx context.Context, outs []domain.Outcome, refill domain.Refill, now time.Time) ([]domain.Finished, []domain.Job, error) {
	won, err := e.store.FinishLanded(ctx, outs, now)
	if err != nil || refill.Max <= 0 {
		return won, nil, err
	}
	jobs, err := e.store.AdoptClaims(ctx, refill.Owner, refill.Model, now)
	return won, jobs, err
}

// rewriteModel replaces the top-level "model" of a JSON object body, keeping everything else.
func rewriteModel(body []byte, model string) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, err
	}
	m, _ := json.Marshal(model)
	doc["model"] = m
	return json.Marshal(doc)
}

func abortMessage(code string) string {
	switch code {
	case domain.CodeBatchExpired:
		return "This request could not be executed before the completion window expired."
	case domain.CodeBatchCancelled:
		return "This request was cancelled with its batch before it completed."
	}
	return "This request was cancelled before it completed."
}

// watcher tracks the running requests of one invocation so they can be aborted.
type watcher struct {
	mu      sync.Mutex
	running map[string]context.CancelFunc
	aborted map[string]domain.Abort
}

func newWatcher() *watcher {
	return &watcher{running: map[string]context.CancelFunc{}, aborted: map[string]domain.Abort{}}
}

func (w *watcher) add(ctx context.Context, id string) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	w.running[id] = cancel
	w.mu.Unlock()
	return c, cancel
}

func (w *watcher) remove(id string) (domain.Abort, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.running, id)
	a, ok := w.aborted[id]
	delete(w.aborted, id)
	return a, ok
}

func (w *watcher) ids() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.running))
	for id := range w.running {
		out = append(out, id)
	}
	return out
}

func (w *watcher) abort(a domain.Abort) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if cancel, ok := w.running[a.RequestID]; ok {
		w.aborted[a.RequestID] = a
		cancel()
	}
}

// watch polls for cancel marks on the running requests until ctx ends.
func (e *Engine) watch(ctx context.Context, w *watcher) {
	t := time.NewTicker(e.cfg.CancelPollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ids := w.ids()
		if len(ids) == 0 {
			continue
		}
		marks, err := e.store.CancelMarks(ctx, ids)
		if err != nil {
			if ctx.Err() == nil {
				e.log.WarnContext(ctx, "poll cancellations", "err", err)
			}
			continue
		}
		for _, m := range marks {
			e.log.InfoContext(ctx, "aborting request", "request_id", m.RequestID, "reason", m.Code)
			w.abort(m)
		}
	}
}

// Batch fields go upstream as batchHeaderPrefix + the field name with hyphens for underscores, as
// fusillade's batch_metadata_fields do (its default set: id, endpoint, created-at,
// completion-window); proxies in front of the upstream key billing and analytics on them.
const (
	batchHeaderPrefix = "x-fusillade-batch-"
	// batchHeaderTimeLayout is fusillade's header timestamp: UTC, microseconds, a literal Z
	// (YYYY-MM-DDTHH:MM:SS.ffffffZ), always six digits so the values sort as text.
	batchHeaderTimeLayout = "2006-01-02T15:04:05.000000Z"
)

// execute calls the upstream and turns the result into the outcome to persist.
func (e *Engine) execute(ctx context.Context, job domain.Job) domain.Outcome {
	// A keyed request's result also ends the pending requests that share its key, unless it was
	// escalated: its answer then comes from the fallback model, which the others did not name.
	out := domain.Outcome{Work: job.Work, Model: job.Model, Coalesce: job.Coalesce && job.RoutedModel == ""}
	model, err := e.models.get(ctx, job.Model)
	if err != nil {
		return e.retryOrFail(job, out, domain.CodeModelUnavailable, "model lookup failed", 0)
	}
	if model == nil {
		out.State, out.ErrorCode = domain.StateFailed, domain.CodeModelNotFound
		out.ErrorMessage = fmt.Sprintf("Model %q is no longer configured.", job.Model)
		return out
	}
	key, err := e.creds.Resolve(ctx, model.CredentialRef)
	if err != nil {
		e.log.ErrorContext(ctx, "resolve credential", "model", job.Model, "err", err)
		if domain.ErrorCode(err) == domain.EInvalid {
			// The stored reference is not an allowed form (written before references were checked,
			// or by hand): it will never resolve, so the line fails now instead of at its deadline.
			out.State, out.ErrorCode = domain.StateFailed, domain.CodeCredentialRefNotAllowed
			out.ErrorMessage = fmt.Sprintf("Model %q has a credential reference that is not allowed; an administrator must set it again.", job.Model)
			return out
		}
		return e.retryOrFail(job, out, domain.CodeCredentialUnavailable, "the upstream credential could not be resolved", 0)
	}
	body := job.Body
	if job.RoutedModel != "" {
		// Escalated near the deadline: the fallback model serves it, so the body must name it.
		out.RoutedModel = job.RoutedModel
		if body, err = rewriteModel(job.Body, job.Model); err != nil {
			out.State, out.ErrorCode, out.ErrorMessage = domain.StateFailed, domain.CodeInvalidBody, "the request body could not be routed to the fallback model"
			return out
		}
	}
	call := upstream.Call{
		BaseURL:   model.BaseURL,
		Path:      job.Path,
		APIKey:    key,
		Body:      body,
		RequestID: job.RequestID,
		CustomID:  job.CustomID,
		Headers: map[string]string{
			batchHeaderPrefix + "id":                job.BatchID,
			batchHeaderPrefix + "endpoint":          job.BatchEndpoint,
			batchHeaderPrefix + "created-at":        job.BatchCreatedAt.UTC().Format(batchHeaderTimeLayout),
			batchHeaderPrefix + "completion-window": job.CompletionWindow,
		},
	}
	if v := job.Metadata[domain.AnthropicVersionKey]; v != "" && job.Path == upstream.MessagesPath {
		// The anthropic-version the message batch was created with; the client sends the
		// default when there is none, and drops a value that is not header-safe.
		call.Headers[upstream.HeaderAnthropicVersion] = v
	}
	for _, k := range e.cfg.MetadataHeaders {
		// Forwarded for upstream routing and analytics; a value that is not header-safe is
		// dropped by the client rather than failing the request.
		if v, ok := job.Metadata[k]; ok {
			call.Headers[batchHeaderPrefix+strings.ReplaceAll(k, "_", "-")] = v
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		call.Deadline = dl.Add(-e.cfg.PersistMargin)
	}
	e.met.InFlight(job.Model, 1)
	t0 := time.Now()
	res := e.up.Do(ctx, call)
	e.met.UpstreamLatency(job.Model, time.Since(t0))
	e.met.InFlight(job.Model, -1)
	out.StatusCode, out.UpstreamRequestID = res.StatusCode, res.UpstreamRequestID
	if !res.Answered() {
		// A status line without its answer (over the cap, a body that stalled or broke off) is a
		// failure without an HTTP response: its error line carries the code, not a bare status.
		out.StatusCode, res.Body = 0, nil
	}
	switch res.Verdict {
	case upstream.Success:
		out.State, out.Body = domain.StateCompleted, res.Body
		return out
	case upstream.Retriable:
		out.Body = res.Body
		return e.retryOrFail(job, out, res.Code, res.Message, res.RetryAfter)
	default:
		if res.Code == upstream.CodeCanceled {
			// Our own invocation is ending: not the request's fault, run it again.
			return e.retryOrFail(job, out, res.Code, res.Message, 0)
		}
		out.State, out.Body = domain.StateFailed, res.Body
		out.Rejected = out.StatusCode >= 400 && out.StatusCode < 500
		if out.StatusCode == 0 {
			out.ErrorCode, out.ErrorMessage = res.Code, res.Message
		}
		return out
	}
}

// retryOrFail schedules a retry when the policy allows it, or fails the request keeping the last
// response (an HTTP failure goes to the error file with its status and body).
func (e *Engine) retryOrFail(job domain.Job, out domain.Outcome, code, msg string, retryAfter time.Duration) domain.Outcome {
	e.rndMu.Lock()
	nb, ok := e.cfg.Retry.Next(job.Retries, retryAfter, e.now(), job.BatchExpiresAt, e.rnd)
	e.rndMu.Unlock()
	if ok {
		out.State, out.NotBefore = domain.StatePending, nb
		out.ErrorCode, out.ErrorMessage = code, msg
		return out
	}
	out.State = domain.StateFailed
	if out.StatusCode == 0 {
		out.ErrorCode, out.ErrorMessage = code, msg
	}
	return out
}

// beat records this instance's liveness for the length of an invocation.
func (e *Engine) beat(ctx context.Context) (stop func()) {
	e.invocations.Add(1)
	// The record only needs to be fresher than StaleWorker: skip the write when a recent one
	// exists, so that it costs nothing on the path of a refilled slot.
	if time.Duration(e.now().UnixNano()-e.lastBeat.Load()) > e.cfg.HeartbeatEvery/2 {
		e.heartbeat(ctx)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(e.cfg.HeartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				e.heartbeat(ctx)
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func (e *Engine) heartbeat(ctx context.Context) {
	rec := domain.WorkerRecord{ID: e.cfg.Instance, Function: e.cfg.Function, Invocations: e.invocations.Load(),
		Processed: e.processed.Load(), Failed: e.failed.Load()}
	now := e.now()
	if err := e.store.Heartbeat(ctx, rec, now); err != nil {
		e.log.WarnContext(ctx, "heartbeat", "err", err)
		return
	}
	e.lastBeat.Store(now.UnixNano())
}

// Stop marks this instance stopped so that rescue can take anything it still held at once (the
// Lambda runtime calls this on SIGTERM).
func (e *Engine) Stop(ctx context.Context) {
	if err := e.store.StopWorker(ctx, e.cfg.Instance, e.now()); err != nil {
		e.log.WarnContext(ctx, "stop worker record", "err", err)
	}
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// modelCache keeps the models table for a few seconds: a worker needs a model's base URL and
// credential reference for every request, and they change rarely.
type modelCache struct {
	store Store
	ttl   time.Duration
	now   func() time.Time

	mu     sync.Mutex
	at     time.Time
	models map[string]domain.Model
}

// get returns the model, nil when it is not configured.
func (c *modelCache) get(ctx context.Context, name string) (*domain.Model, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.models[name]
	if c.models == nil || c.now().Sub(c.at) > c.ttl || !ok {
		list, err := c.store.ListModels(ctx)
		if err != nil {
			return nil, err
		}
		c.models = make(map[string]domain.Model, len(list))
		for _, x := range list {
			c.models[x.Name] = x
		}
		c.at = c.now()
		m, ok = c.models[name]
	}
	if !ok {
		return nil, nil
	}
	return &m, nil
}

package fakesqs

import (
	"container/heap"
	"container/list"
	"sync"
	"time"
)

// maxVisibilityWindow is how long after a receive a message may be kept
// invisible in total: ChangeMessageVisibility cannot push the deadline past
// 12 hours from the receive.
const maxVisibilityWindow = 12 * time.Hour

// queue is one standard queue. Every message lives in exactly one of three
// structures, so each operation costs O(log n) per message touched rather
// than O(n) per call:
//
//   - visible: a list in delivery order (enqueue order; messages whose
//     visibility timeout expires go to the back),
//   - delayed: a min-heap of messages still within their delivery delay,
//   - inflight: a min-heap of received messages keyed by visibility deadline.
//
// retention is a second min-heap over all messages keyed by send time, so
// expired messages are found without scanning.
type queue struct {
	name    string
	arn     string
	created time.Time

	mu        sync.Mutex
	deleted   bool
	cfg       queueConfig
	modified  time.Time
	tags      map[string]string
	visible   list.List
	delayed   timedHeap
	inflight  timedHeap
	retention retentionHeap
	byID      map[string]*message
	waiters   list.List // *waiter, oldest first
}

func newQueue(name, arn string, cfg queueConfig, now time.Time) *queue {
	return &queue{
		name:     name,
		arn:      arn,
		created:  now,
		cfg:      cfg,
		modified: now,
		byID:     make(map[string]*message),
	}
}

// setConfigLocked installs a new configuration.
func (q *queue) setConfigLocked(cfg queueConfig, now time.Time) {
	q.cfg = cfg
	q.modified = now
}

// advanceLocked brings the queue up to date with the clock: it drops
// messages past the retention period and makes delayed and in-flight
// messages whose time has come visible, waking one waiter per message.
// Every operation calls it first, so expiry needs no background goroutine.
func (q *queue) advanceLocked(now time.Time) {
	keep := time.Duration(q.cfg.retentionPeriod) * time.Second
	for len(q.retention) > 0 && !now.Before(q.retention[0].sent.Add(keep)) {
		q.removeLocked(q.retention[0])
	}
	n := 0
	for len(q.delayed) > 0 && !now.Before(q.delayed[0].at) {
		q.pushVisibleLocked(heap.Pop(&q.delayed).(*message))
		n++
	}
	for len(q.inflight) > 0 && !now.Before(q.inflight[0].at) {
		q.pushVisibleLocked(heap.Pop(&q.inflight).(*message))
		n++
	}
	q.kickLocked(n)
}

func (q *queue) pushVisibleLocked(m *message) {
	m.state = stateVisible
	m.elem = q.visible.PushBack(m)
}

// pushTimedLocked parks m in h until at. If m becomes the earliest deadline
// a waiter is woken so that it re-arms its timer for the sooner time.
func (q *queue) pushTimedLocked(h *timedHeap, m *message, state msgState, at time.Time) {
	m.state = state
	m.at = at
	heap.Push(h, m)
	if m.timedIdx == 0 {
		q.kickLocked(1)
	}
}

// addLocked stores a new (or redriven) message. The caller has set m.sent.
func (q *queue) addLocked(m *message, now time.Time, delay time.Duration) {
	q.byID[m.id] = m
	heap.Push(&q.retention, m)
	if delay > 0 {
		q.pushTimedLocked(&q.delayed, m, stateDelayed, now.Add(delay))
		return
	}
	q.pushVisibleLocked(m)
	q.kickLocked(1)
}

// detachLocked unlinks m from whichever structure holds it.
func (q *queue) detachLocked(m *message) {
	switch m.state {
	case stateVisible:
		q.visible.Remove(m.elem)
		m.elem = nil
	case stateDelayed:
		heap.Remove(&q.delayed, m.timedIdx)
	case stateInflight:
		heap.Remove(&q.inflight, m.timedIdx)
	}
	m.state = stateGone
}

// removeLocked forgets m entirely.
func (q *queue) removeLocked(m *message) {
	q.detachLocked(m)
	heap.Remove(&q.retention, m.retIdx)
	delete(q.byID, m.id)
}

// delivery is a snapshot of a received message taken under the queue lock,
// so that the response can be rendered after the lock is released.
type delivery struct {
	m            *message // only immutable payload fields are read
	handle       string
	receiveCount int
	firstReceive time.Time
	dlqSourceARN string
}

// takeLocked receives up to max visible messages, making them invisible for
// vt. If rp is not nil, visible messages that have already been received
// rp.maxReceiveCount times are removed and returned in moved instead, for
// the caller to hand to the dead-letter queue once this lock is released.
func (q *queue) takeLocked(now time.Time, max int, vt time.Duration, rp *redrivePolicy) (out []delivery, moved []*message) {
	var immediate []*message // vt == 0: visible again at once, after this call
	for len(out) < max {
		e := q.visible.Front()
		if e == nil {
			break
		}
		m := e.Value.(*message)
		if rp != nil && m.receiveCount >= rp.maxReceiveCount {
			q.removeLocked(m)
			m.dlqSourceARN = q.arn
			moved = append(moved, m)
			continue
		}
		q.visible.Remove(e)
		m.elem = nil
		m.receiveCount++
		if m.firstReceive.IsZero() {
			m.firstReceive = now
		}
		m.lastReceive = now
		if vt > 0 {
			q.pushTimedLocked(&q.inflight, m, stateInflight, now.Add(vt))
		} else {
			m.state = stateGone // parked in immediate below
			immediate = append(immediate, m)
		}
		out = append(out, delivery{
			m:            m,
			handle:       encodeReceipt(receipt{queue: q.name, id: m.id, count: m.receiveCount}),
			receiveCount: m.receiveCount,
			firstReceive: m.firstReceive,
			dlqSourceARN: m.dlqSourceARN,
		})
	}
	for _, m := range immediate {
		q.pushVisibleLocked(m)
	}
	return out, moved
}

// acceptMoved hands messages redriven from a source queue to q, the
// dead-letter queue. The source lock must not be held: two queue locks are
// never held at once, so redrive cycles cannot deadlock. Messages arriving
// after q was deleted are dropped.
func (q *queue) acceptMoved(ms []*message) {
	if q == nil || len(ms) == 0 {
		return
	}
	q.mu.Lock()
	if !q.deleted {
		q.acceptMovedLocked(ms)
	}
	q.mu.Unlock()
}

// acceptMovedLocked adds messages redriven from a source queue. They keep
// their id, send time and receive count, as on AWS, and are visible at once.
func (q *queue) acceptMovedLocked(ms []*message) {
	for _, m := range ms {
		if _, dup := q.byID[m.id]; dup {
			continue
		}
		q.byID[m.id] = m
		heap.Push(&q.retention, m)
		q.pushVisibleLocked(m)
	}
	q.kickLocked(len(ms))
}

// deleteLocked deletes the message r refers to. Handles of messages that
// are already gone, or from an earlier receive of a message that has been
// received again since, are accepted and do nothing, as on AWS.
func (q *queue) deleteLocked(r receipt) {
	m := q.byID[r.id]
	if m == nil || m.receiveCount != r.count {
		return
	}
	q.removeLocked(m)
}

// changeVisibilityLocked sets the visibility deadline of the in-flight
// message r refers to, to now+vt. vt == 0 makes it visible immediately.
func (q *queue) changeVisibilityLocked(r receipt, handle string, vt int, now time.Time) error {
	m := q.byID[r.id]
	if m != nil && m.receiveCount > r.count {
		return nil // stale handle: the message was received again since
	}
	if m == nil || m.receiveCount != r.count || m.state != stateInflight {
		return errInvalidParameter("Value %s for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change.", handle)
	}
	at := now.Add(time.Duration(vt) * time.Second)
	if at.After(m.lastReceive.Add(maxVisibilityWindow)) {
		return errInvalidParameter("Value %d for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for the message is beyond the limit [43200 seconds].", vt)
	}
	if vt == 0 {
		heap.Remove(&q.inflight, m.timedIdx)
		q.pushVisibleLocked(m)
		q.kickLocked(1)
		return nil
	}
	m.at = at
	heap.Fix(&q.inflight, m.timedIdx)
	if m.timedIdx == 0 {
		q.kickLocked(1)
	}
	return nil
}

// purgeLocked deletes every message.
func (q *queue) purgeLocked() {
	for _, m := range q.byID {
		m.state = stateGone
		m.elem = nil
	}
	q.visible.Init()
	q.delayed = nil
	q.inflight = nil
	q.retention = nil
	q.byID = make(map[string]*message)
}

// nextDeadlineLocked is the earliest time a delayed or in-flight message
// becomes visible.
func (q *queue) nextDeadlineLocked() (time.Time, bool) {
	var t time.Time
	ok := false
	if len(q.delayed) > 0 {
		t, ok = q.delayed[0].at, true
	}
	if len(q.inflight) > 0 && (!ok || q.inflight[0].at.Before(t)) {
		t, ok = q.inflight[0].at, true
	}
	return t, ok
}

// Long-polling receivers that find nothing register a waiter and sleep on
// its channel. Producers of visible messages wake one waiter per message
// rather than all of them, so dozens of idle pollers do not stampede on
// every send.
type waiter struct {
	ch   chan struct{} // buffered(1); receives at most one kick
	elem *list.Element // nil once kicked or removed
}

func (q *queue) addWaiterLocked() *waiter {
	w := &waiter{ch: make(chan struct{}, 1)}
	w.elem = q.waiters.PushBack(w)
	return w
}

func (q *queue) removeWaiterLocked(w *waiter) {
	if w.elem != nil {
		q.waiters.Remove(w.elem)
		w.elem = nil
	}
}

// kickLocked wakes up to n waiters, oldest first.
func (q *queue) kickLocked(n int) {
	for ; n > 0 && q.waiters.Len() > 0; n-- {
		w := q.waiters.Remove(q.waiters.Front()).(*waiter)
		w.elem = nil
		w.ch <- struct{}{}
	}
}

// timedHeap orders messages by the time they become visible.
type timedHeap []*message

func (h timedHeap) Len() int           { return len(h) }
func (h timedHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timedHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].timedIdx = i
	h[j].timedIdx = j
}
func (h *timedHeap) Push(x any) {
	m := x.(*message)
	m.timedIdx = len(*h)
	*h = append(*h, m)
}
func (h *timedHeap) Pop() any {
	old := *h
	n := len(old)
	m := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	m.timedIdx = -1
	return m
}

// retentionHeap orders messages by send time, oldest first.
type retentionHeap []*message

func (h retentionHeap) Len() int           { return len(h) }
func (h retentionHeap) Less(i, j int) bool { return h[i].sent.Before(h[j].sent) }
func (h retentionHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].retIdx = i
	h[j].retIdx = j
}
func (h *retentionHeap) Push(x any) {
	m := x.(*message)
	m.retIdx = len(*h)
	*h = append(*h, m)
}
func (h *retentionHeap) Pop() any {
	old := *h
	n := len(old)
	m := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	m.retIdx = -1
	return m
}

package fakesqs

import "sync/atomic"

// BilledChunk is the request size SQS bills as one request: a call of up to 64 KiB is one
// billed request and every further started 64 KiB one more, so a SendMessageBatch of ten small
// messages is one request, as is an empty long poll.
const BilledChunk = 64 << 10

// RequestCount is what the server saw of one action since it started.
type RequestCount struct {
	// Calls are the requests received for the action, failed ones and long polls the client
	// hung up on included (AWS bills those too).
	Calls int64
	// Billed is Calls in SQS billing units: one per started BilledChunk of the request body. The
	// body is the JSON the client sent, a little more than the payload AWS meters; for messages
	// well under 64 KiB the two counts are the same.
	Billed int64
	// Empty counts, for ReceiveMessage only, the calls that answered with no message (idle long
	// polls).
	Empty int64
}

// opCounter is one action's counters; the map of them is built in New and never changes.
type opCounter struct {
	calls, billed, empty atomic.Int64
}

func newCounters() map[string]*opCounter {
	out := make(map[string]*opCounter, len(handlers))
	for op := range handlers {
		out[op] = &opCounter{}
	}
	return out
}

// count records one request for op with a body of n bytes; an action the server does not
// implement is not counted.
func (s *Server) count(op string, n int) {
	c := s.requests[op]
	if c == nil {
		return
	}
	c.calls.Add(1)
	c.billed.Add(int64(max(1, (n+BilledChunk-1)/BilledChunk)))
}

// countEmptyReceive records a ReceiveMessage that answered with no message.
func (s *Server) countEmptyReceive() { s.requests["ReceiveMessage"].empty.Add(1) }

// Requests returns the requests received so far, by action (only actions seen at least once).
// A caller measuring a window subtracts one snapshot from another.
func (s *Server) Requests() map[string]RequestCount {
	out := map[string]RequestCount{}
	for op, c := range s.requests {
		if n := c.calls.Load(); n > 0 {
			out[op] = RequestCount{Calls: n, Billed: c.billed.Load(), Empty: c.empty.Load()}
		}
	}
	return out
}

package fakesqs

// Waiters reports how many receives are currently long polling on the named
// queue, so tests can wait for a poller to be parked instead of sleeping.
func (s *Server) Waiters(name string) int {
	q := s.lookup(name)
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.waiters.Len()
}

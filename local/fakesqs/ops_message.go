package fakesqs

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Message operations.

const (
	maxBatchEntries = 10
	// maxBatchPayload is the limit on the summed size of all messages in
	// one SendMessageBatch.
	maxBatchPayload = 1048576
	maxDelaySeconds = 900
	maxWaitSeconds  = 20
	maxVisibility   = 43200
	maxReceiveBatch = 10
)

type sendEntry struct {
	Id                      string
	MessageBody             *string
	DelaySeconds            *int
	MessageAttributes       map[string]msgAttr
	MessageSystemAttributes map[string]msgAttr
	MessageDeduplicationId  *string
	MessageGroupId          *string
}

// prepare validates a send request and builds the message. The queue's
// maximum message size is checked later, under the queue lock.
func (e *sendEntry) prepare() (*message, error) {
	if e.MessageBody == nil || *e.MessageBody == "" {
		return nil, errMissingParameter("MessageBody")
	}
	if err := validateText(*e.MessageBody); err != nil {
		return nil, errInvalidMessageContents(err.Error())
	}
	if e.DelaySeconds != nil && (*e.DelaySeconds < 0 || *e.DelaySeconds > maxDelaySeconds) {
		return nil, errInvalidParameter("Value %d for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900.", *e.DelaySeconds)
	}
	if e.MessageDeduplicationId != nil {
		return nil, errInvalidParameter("Value %s for parameter MessageDeduplicationId is invalid. Reason: The request include parameter that is not valid for this queue type.", *e.MessageDeduplicationId)
	}
	attrSize, err := validateMessageAttributes(e.MessageAttributes, false)
	if err != nil {
		return nil, err
	}
	sysSize, err := validateMessageAttributes(e.MessageSystemAttributes, true)
	if err != nil {
		return nil, err
	}
	m := &message{
		id:       newUUID(),
		body:     *e.MessageBody,
		bodyMD5:  md5Hex(*e.MessageBody),
		attrs:    cleanAttrs(e.MessageAttributes),
		sysAttrs: cleanAttrs(e.MessageSystemAttributes),
		size:     len(*e.MessageBody) + attrSize + sysSize,
	}
	m.attrsMD5 = md5OfAttributes(m.attrs)
	if e.MessageGroupId != nil {
		m.groupID = *e.MessageGroupId
	}
	return m, nil
}

// cleanAttrs copies attributes keeping only the value member that matches
// each data type, so that what is returned is exactly what was checksummed.
func cleanAttrs(in map[string]msgAttr) map[string]msgAttr {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]msgAttr, len(in))
	for k, v := range in {
		a := msgAttr{DataType: v.DataType}
		if v.baseType() == "Binary" {
			a.BinaryValue = v.BinaryValue
		} else {
			a.StringValue = v.StringValue
		}
		out[k] = a
	}
	return out
}

// enqueueLocked stores a prepared message; the caller has advanced q.
func (q *queue) enqueueLocked(m *message, delay *int, now time.Time) error {
	if m.size > q.cfg.maxMessageSize {
		return errInvalidParameter("One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", q.cfg.maxMessageSize)
	}
	d := q.cfg.delaySeconds
	if delay != nil {
		d = *delay
	}
	m.sent = now
	q.addLocked(m, now, time.Duration(d)*time.Second)
	return nil
}

type sendResult struct {
	MessageId                    string
	MD5OfMessageBody             string
	MD5OfMessageAttributes       string `json:",omitempty"`
	MD5OfMessageSystemAttributes string `json:",omitempty"`
}

func newSendResult(m *message) sendResult {
	return sendResult{
		MessageId:                    m.id,
		MD5OfMessageBody:             m.bodyMD5,
		MD5OfMessageAttributes:       m.attrsMD5,
		MD5OfMessageSystemAttributes: md5OfAttributes(m.sysAttrs),
	}
}

func (s *Server) sendMessage(_ *http.Request, body []byte) (any, error) {
	var in struct {
		QueueUrl string
		sendEntry
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	q, err := s.lookupURL(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	m, err := in.prepare()
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return nil, errQueueDoesNotExist()
	}
	now := s.now()
	q.advanceLocked(now)
	if err := q.enqueueLocked(m, in.DelaySeconds, now); err != nil {
		return nil, err
	}
	return newSendResult(m), nil
}

type batchResultError struct {
	Id          string
	Code        string
	Message     string
	SenderFault bool
}

func entryError(id string, err error) batchResultError {
	var ae *apiError
	if !errors.As(err, &ae) {
		return batchResultError{Id: id, Code: "InternalError", Message: err.Error()}
	}
	return batchResultError{Id: id, Code: ae.queryCode, Message: ae.message, SenderFault: ae.senderFault()}
}

// validateBatch applies the request-level rules shared by all batch
// operations: 1 to 10 entries with well-formed, distinct ids.
func validateBatch(ids []string) error {
	if len(ids) == 0 {
		return errEmptyBatch()
	}
	if len(ids) > maxBatchEntries {
		return errTooManyEntries(len(ids))
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id == "" || len(id) > 80 || !isIdentifier(id) {
			return errInvalidBatchEntryID(id)
		}
		if seen[id] {
			return errIDsNotDistinct(id)
		}
		seen[id] = true
	}
	return nil
}

func (s *Server) sendMessageBatch(_ *http.Request, body []byte) (any, error) {
	var in struct {
		QueueUrl string
		Entries  []sendEntry
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	q, err := s.lookupURL(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i] = e.Id
	}
	if err := validateBatch(ids); err != nil {
		return nil, err
	}
	out := struct {
		Successful []struct {
			Id string
			sendResult
		}
		Failed []batchResultError
	}{Failed: []batchResultError{}}
	out.Successful = make([]struct {
		Id string
		sendResult
	}, 0, len(in.Entries))

	prepared := make([]*message, len(in.Entries))
	total := 0
	for i := range in.Entries {
		m, err := in.Entries[i].prepare()
		if err != nil {
			out.Failed = append(out.Failed, entryError(in.Entries[i].Id, err))
			continue
		}
		prepared[i] = m
		total += m.size
	}
	if total > maxBatchPayload {
		return nil, errBatchTooLong(total, maxBatchPayload)
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return nil, errQueueDoesNotExist()
	}
	now := s.now()
	q.advanceLocked(now)
	for i, m := range prepared {
		if m == nil {
			continue
		}
		e := &in.Entries[i]
		if err := q.enqueueLocked(m, e.DelaySeconds, now); err != nil {
			out.Failed = append(out.Failed, entryError(e.Id, err))
			continue
		}
		out.Successful = append(out.Successful, struct {
			Id string
			sendResult
		}{e.Id, newSendResult(m)})
	}
	return out, nil
}

type receivedMessage struct {
	MessageId              string
	ReceiptHandle          string
	MD5OfBody              string
	Body                   string
	Attributes             map[string]string  `json:",omitempty"`
	MD5OfMessageAttributes string             `json:",omitempty"`
	MessageAttributes      map[string]msgAttr `json:",omitempty"`
}

func (s *Server) receiveMessage(r *http.Request, body []byte) (any, error) {
	var in struct {
		QueueUrl                    string
		AttributeNames              []string
		MessageSystemAttributeNames []string
		MessageAttributeNames       []string
		MaxNumberOfMessages         *int
		VisibilityTimeout           *int
		WaitTimeSeconds             *int
		ReceiveRequestAttemptId     *string // FIFO only; ignored
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	q, err := s.lookupURL(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	limit := 1
	if in.MaxNumberOfMessages != nil {
		limit = *in.MaxNumberOfMessages
		if limit < 1 || limit > maxReceiveBatch {
			return nil, errInvalidParameter("Value %d for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.", limit)
		}
	}
	if v := in.VisibilityTimeout; v != nil && (*v < 0 || *v > maxVisibility) {
		return nil, errInvalidParameter("Value %d for parameter VisibilityTimeout is invalid. Reason: Must be >= 0 and <= 43200, if provided.", *v)
	}
	if v := in.WaitTimeSeconds; v != nil && (*v < 0 || *v > maxWaitSeconds) {
		return nil, errInvalidParameter("Value %d for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.", *v)
	}

	got, err := s.receive(r.Context(), q, limit, in.VisibilityTimeout, in.WaitTimeSeconds)
	if err != nil {
		return nil, err
	}
	if len(got) == 0 {
		s.countEmptyReceive()
	}

	sysNames := append(append([]string(nil), in.AttributeNames...), in.MessageSystemAttributeNames...)
	out := struct {
		Messages []receivedMessage `json:",omitempty"`
	}{}
	for _, d := range got {
		rm := receivedMessage{
			MessageId:     d.m.id,
			ReceiptHandle: d.handle,
			MD5OfBody:     d.m.bodyMD5,
			Body:          d.m.body,
			Attributes:    s.systemAttributes(d, sysNames),
		}
		rm.MessageAttributes, rm.MD5OfMessageAttributes = selectAttributes(d.m, in.MessageAttributeNames)
		out.Messages = append(out.Messages, rm)
	}
	return out, nil
}

// receive takes up to limit messages from q, long polling for up to the wait
// time (the request's, else the queue's ReceiveMessageWaitTimeSeconds).
// It returns as soon as at least one message was received, when the wait
// time has passed, or when ctx ends (the client went away); in the last case
// no message is taken, so none is hidden from other consumers for nothing.
func (s *Server) receive(ctx context.Context, q *queue, limit int, vtOverride, waitOverride *int) ([]delivery, error) {
	var waitUntil time.Time
	first, slept := true, false
	for {
		if err := ctx.Err(); err != nil {
			q.mu.Lock()
			q.passOnKickLocked(slept)
			q.mu.Unlock()
			return nil, err
		}
		q.mu.Lock()
		if q.deleted {
			q.mu.Unlock()
			return nil, errQueueDoesNotExist()
		}
		now := s.now()
		q.advanceLocked(now)
		if first {
			wait := q.cfg.receiveWaitTime
			if waitOverride != nil {
				wait = *waitOverride
			}
			waitUntil = time.Now().Add(time.Duration(wait) * time.Second)
			first = false
		}
		vt := q.cfg.visibilityTimeout
		if vtOverride != nil {
			vt = *vtOverride
		}
		rp := q.cfg.redrive
		var dlq *queue
		if rp != nil {
			if dlq = s.lookupARN(rp.targetARN); dlq == nil || dlq == q {
				rp, dlq = nil, nil // target gone: deliver normally rather than lose messages
			}
		}
		out, moved := q.takeLocked(now, limit, time.Duration(vt)*time.Second, rp)
		realNow := time.Now()
		if len(out) > 0 || !realNow.Before(waitUntil) {
			q.passOnKickLocked(slept)
			q.mu.Unlock()
			dlq.acceptMoved(moved)
			return out, nil
		}

		w := q.addWaiterLocked()
		sleep := waitUntil.Sub(realNow)
		if next, ok := q.nextDeadlineLocked(); ok {
			sleep = min(sleep, next.Sub(now))
		}
		sleep = max(min(sleep, s.recheck), time.Millisecond)
		q.mu.Unlock()
		dlq.acceptMoved(moved)

		t := time.NewTimer(sleep)
		select {
		case <-w.ch:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		q.mu.Lock()
		q.removeWaiterLocked(w)
		q.mu.Unlock()
		slept = true
	}
}

// passOnKickLocked is called when a receiver stops receiving. Wake-ups go to
// one waiter at a time, so if messages are still visible another waiter must
// be woken to take them. A receiver that slept may also have been the one
// woken to track a new earliest deadline; waking a successor keeps that
// deadline watched.
func (q *queue) passOnKickLocked(slept bool) {
	if q.visible.Len() > 0 || (slept && (len(q.inflight) > 0 || len(q.delayed) > 0)) {
		q.kickLocked(1)
	}
}

// systemAttributes renders the requested message system attributes.
func (s *Server) systemAttributes(d delivery, names []string) map[string]string {
	if len(names) == 0 {
		return nil
	}
	all := false
	want := make(map[string]bool, len(names))
	for _, n := range names {
		all = all || n == "All"
		want[n] = true
	}
	attrs := make(map[string]string)
	put := func(name, value string) {
		if (all || want[name]) && value != "" {
			attrs[name] = value
		}
	}
	put("ApproximateReceiveCount", strconv.Itoa(d.receiveCount))
	put("SentTimestamp", strconv.FormatInt(d.m.sent.UnixMilli(), 10))
	put("ApproximateFirstReceiveTimestamp", strconv.FormatInt(d.firstReceive.UnixMilli(), 10))
	put("SenderId", s.accountID)
	put("DeadLetterQueueSourceArn", d.dlqSourceARN)
	put("MessageGroupId", d.m.groupID)
	if th, ok := d.m.sysAttrs["AWSTraceHeader"]; ok && th.StringValue != nil {
		put("AWSTraceHeader", *th.StringValue)
	}
	if len(attrs) == 0 {
		return nil
	}
	return attrs
}

// selectAttributes returns the message attributes matching names ("All",
// ".*", exact names, or "prefix.*") and their checksum.
func selectAttributes(m *message, names []string) (map[string]msgAttr, string) {
	if len(m.attrs) == 0 || len(names) == 0 {
		return nil, ""
	}
	for _, n := range names {
		if n == "All" || n == ".*" {
			return m.attrs, m.attrsMD5
		}
	}
	out := make(map[string]msgAttr)
	for name, a := range m.attrs {
		for _, n := range names {
			prefix, isPrefix := strings.CutSuffix(n, ".*")
			if name == n || isPrefix && strings.HasPrefix(name, prefix+".") {
				out[name] = a
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, ""
	}
	return out, md5OfAttributes(out)
}

// handleFor parses a receipt handle addressed to q.
func handleFor(q *queue, h string) (receipt, error) {
	if h == "" {
		return receipt{}, errMissingParameter("ReceiptHandle")
	}
	r, ok := parseReceipt(h)
	if !ok || r.queue != q.name {
		return receipt{}, errReceiptHandleInvalid(h)
	}
	return r, nil
}

func (s *Server) deleteMessage(_ *http.Request, body []byte) (any, error) {
	var in struct {
		QueueUrl      string
		ReceiptHandle string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	q, err := s.lookupURL(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	rh, err := handleFor(q, in.ReceiptHandle)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return nil, errQueueDoesNotExist()
	}
	q.advanceLocked(s.now())
	q.deleteLocked(rh)
	return nil, nil
}

type batchIDResult struct{ Id string }

type batchOutput struct {
	Successful []batchIDResult
	Failed     []batchResultError
}

func (s *Server) deleteMessageBatch(_ *http.Request, body []byte) (any, error) {
	var in struct {
		QueueUrl string
		Entries  []struct {
			Id            string
			ReceiptHandle string
		}
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ids := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i] = e.Id
	}
	return s.eachEntry(in.QueueUrl, ids, func(q *queue, i int, _ time.Time) error {
		rh, err := handleFor(q, in.Entries[i].ReceiptHandle)
		if err != nil {
			return err
		}
		q.deleteLocked(rh)
		return nil
	})
}

// eachEntry runs a batch operation: it finds the queue, checks the entry ids, and applies op to
// each entry under the queue lock, reporting per-entry success or failure as SQS does.
func (s *Server) eachEntry(queueURL string, ids []string, op func(q *queue, i int, now time.Time) error) (any, error) {
	if _, err := s.lookupURL(queueURL); err != nil {
		return nil, err // a missing queue is reported before malformed entries, as SQS does
	}
	if err := validateBatch(ids); err != nil {
		return nil, err
	}
	q, unlock, err := s.lockQueue(queueURL)
	if err != nil {
		return nil, err
	}
	defer unlock()
	out := batchOutput{Successful: []batchIDResult{}, Failed: []batchResultError{}}
	now := s.now()
	q.advanceLocked(now)
	for i, id := range ids {
		if err := op(q, i, now); err != nil {
			out.Failed = append(out.Failed, entryError(id, err))
			continue
		}
		out.Successful = append(out.Successful, batchIDResult{id})
	}
	return out, nil
}

func validateVisibility(v *int) error {
	if v == nil {
		return errMissingParameter("VisibilityTimeout")
	}
	if *v < 0 || *v > maxVisibility {
		return errInvalidParameter("Value %d for parameter VisibilityTimeout is invalid. Reason: Must be >= 0 and <= 43200.", *v)
	}
	return nil
}

func (s *Server) changeMessageVisibility(_ *http.Request, body []byte) (any, error) {
	var in struct {
		QueueUrl          string
		ReceiptHandle     string
		VisibilityTimeout *int
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	q, err := s.lookupURL(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	rh, err := handleFor(q, in.ReceiptHandle)
	if err != nil {
		return nil, err
	}
	if err := validateVisibility(in.VisibilityTimeout); err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return nil, errQueueDoesNotExist()
	}
	now := s.now()
	q.advanceLocked(now)
	return nil, q.changeVisibilityLocked(rh, in.ReceiptHandle, *in.VisibilityTimeout, now)
}

func (s *Server) changeMessageVisibilityBatch(_ *http.Request, body []byte) (any, error) {
	var in struct {
		QueueUrl string
		Entries  []struct {
			Id                string
			ReceiptHandle     string
			VisibilityTimeout *int
		}
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ids := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i] = e.Id
	}
	return s.eachEntry(in.QueueUrl, ids, func(q *queue, i int, now time.Time) error {
		e := in.Entries[i]
		rh, err := handleFor(q, e.ReceiptHandle)
		if err != nil {
			return err
		}
		if err := validateVisibility(e.VisibilityTimeout); err != nil {
			return err
		}
		return q.changeVisibilityLocked(rh, e.ReceiptHandle, *e.VisibilityTimeout, now)
	})
}

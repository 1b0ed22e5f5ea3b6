package fakesqs

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Queue management operations.

func (s *Server) createQueue(r *http.Request, body []byte) (any, error) {
	var in struct {
		QueueName  string
		Attributes map[string]string
		Tags       map[string]string `json:"tags"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := validateQueueName(in.QueueName); err != nil {
		return nil, err
	}
	arn := s.queueARN(in.QueueName)
	cfg := defaultConfig()
	if err := cfg.apply(in.Attributes, true, arn, s.dlqExists); err != nil {
		return nil, err
	}
	out := struct{ QueueUrl string }{s.queueURL(r, in.QueueName)}

	s.mu.Lock()
	existing := s.queues[in.QueueName]
	if existing == nil {
		q := newQueue(in.QueueName, arn, cfg, s.now())
		if len(in.Tags) > 0 {
			q.tags = make(map[string]string, len(in.Tags))
			for k, v := range in.Tags {
				q.tags[k] = v
			}
		}
		s.queues[in.QueueName] = q
		s.mu.Unlock()
		return out, nil
	}
	s.mu.Unlock()

	// Creating an existing queue is idempotent as long as every attribute
	// given matches the queue's current value; attributes left out are not
	// compared.
	existing.mu.Lock()
	current := existing.cfg
	existing.mu.Unlock()
	if _, same := current.sameAs(&cfg, in.Attributes); !same {
		return nil, errQueueNameExists(in.QueueName)
	}
	return out, nil
}

func (s *Server) dlqExists(arn string) bool { return s.lookupARN(arn) != nil }

func (s *Server) getQueueURL(r *http.Request, body []byte) (any, error) {
	var in struct {
		QueueName              string
		QueueOwnerAWSAccountId string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.QueueName == "" {
		return nil, errMissingParameter("QueueName")
	}
	if in.QueueOwnerAWSAccountId != "" && in.QueueOwnerAWSAccountId != s.accountID {
		return nil, errQueueDoesNotExist()
	}
	if s.lookup(in.QueueName) == nil {
		return nil, errQueueDoesNotExist()
	}
	return struct{ QueueUrl string }{s.queueURL(r, in.QueueName)}, nil
}

// listPage is the pagination shared by ListQueues and
// ListDeadLetterSourceQueues. Without maxResults up to 1000 names are
// returned and no token; with it, a NextToken is returned while more remain.
type listPage struct {
	MaxResults *int
	NextToken  string
}

const maxListResults = 1000

func (p listPage) apply(names []string) (page []string, next string, err error) {
	limit := maxListResults
	if p.MaxResults != nil {
		if *p.MaxResults < 1 || *p.MaxResults > maxListResults {
			return nil, "", errInvalidParameter("Value %d for parameter MaxResults is invalid. Reason: MaxResults must be an integer between 1 and 1000.", *p.MaxResults)
		}
		limit = *p.MaxResults
	}
	if p.NextToken != "" {
		after, err := base64.RawURLEncoding.DecodeString(p.NextToken)
		if err != nil {
			return nil, "", errInvalidParameter("Invalid NextToken value.")
		}
		i, _ := slices.BinarySearch(names, string(after))
		for i < len(names) && names[i] <= string(after) {
			i++
		}
		names = names[i:]
	}
	if len(names) > limit {
		if p.MaxResults != nil {
			next = base64.RawURLEncoding.EncodeToString([]byte(names[limit-1]))
		}
		names = names[:limit]
	}
	return names, next, nil
}

type urlListOutput struct {
	QueueUrls []string `json:",omitempty"`
	NextToken string   `json:",omitempty"`
}

func (s *Server) listQueues(r *http.Request, body []byte) (any, error) {
	var in struct {
		QueueNamePrefix string
		listPage
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var names []string
	for _, q := range s.sortedQueues() {
		if strings.HasPrefix(q.name, in.QueueNamePrefix) {
			names = append(names, q.name)
		}
	}
	page, next, err := in.listPage.apply(names)
	if err != nil {
		return nil, err
	}
	out := urlListOutput{NextToken: next}
	for _, n := range page {
		out.QueueUrls = append(out.QueueUrls, s.queueURL(r, n))
	}
	return out, nil
}

func (s *Server) listDeadLetterSourceQueues(r *http.Request, body []byte) (any, error) {
	var in struct {
		QueueUrl string
		listPage
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	dlq, err := s.lookupURL(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, q := range s.sortedQueues() {
		q.mu.Lock()
		if !q.deleted && q.cfg.redrive != nil && q.cfg.redrive.targetARN == dlq.arn {
			names = append(names, q.name)
		}
		q.mu.Unlock()
	}
	page, next, err := in.listPage.apply(names)
	if err != nil {
		return nil, err
	}
	// This operation's result member is spelled queueUrls.
	out := struct {
		QueueUrls []string `json:"queueUrls"`
		NextToken string   `json:",omitempty"`
	}{QueueUrls: []string{}, NextToken: next}
	for _, n := range page {
		out.QueueUrls = append(out.QueueUrls, s.queueURL(r, n))
	}
	return out, nil
}

type queueURLInput struct{ QueueUrl string }

func (s *Server) deleteQueue(_ *http.Request, body []byte) (any, error) {
	var in queueURLInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.QueueUrl == "" {
		return nil, errMissingParameter("QueueUrl")
	}
	name := queueNameFromURL(in.QueueUrl)
	s.mu.Lock()
	q := s.queues[name]
	delete(s.queues, name)
	s.mu.Unlock()
	if q == nil {
		return nil, errQueueDoesNotExist()
	}
	q.mu.Lock()
	q.deleted = true
	q.purgeLocked()
	q.kickLocked(q.waiters.Len()) // pending long polls fail fast
	q.mu.Unlock()
	return nil, nil
}

func (s *Server) purgeQueue(_ *http.Request, body []byte) (any, error) {
	var in queueURLInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	q, unlock, err := s.lockQueue(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	defer unlock()
	q.purgeLocked()
	return nil, nil
}

func (s *Server) getQueueAttributes(_ *http.Request, body []byte) (any, error) {
	var in struct {
		QueueUrl       string
		AttributeNames []string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	q, err := s.lookupURL(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	all := false
	for _, n := range in.AttributeNames {
		if !readableAttr(n) {
			return nil, errInvalidAttributeName(n)
		}
		all = all || n == "All"
	}
	want := func(name string) bool { return all || slices.Contains(in.AttributeNames, name) }

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return nil, errQueueDoesNotExist()
	}
	q.advanceLocked(s.now())
	attrs := make(map[string]string)
	computed := map[string]func() string{
		"QueueArn":                              func() string { return q.arn },
		"ApproximateNumberOfMessages":           func() string { return strconv.Itoa(q.visible.Len()) },
		"ApproximateNumberOfMessagesNotVisible": func() string { return strconv.Itoa(len(q.inflight)) },
		"ApproximateNumberOfMessagesDelayed":    func() string { return strconv.Itoa(len(q.delayed)) },
		"CreatedTimestamp":                      func() string { return strconv.FormatInt(q.created.Unix(), 10) },
		"LastModifiedTimestamp":                 func() string { return strconv.FormatInt(q.modified.Unix(), 10) },
	}
	for name, f := range computed {
		if want(name) {
			attrs[name] = f()
		}
	}
	for _, name := range q.cfg.settableNames() {
		if want(name) {
			attrs[name], _ = q.cfg.get(name)
		}
	}
	out := struct {
		Attributes map[string]string `json:",omitempty"`
	}{attrs}
	return out, nil
}

func (s *Server) setQueueAttributes(_ *http.Request, body []byte) (any, error) {
	var in struct {
		QueueUrl   string
		Attributes map[string]string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	q, err := s.lookupURL(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	if in.Attributes == nil {
		return nil, errMissingParameter("Attributes")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return nil, errQueueDoesNotExist()
	}
	cfg := q.cfg
	if err := cfg.apply(in.Attributes, false, q.arn, s.dlqExists); err != nil {
		return nil, err
	}
	now := s.now()
	q.setConfigLocked(cfg, now)
	// A shorter retention period applies to stored messages too.
	q.advanceLocked(now)
	return nil, nil
}

func (s *Server) tagQueue(_ *http.Request, body []byte) (any, error) {
	var in struct {
		QueueUrl string
		Tags     map[string]string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	q, unlock, err := s.lockQueue(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if q.tags == nil {
		q.tags = make(map[string]string, len(in.Tags))
	}
	for k, v := range in.Tags {
		q.tags[k] = v
	}
	return nil, nil
}

func (s *Server) untagQueue(_ *http.Request, body []byte) (any, error) {
	var in struct {
		QueueUrl string
		TagKeys  []string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	q, unlock, err := s.lockQueue(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	defer unlock()
	for _, k := range in.TagKeys {
		delete(q.tags, k)
	}
	return nil, nil
}

func (s *Server) listQueueTags(_ *http.Request, body []byte) (any, error) {
	var in queueURLInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	q, unlock, err := s.lockQueue(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	defer unlock()
	tags := make(map[string]string, len(q.tags))
	for k, v := range q.tags {
		tags[k] = v
	}
	return struct {
		Tags map[string]string `json:",omitempty"`
	}{tags}, nil
}

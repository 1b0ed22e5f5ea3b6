// Package secrets resolves credential references to secret values: upstream API keys named by a
// model's credential_ref and the database credentials. Secrets never live in rows or in
// template.yaml's environment; rows hold only a reference.
//
// A reference is one of:
//   - "" — no credential;
//   - "env:FUSILLADE_UPSTREAM_KEY_<NAME>" — that environment variable (local runs);
//   - a Secrets Manager ARN that starts with the configured upstream-secret prefix
//     (UPSTREAM_SECRET_ARN_PREFIX), cached for five minutes so a rotation is picked up without a
//     redeploy and a hot worker does not call the API per request. A JSON secret with an
//     "api_key" field yields that field; anything else is used verbatim.
//
// Nothing else is a reference. The forms are narrow on purpose: whoever sets a model's
// credential_ref also sets its base_url, so a reference that could name any variable or secret of
// the worker (AWS_SESSION_TOKEN, the database secret) would send it to a host of their choosing.
// domain.CredentialPolicy declares the forms; the API refuses other values when a model is
// stored, and the resolver refuses them again when a request runs, whatever is in the table.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/fusillade/fusillade/shared/domain"
)

// Fetcher is the one Secrets Manager call the resolver needs.
type Fetcher interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Resolver is safe for concurrent use.
type Resolver struct {
	getenv func(string) string
	sm     Fetcher // nil when no AWS access (local runs)
	policy domain.CredentialPolicy
	ttl    time.Duration
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	value string
	at    time.Time
}

// NewResolver builds a resolver that resolves only the references policy allows; sm may be nil.
func NewResolver(getenv func(string) string, sm Fetcher, policy domain.CredentialPolicy) *Resolver {
	return &Resolver{getenv: getenv, sm: sm, policy: policy, ttl: 5 * time.Minute, now: time.Now, cache: map[string]cached{}}
}

// Policy is the resolver's policy, which the API also applies when a model is stored.
func (r *Resolver) Policy() domain.CredentialPolicy { return r.policy }

// Resolve returns the secret named by ref. A reference the policy does not allow is refused with
// the *domain.Error of domain.CredentialPolicy.Parse (reason domain.CodeCredentialRefNotAllowed), before anything
// is read.
func (r *Resolver) Resolve(ctx context.Context, ref string) (string, error) {
	parsed, err := r.policy.Parse(ref)
	if err != nil {
		return "", err
	}
	switch parsed.Kind {
	case domain.CredentialNone:
		return "", nil
	case domain.CredentialEnv:
		return r.getenv(parsed.Name), nil
	case domain.CredentialSecret:
		raw, err := r.fetch(ctx, parsed.Name)
		if err != nil {
			return "", err
		}
		var doc struct {
			APIKey string `json:"api_key"`
		}
		if json.Unmarshal([]byte(raw), &doc) == nil && doc.APIKey != "" {
			return doc.APIKey, nil
		}
		return raw, nil
	}
	return "", fmt.Errorf("secrets: unhandled reference kind %d", parsed.Kind)
}

func (r *Resolver) fetch(ctx context.Context, arn string) (string, error) {
	r.mu.Lock()
	c, ok := r.cache[arn]
	r.mu.Unlock()
	if ok && r.now().Sub(c.at) < r.ttl {
		return c.value, nil
	}
	if r.sm == nil {
		return "", errors.New("secrets: a secret ARN needs AWS access, which this process does not have")
	}
	out, err := r.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &arn})
	if err != nil {
		return "", fmt.Errorf("secrets: get %s: %w", arn, err)
	}
	if out.SecretString == nil {
		return "", fmt.Errorf("secrets: %s has no string value", arn)
	}
	r.mu.Lock()
	r.cache[arn] = cached{value: *out.SecretString, at: r.now()}
	r.mu.Unlock()
	return *out.SecretString, nil
}

// DatabaseURL builds a connection URL from an RDS-format secret
// {"username","password","host","port","dbname"}.
func (r *Resolver) DatabaseURL(ctx context.Context, arn string) (string, error) {
	raw, err := r.fetch(ctx, arn)
	if err != nil {
		return "", err
	}
	var s struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Host     string `json:"host"`
		Port     any    `json:"port"`
		DBName   string `json:"dbname"`
	}
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return "", fmt.Errorf("secrets: database secret is not RDS-format JSON: %w", err)
	}
	port := "5432"
	switch p := s.Port.(type) {
	case float64:
		port = strconv.Itoa(int(p))
	case string:
		if p != "" {
			port = p
		}
	}
	if s.DBName == "" {
		s.DBName = "postgres"
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(s.Username, s.Password), Host: s.Host + ":" + port, Path: "/" + s.DBName,
		RawQuery: "sslmode=require"}
	return u.String(), nil
}

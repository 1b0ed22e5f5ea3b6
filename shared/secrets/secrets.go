// Package secrets resolves credential references to secret values: upstream API keys named by a
// model's credential_ref and the database credentials. Secrets never live in rows or in
// template.yaml's environment; rows hold only a reference.
//
// A reference is one of:
//   - "" — no credential;
//   - "env:NAME" — the environment variable NAME (local runs);
//   - "arn:aws:secretsmanager:…" — a Secrets Manager secret, cached for five minutes so a
//     rotation is picked up without a redeploy and a hot worker does not call the API per request.
//     A JSON secret with an "api_key" field yields that field; anything else is used verbatim.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// Fetcher is the one Secrets Manager call the resolver needs.
type Fetcher interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Resolver is safe for concurrent use.
type Resolver struct {
	getenv func(string) string
	sm     Fetcher // nil when no AWS access (local runs)
	ttl    time.Duration
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	value string
	at    time.Time
}

// NewResolver builds a resolver; sm may be nil.
func NewResolver(getenv func(string) string, sm Fetcher) *Resolver {
	return &Resolver{getenv: getenv, sm: sm, ttl: 5 * time.Minute, now: time.Now, cache: map[string]cached{}}
}

// Resolve returns the secret named by ref.
func (r *Resolver) Resolve(ctx context.Context, ref string) (string, error) {
	switch {
	case ref == "":
		return "", nil
	case strings.HasPrefix(ref, "env:"):
		return r.getenv(strings.TrimPrefix(ref, "env:")), nil
	case strings.HasPrefix(ref, "arn:"):
		raw, err := r.fetch(ctx, ref)
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
	return "", fmt.Errorf("secrets: unsupported credential reference (want env:NAME or a secret ARN)")
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

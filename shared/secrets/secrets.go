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
// The API refuses other values when a model is stored, and the resolver refuses them again when
// a request runs, whatever is in the table.
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

	"github.com/fusillade/fusillade/shared/domain"
)

// EnvPrefix is the one prefix an env: reference may name. Declared here only; the local stack and
// the documentation name their upstream keys with it.
const EnvPrefix = "FUSILLADE_UPSTREAM_KEY_"

// Kind is the form of a reference.
type Kind int

// The forms of a reference.
const (
	KindNone   Kind = iota // "": no credential
	KindEnv                // env:FUSILLADE_UPSTREAM_KEY_<NAME>
	KindSecret             // a Secrets Manager ARN under the upstream-secret prefix
)

// Ref is a parsed reference: Name is the environment variable or the secret's ARN.
type Ref struct {
	Kind Kind
	Name string
}

// Policy decides which references are allowed.
type Policy struct {
	// ARNPrefix is what every Secrets Manager reference must start with (UPSTREAM_SECRET_ARN_PREFIX
	// without its trailing IAM wildcard). Empty, the default, allows no ARN at all.
	ARNPrefix string
}

// Parse checks ref against the allowed forms. The error is a *domain.Error naming the forms; it
// never contains ref, which may be a secret pasted by mistake.
func (p Policy) Parse(ref string) (Ref, error) {
	if ref == "" {
		return Ref{Kind: KindNone}, nil
	}
	if name, ok := strings.CutPrefix(ref, "env:"); ok {
		if rest, ok := strings.CutPrefix(name, EnvPrefix); ok && rest != "" && onlyRunes(rest, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") {
			return Ref{Kind: KindEnv, Name: name}, nil
		}
		return Ref{}, p.refused()
	}
	if p.ARNPrefix != "" {
		// The characters Secrets Manager allows in a secret name, plus the "-" of its suffix.
		if rest, ok := strings.CutPrefix(ref, p.ARNPrefix); ok && rest != "" &&
			onlyRunes(rest, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_+=.@-") {
			return Ref{Kind: KindSecret, Name: ref}, nil
		}
	}
	return Ref{}, p.refused()
}

// Forms describes the allowed references, for error messages.
func (p Policy) Forms() string {
	env := fmt.Sprintf(`"env:%s<NAME>" (NAME of A-Z, 0-9 and _)`, EnvPrefix)
	if p.ARNPrefix == "" {
		return fmt.Sprintf(`credential_ref must be "" (no credential) or %s; Secrets Manager ARNs are refused because UPSTREAM_SECRET_ARN_PREFIX is not set. It holds a reference, never the secret itself.`, env)
	}
	return fmt.Sprintf(`credential_ref must be "" (no credential), %s or a Secrets Manager ARN starting with %q. It holds a reference, never the secret itself.`, env, p.ARNPrefix)
}

func (p Policy) refused() *domain.Error {
	return &domain.Error{Code: domain.EInvalid, Param: "credential_ref", Reason: domain.CodeCredentialRefNotAllowed, Message: p.Forms()}
}

func onlyRunes(s, allowed string) bool {
	for _, r := range s {
		if !strings.ContainsRune(allowed, r) {
			return false
		}
	}
	return true
}

// Fetcher is the one Secrets Manager call the resolver needs.
type Fetcher interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Resolver is safe for concurrent use.
type Resolver struct {
	getenv func(string) string
	sm     Fetcher // nil when no AWS access (local runs)
	policy Policy
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
func NewResolver(getenv func(string) string, sm Fetcher, policy Policy) *Resolver {
	return &Resolver{getenv: getenv, sm: sm, policy: policy, ttl: 5 * time.Minute, now: time.Now, cache: map[string]cached{}}
}

// Policy is the resolver's policy, which the API also applies when a model is stored.
func (r *Resolver) Policy() Policy { return r.policy }

// Resolve returns the secret named by ref. A reference the policy does not allow is refused with
// the *domain.Error of Policy.Parse (reason domain.CodeCredentialRefNotAllowed), before anything
// is read.
func (r *Resolver) Resolve(ctx context.Context, ref string) (string, error) {
	parsed, err := r.policy.Parse(ref)
	if err != nil {
		return "", err
	}
	switch parsed.Kind {
	case KindNone:
		return "", nil
	case KindEnv:
		return r.getenv(parsed.Name), nil
	case KindSecret:
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

package secrets_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/secrets"
)

type fetcher struct {
	values map[string]string
	calls  int
}

func (f *fetcher) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.calls++
	v, ok := f.values[*in.SecretId]
	if !ok {
		return nil, errors.New("ResourceNotFoundException")
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: &v}, nil
}

// upstreamPrefix is the upstream-secret prefix the tests configure.
const upstreamPrefix = "arn:aws:secretsmanager:us-east-1:1:secret:fusillade/upstream/"

func TestReferencesResolveFromTheEnvironmentOrSecretsManager(t *testing.T) {
	t.Parallel()
	f := &fetcher{values: map[string]string{
		upstreamPrefix + "plain": "sk-plain",
		upstreamPrefix + "json":  `{"api_key":"sk-json"}`,
	}}
	r := secrets.NewResolver(func(k string) string { return map[string]string{"FUSILLADE_UPSTREAM_KEY_UP": "sk-env"}[k] }, f,
		domain.CredentialPolicy{ARNPrefix: upstreamPrefix})
	ctx := context.Background()
	for ref, want := range map[string]string{
		"":                              "",
		"env:FUSILLADE_UPSTREAM_KEY_UP": "sk-env",
		upstreamPrefix + "plain":        "sk-plain",
		upstreamPrefix + "json":         "sk-json",
	} {
		got, err := r.Resolve(ctx, ref)
		require.NoError(t, err, ref)
		require.Equal(t, want, got, ref)
	}
	// Cached: a hot worker does not call Secrets Manager per request.
	_, err := r.Resolve(ctx, upstreamPrefix+"plain")
	require.NoError(t, err)
	require.Equal(t, 2, f.calls)
	_, err = r.Resolve(ctx, "sk-literal-key")
	require.Error(t, err, "a literal secret in a row is refused")
	require.NotContains(t, err.Error(), "sk-literal-key", "the error never echoes what may be a secret")
}

func TestDatabaseURLFromAnRDSSecret(t *testing.T) {
	t.Parallel()
	f := &fetcher{values: map[string]string{"arn:db": `{"username":"app","password":"p@ss:w/rd","host":"db.local","port":5432,"dbname":"fusillade"}`}}
	r := secrets.NewResolver(func(string) string { return "" }, f, domain.CredentialPolicy{})
	u, err := r.DatabaseURL(context.Background(), "arn:db")
	require.NoError(t, err)
	require.Equal(t, "postgres://app:p%40ss%3Aw%2Frd@db.local:5432/fusillade?sslmode=require", u)
}

func TestReferenceParserAcceptsOnlyTheAllowedForms(t *testing.T) {
	t.Parallel()
	on := domain.CredentialPolicy{ARNPrefix: upstreamPrefix}
	off := domain.CredentialPolicy{}
	for _, c := range []struct {
		name   string
		policy domain.CredentialPolicy
		ref    string
		want   domain.CredentialRef
		ok     bool // false: refused
	}{
		{"empty is no credential", on, "", domain.CredentialRef{Kind: domain.CredentialNone}, true},
		{"empty without a prefix", off, "", domain.CredentialRef{Kind: domain.CredentialNone}, true},
		{"env under the prefix", on, "env:FUSILLADE_UPSTREAM_KEY_OPENAI", domain.CredentialRef{Kind: domain.CredentialEnv, Name: "FUSILLADE_UPSTREAM_KEY_OPENAI"}, true},
		{"env with digits and underscores", off, "env:FUSILLADE_UPSTREAM_KEY_A_1", domain.CredentialRef{Kind: domain.CredentialEnv, Name: "FUSILLADE_UPSTREAM_KEY_A_1"}, true},
		{"ARN under the prefix", on, upstreamPrefix + "openai-AbCdEf", domain.CredentialRef{Kind: domain.CredentialSecret, Name: upstreamPrefix + "openai-AbCdEf"}, true},
		{"ARN with a nested name", on, upstreamPrefix + "team/a+b=c.d@e_f-AbCdEf", domain.CredentialRef{Kind: domain.CredentialSecret, Name: upstreamPrefix + "team/a+b=c.d@e_f-AbCdEf"}, true},

		{"a raw key", on, "sk-proj-abcdef0123456789", domain.CredentialRef{}, false},
		{"a bearer header", on, "Bearer sk-abc", domain.CredentialRef{}, false},
		{"the worker's AWS credentials", on, "env:AWS_SESSION_TOKEN", domain.CredentialRef{}, false},
		{"the worker's AWS secret key", on, "env:AWS_SECRET_ACCESS_KEY", domain.CredentialRef{}, false},
		{"the database URL", on, "env:DATABASE_URL", domain.CredentialRef{}, false},
		{"the prefix alone", on, "env:FUSILLADE_UPSTREAM_KEY_", domain.CredentialRef{}, false},
		{"the prefix in lower case", on, "env:fusillade_upstream_key_x", domain.CredentialRef{}, false},
		{"a name that only contains the prefix", on, "env:X_FUSILLADE_UPSTREAM_KEY_X", domain.CredentialRef{}, false},
		{"a lower-case name", on, "env:FUSILLADE_UPSTREAM_KEY_openai", domain.CredentialRef{}, false},
		{"env with a space", on, "env:FUSILLADE_UPSTREAM_KEY_A B", domain.CredentialRef{}, false},
		{"env without a name", on, "env:", domain.CredentialRef{}, false},
		{"the database secret", on, "arn:aws:secretsmanager:us-east-1:1:secret:fusillade/db-AbCdEf", domain.CredentialRef{}, false},
		{"a secret of another account", on, "arn:aws:secretsmanager:us-east-1:2:secret:fusillade/upstream/x", domain.CredentialRef{}, false},
		{"the ARN prefix alone", on, upstreamPrefix, domain.CredentialRef{}, false},
		{"an ARN with a newline", on, upstreamPrefix + "x\nInjected: 1", domain.CredentialRef{}, false},
		{"an ARN with a wildcard", on, upstreamPrefix + "*", domain.CredentialRef{}, false},
		{"any ARN when no prefix is configured", off, upstreamPrefix + "openai-AbCdEf", domain.CredentialRef{}, false},
		{"a secret name instead of an ARN", on, "fusillade/upstream/openai", domain.CredentialRef{}, false},
		{"another scheme", on, "file:/etc/passwd", domain.CredentialRef{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := c.policy.Parse(c.ref)
			if c.ok {
				require.NoError(t, err)
				require.Equal(t, c.want, got)
				return
			}
			require.Error(t, err)
			var de *domain.Error
			require.ErrorAs(t, err, &de)
			require.Equal(t, domain.EInvalid, de.Code)
			require.Equal(t, "credential_ref", de.Param)
			require.Equal(t, domain.CodeCredentialRefNotAllowed, de.Reason)
			require.Contains(t, de.Message, `"env:FUSILLADE_UPSTREAM_KEY_<NAME>"`, "the error names the accepted forms")
			if c.policy.ARNPrefix != "" {
				require.Contains(t, de.Message, c.policy.ARNPrefix)
			}
			if echo := strings.TrimPrefix(c.ref, "env:"); echo != "" && !strings.Contains(c.policy.Forms(), echo) {
				require.NotContains(t, err.Error(), echo, "the error never echoes what may be a secret")
			}
		})
	}
}

func TestResolverRefusesReferencesOutsideTheAllowedForms(t *testing.T) {
	t.Parallel()
	f := &fetcher{values: map[string]string{"arn:aws:secretsmanager:us-east-1:1:secret:db-AbCdEf": `{"password":"db"}`}}
	env := map[string]string{"AWS_SESSION_TOKEN": "session", "DATABASE_URL": "postgres://u:p@db/x"}
	read := 0
	r := secrets.NewResolver(func(k string) string { read++; return env[k] }, f, domain.CredentialPolicy{ARNPrefix: upstreamPrefix})
	for _, ref := range []string{"env:AWS_SESSION_TOKEN", "env:DATABASE_URL", "arn:aws:secretsmanager:us-east-1:1:secret:db-AbCdEf"} {
		got, err := r.Resolve(context.Background(), ref)
		require.Error(t, err, ref)
		var de *domain.Error
		require.ErrorAs(t, err, &de, ref)
		require.Equal(t, domain.CodeCredentialRefNotAllowed, de.Reason, ref)
		require.Empty(t, got, ref)
	}
	require.Zero(t, read, "a refused env: reference is never read")
	require.Zero(t, f.calls, "an ARN outside the prefix is never fetched")
}

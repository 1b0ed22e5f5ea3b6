package secrets_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"

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

func TestReferencesResolveFromTheEnvironmentOrSecretsManager(t *testing.T) {
	t.Parallel()
	f := &fetcher{values: map[string]string{
		"arn:aws:secretsmanager:us-east-1:1:secret:plain": "sk-plain",
		"arn:aws:secretsmanager:us-east-1:1:secret:json":  `{"api_key":"sk-json"}`,
	}}
	r := secrets.NewResolver(func(k string) string { return map[string]string{"UP_KEY": "sk-env"}[k] }, f)
	ctx := context.Background()
	for ref, want := range map[string]string{
		"":           "",
		"env:UP_KEY": "sk-env",
		"arn:aws:secretsmanager:us-east-1:1:secret:plain": "sk-plain",
		"arn:aws:secretsmanager:us-east-1:1:secret:json":  "sk-json",
	} {
		got, err := r.Resolve(ctx, ref)
		require.NoError(t, err, ref)
		require.Equal(t, want, got, ref)
	}
	// Cached: a hot worker does not call Secrets Manager per request.
	_, err := r.Resolve(ctx, "arn:aws:secretsmanager:us-east-1:1:secret:plain")
	require.NoError(t, err)
	require.Equal(t, 2, f.calls)
	_, err = r.Resolve(ctx, "sk-literal-key")
	require.Error(t, err, "a literal secret in a row is refused")
	require.NotContains(t, err.Error(), "sk-literal-key", "the error never echoes what may be a secret")
}

func TestDatabaseURLFromAnRDSSecret(t *testing.T) {
	t.Parallel()
	f := &fetcher{values: map[string]string{"arn:db": `{"username":"app","password":"p@ss:w/rd","host":"db.local","port":5432,"dbname":"fusillade"}`}}
	r := secrets.NewResolver(func(string) string { return "" }, f)
	u, err := r.DatabaseURL(context.Background(), "arn:db")
	require.NoError(t, err)
	require.Equal(t, "postgres://app:p%40ss%3Aw%2Frd@db.local:5432/fusillade?sslmode=require", u)
}

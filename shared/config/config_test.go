package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/config"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/ingest"
	"github.com/fusillade/fusillade/shared/postgres"
	"github.com/fusillade/fusillade/shared/upstream"
	"github.com/fusillade/fusillade/shared/webhooks"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestDefaultsAreFusilladesAndOpenAIs(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(map[string]string{"DATABASE_URL": "postgres://x"}))
	require.NoError(t, err)
	require.Equal(t, []string{"24h"}, c.CompletionWins)
	require.Equal(t, 1000, c.Retry.MaxRetries)
	require.Equal(t, time.Second, c.Retry.Base)
	require.Equal(t, 10*time.Second, c.Retry.Max)
	require.Equal(t, []int{404, 499}, c.RetriableStatuses)
	require.Equal(t, 16*time.Minute, c.ProcessingTimeout, "longer than the worker's 15-minute limit")
	require.Equal(t, int64(200_000_000), c.MaxFileBytes)
	require.Equal(t, 50_000, c.MaxLines)
}

// An unset variable must mean what the package owning the knob does with a zero value, so that a
// component built without config (a test, a tool) behaves as production does.
func TestAnUnsetSettingMeansTheOwningPackagesDefault(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(map[string]string{"DATABASE_URL": "postgres://x"}))
	require.NoError(t, err)
	require.Equal(t, upstream.DefaultBodyTimeout, c.BodyTimeout)
	require.Equal(t, 300*time.Second, c.BodyTimeout, "README: the body of an answer may take 300 s")
	require.Equal(t, upstream.DefaultFirstByteTimeout, c.FirstByteTimeout)
	require.EqualValues(t, upstream.DefaultMaxResponseBytes, c.MaxResponseBytes)
	require.Equal(t, upstream.DefaultRetriableStatuses(), c.RetriableStatuses)
	require.Equal(t, engine.DefaultUrgencyWeight, c.UrgencyWeight)
	require.Equal(t, engine.DefaultClaimTimeout, c.ClaimTimeout)
	require.Equal(t, engine.DefaultProcessingTimeout, c.ProcessingTimeout)
	require.Equal(t, engine.DefaultStaleWorker, c.StaleWorker)
	require.Equal(t, domain.DefaultRetryPolicy(), c.Retry)
	require.Equal(t, ingest.DefaultMaxFileBytes, c.MaxFileBytes)
	require.Equal(t, ingest.DefaultMaxLines, c.MaxLines)
	require.Equal(t, postgres.DefaultMaxConns, c.DBMaxConns)
	require.Equal(t, []string{domain.DefaultCompletionWindow}, c.CompletionWins)
}

func TestBadSettingsFailLoudlyWithTheirNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "DATABASE_URL or DATABASE_SECRET_ARN"},
		{map[string]string{"DATABASE_URL": "x", "MAX_RETRIES": "many"}, `MAX_RETRIES="many"`},
		{map[string]string{"DATABASE_URL": "x", "URGENCY_WEIGHT": "2"}, "URGENCY_WEIGHT must be within 0..1"},
		{map[string]string{"DATABASE_URL": "x", "COMPLETION_WINDOWS": "24h,forever"}, `invalid completion_window "forever"`},
		{map[string]string{"DATABASE_URL": "x", "STREAMABLE_ENDPOINTS": "/admin"}, `"/admin" is not an allowed endpoint`},
		{map[string]string{"DATABASE_URL": "x", "RETRIABLE_STATUSES": "404,x"}, `RETRIABLE_STATUSES="x"`},
		{map[string]string{"DATABASE_URL": "x", "BACKOFF_FACTOR": "0.5"}, "BACKOFF_FACTOR must be at least 1"},
	} {
		_, err := config.Load(env(tc.env))
		require.Error(t, err, "%v", tc.env)
		require.Contains(t, err.Error(), tc.want)
	}
}

func TestRequireNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(map[string]string{"DATABASE_URL": "x", "BUCKET": "b"}))
	require.NoError(t, err)
	require.NoError(t, c.Require("BUCKET"))
	err = c.Require("BUCKET", "WORK_QUEUE_URL", "POPULATE_QUEUE_URL")
	require.Error(t, err)
	require.True(t, strings.HasSuffix(err.Error(), "WORK_QUEUE_URL, POPULATE_QUEUE_URL"))
}

func TestUpstreamSecretARNPrefixIsTheTemplatesPatternWithoutItsWildcard(t *testing.T) {
	t.Parallel()
	const prefix = "arn:aws:secretsmanager:us-east-1:123456789012:secret:fusillade/upstream/"
	for _, v := range []string{prefix + "*", prefix} {
		c, err := config.Load(env(map[string]string{"DATABASE_URL": "x", "UPSTREAM_SECRET_ARN_PREFIX": v}))
		require.NoError(t, err, v)
		require.Equal(t, prefix, c.UpstreamSecretARNPrefix, v)
	}
	c, err := config.Load(env(map[string]string{"DATABASE_URL": "x"}))
	require.NoError(t, err)
	require.Empty(t, c.UpstreamSecretARNPrefix, "default: no ARN references")

	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"DATABASE_URL": "x", "UPSTREAM_SECRET_ARN_PREFIX": "fusillade/upstream/*"}, "UPSTREAM_SECRET_ARN_PREFIX"},
		{map[string]string{"DATABASE_URL": "x", "UPSTREAM_SECRET_ARN_PREFIX": "arn:aws:secretsmanager:us-east-1:123456789012:secret:*"}, "UPSTREAM_SECRET_ARN_PREFIX"},
		{map[string]string{"DATABASE_URL": "x", "UPSTREAM_SECRET_ARN_PREFIX": "arn:aws:secretsmanager:*:123456789012:secret:x/*"}, "UPSTREAM_SECRET_ARN_PREFIX"},
		{map[string]string{"DATABASE_URL": "x", "UPSTREAM_SECRET_ARN_PREFIX": prefix + "**"}, "UPSTREAM_SECRET_ARN_PREFIX"},
		{map[string]string{"DATABASE_SECRET_ARN": prefix + "db-AbCdEf", "UPSTREAM_SECRET_ARN_PREFIX": prefix + "*"}, "covers DATABASE_SECRET_ARN"},
		{map[string]string{"DATABASE_URL": "x", "DATABASE_REPLICA_SECRET_ARN": prefix + "replica-AbCdEf", "UPSTREAM_SECRET_ARN_PREFIX": prefix + "*"},
			"covers DATABASE_REPLICA_SECRET_ARN"},
	} {
		_, err := config.Load(env(tc.env))
		require.Error(t, err, "%v", tc.env)
		require.Contains(t, err.Error(), tc.want)
	}
}

func TestWithoutAReplicaSettingThereIsNoReplica(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(map[string]string{"DATABASE_URL": "postgres://x"}))
	require.NoError(t, err)
	require.Empty(t, c.DatabaseReplicaURL)
	require.Empty(t, c.DatabaseReplicaSecretARN)
	c, err = config.Load(env(map[string]string{"DATABASE_URL": "postgres://x", "DATABASE_REPLICA_URL": " postgres://r "}))
	require.NoError(t, err)
	require.Equal(t, "postgres://r", c.DatabaseReplicaURL)
}

// Webhooks reach public https addresses only unless WEBHOOK_ALLOW_PRIVATE says otherwise, on the
// sender's schedule unless WEBHOOK_RETRY_SCHEDULE names another; a bad schedule is refused.
func TestWebhookSettings(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(map[string]string{"DATABASE_URL": "postgres://x"}))
	require.NoError(t, err)
	require.False(t, c.WebhookAllowPrivate)
	require.Equal(t, webhooks.DefaultSchedule, c.WebhookSchedule)
	require.Equal(t, domain.DefaultWebhookTimeout, c.WebhookTimeout)

	c, err = config.Load(env(map[string]string{"DATABASE_URL": "postgres://x", "WEBHOOK_ALLOW_PRIVATE": "true",
		"WEBHOOK_RETRY_SCHEDULE": "1s, 2m", "WEBHOOK_TIMEOUT_MS": "500"}))
	require.NoError(t, err)
	require.True(t, c.WebhookAllowPrivate)
	require.Equal(t, []time.Duration{time.Second, 2 * time.Minute}, c.WebhookSchedule)
	require.Equal(t, 500*time.Millisecond, c.WebhookTimeout)

	for _, bad := range []string{"soon", "0s", "-1s"} {
		_, err = config.Load(env(map[string]string{"DATABASE_URL": "postgres://x", "WEBHOOK_RETRY_SCHEDULE": bad}))
		require.ErrorContains(t, err, "WEBHOOK_RETRY_SCHEDULE", bad)
	}
}

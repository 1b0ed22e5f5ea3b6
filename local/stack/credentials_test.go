package stack_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
)

// PUT /v1/admin/models/{name} stores only references: a raw secret, an env: name outside the
// upstream-key prefix and an ARN outside the configured upstream-secret prefix are 400s that name
// the accepted forms and never echo what was sent.
func TestAdminModelPutRejectsRawSecretsAndReferencesOutsideTheAllowedForms(t *testing.T) {
	const prefix = "arn:aws:secretsmanager:us-east-1:123456789012:secret:fusillade/upstream/"
	st := startStack(t, stack.Options{Env: map[string]string{"UPSTREAM_SECRET_ARN_PREFIX": prefix + "*"}})
	put := func(ref string) apiResp {
		return callJSON(t, st, st.AdminKey, "PUT", "/v1/admin/models/keyed", map[string]any{
			"base_url": "https://attacker.example", "concurrency_limit": 1, "credential_ref": ref})
	}
	for _, ref := range []string{
		"sk-proj-0123456789abcdefghijklmnopqrstuvwxyz", // a raw secret
		"env:AWS_SESSION_TOKEN",                        // the worker's own credentials
		"env:DATABASE_URL",                             // ... or its database
		"arn:aws:secretsmanager:us-east-1:123456789012:secret:fusillade/db-AbCdEf", // another secret
		"env:FUSILLADE_UPSTREAM_KEY_", // the prefix alone names nothing
	} {
		r := put(ref)
		require.Equal(t, 400, r.Status, "%s: %s", ref, r.Body)
		e := r.errorOf(t)
		require.Equal(t, "credential_ref", e["param"], ref)
		require.Equal(t, "credential_ref_not_allowed", e["code"], ref)
		msg, _ := e["message"].(string)
		require.Contains(t, msg, "env:FUSILLADE_UPSTREAM_KEY_", "the message names the env form")
		require.Contains(t, msg, prefix, "the message names the ARN form")
		if echo := strings.TrimPrefix(ref, "env:"); !strings.Contains(msg, echo) {
			require.NotContains(t, string(r.Body), echo, "the rejected value is never echoed")
		}
	}
	models := string(callJSON(t, st, st.AdminKey, "GET", "/v1/admin/models", nil).Body)
	require.NotContains(t, models, `"keyed"`, "nothing was stored")

	for _, ref := range []string{"", "env:FUSILLADE_UPSTREAM_KEY_OPENAI", prefix + "openai-AbCdEf"} {
		r := put(ref)
		require.Equal(t, 200, r.Status, "%s: %s", ref, r.Body)
		require.Equal(t, ref, r.json(t)["credential_ref"])
	}
}

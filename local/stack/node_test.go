package stack_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
)

// The official npm openai package passes the whole flow against the local stack, and the official
// @anthropic-ai/sdk package the Message Batches flow (messages.test.mjs). The packages are pinned
// in tests/node/package-lock.json and installed with `npm ci` (the npm registry must be
// reachable); the test fails, never skips, when Node or npm is missing.
func TestNodeSDK(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "tests", "node"))
	require.NoError(t, err)
	for _, tool := range []string{"node", "npm"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "%s is required for the Node SDK test", tool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	install.Dir = dir
	out, err := install.CombinedOutput()
	require.NoError(t, err, "npm ci:\n%s", out)

	st := startStack(t, stack.Options{Models: append(stack.DefaultModels(), stack.ModelSpec{Name: "claude-parked", Limit: 0})})
	run := exec.CommandContext(ctx, "node", "--test", "--test-reporter=spec", "flow.test.mjs", "messages.test.mjs")
	run.Dir = dir
	run.Env = append(os.Environ(), "OPENAI_BASE_URL="+st.APIURL+"/v1", "OPENAI_API_KEY="+st.APIKey,
		// @anthropic-ai/sdk takes the origin and adds /v1 itself.
		"ANTHROPIC_BASE_URL="+st.APIURL, "ANTHROPIC_API_KEY="+st.APIKey,
		"ANTHROPIC_MODEL="+stack.MessagesModel, "ANTHROPIC_PARKED_MODEL=claude-parked")
	out, err = run.CombinedOutput()
	require.NoError(t, err, "node --test:\n%s", out)
	t.Logf("node --test:\n%s", out)
}

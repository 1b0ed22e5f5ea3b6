package stack_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
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
	dir := nodePackages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	st := startStack(t, stack.Options{Models: append(stack.DefaultModels(), stack.ModelSpec{Name: "claude-parked", Limit: 0})})
	run := exec.CommandContext(ctx, "node", "--test", "--test-reporter=spec", "flow.test.mjs", "messages.test.mjs")
	run.Dir = dir
	run.Env = append(os.Environ(), "OPENAI_BASE_URL="+st.APIURL+"/v1", "OPENAI_API_KEY="+st.APIKey,
		// @anthropic-ai/sdk takes the origin and adds /v1 itself.
		"ANTHROPIC_BASE_URL="+st.APIURL, "ANTHROPIC_API_KEY="+st.APIKey,
		"ANTHROPIC_MODEL="+stack.MessagesModel, "ANTHROPIC_PARKED_MODEL=claude-parked")
	out, err := run.CombinedOutput()
	require.NoError(t, err, "node --test:\n%s", out)
	t.Logf("node --test:\n%s", out)
}

// npmInstall runs `npm ci` in tests/node once per test binary, for every test that needs its
// pinned packages (the SDK test, the dashboard's accessibility audit).
var npmInstall = sync.OnceValues(func() (string, error) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "tests", "node"))
	if err != nil {
		return "", err
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("%s is required for the tests in tests/node: %w", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci: %w\n%s", err, out)
	}
	return dir, nil
})

// nodePackages is tests/node with its pinned packages installed; it fails the test when they
// cannot be.
func nodePackages(t *testing.T) string {
	t.Helper()
	dir, err := npmInstall()
	require.NoError(t, err)
	return dir
}

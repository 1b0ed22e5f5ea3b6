// Runtime-fidelity smoke test: each function is built as the `bootstrap` that Lambda runs
// (CGO_ENABLED=0, -tags lambda.norpc), started under the Lambda runtime interface emulator, and
// sent a real event shape. The emulator is built from source with `go install`; no Docker.
package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/pgtest"
	"github.com/fusillade/fusillade/local/stack"
	"github.com/fusillade/fusillade/shared/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// rieVersion is the runtime interface emulator version known to build with this Go toolchain.
const rieVersion = "v0.0.0-20261030222936-bef5c4ba774d"

func goTool(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go %s: %s", strings.Join(args, " "), out)
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// invoke starts bootstrap under the emulator, sends one event, and stops it. Invokes are
// serialised: the emulator crashes on concurrent invocations.
func invoke(t *testing.T, rie, bootstrap string, env []string, event any) (int, []byte) {
	t.Helper()
	api, runtime := freeAddr(t), freeAddr(t)
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", api, "--runtime-api-address", runtime, bootstrap)
	cmd.Env = append(os.Environ(), env...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("emulator log:\n%s", logs.String())
		}
	}()
	body, err := json.Marshal(event)
	require.NoError(t, err)
	url := "http://" + api + "/2015-03-31/functions/function/invocations"
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Post(url, "application/json", bytes.NewReader(body))
		if err == nil {
			defer resp.Body.Close()
			out, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			return resp.StatusCode, out
		}
		require.True(t, time.Now().Before(deadline), "emulator did not answer: %v", err)
		time.Sleep(20 * time.Millisecond) // polling a process that is starting; there is no signal to wait on
	}
}

// functionDirs lists every function: each directory beside this file.
func functionDirs(t *testing.T) []string {
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestEachBootstrapAnswersItsRealEventUnderTheRuntimeEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every function's binary and the emulator")
	}
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	bin := t.TempDir()
	goTool(t, root, []string{"GOBIN=" + bin}, "install", "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@"+rieVersion)
	rie := filepath.Join(bin, "aws-lambda-rie")
	boot := map[string]string{}
	fns := functionDirs(t)
	require.Subset(t, fns, []string{"api", "populate", "dispatch", "worker", "purge", "migrate"})
	for _, fn := range fns {
		boot[fn] = filepath.Join(bin, fn, "bootstrap")
		goTool(t, root, []string{"CGO_ENABLED=0", "GOOS=linux"}, "build", "-tags", "lambda.norpc", "-trimpath", "-o", boot[fn], "./functions/"+fn)
	}
	// Every function built above must be invoked below: a new one needs its own subtest.
	invoked := map[string]bool{}
	t.Cleanup(func() {
		for _, fn := range fns {
			if !invoked[fn] && !t.Failed() {
				assert.Failf(t, "a function was never invoked", "functions/%s was built but never invoked: add a subtest with its real event", fn)
			}
		}
	})

	// The emulated AWS services and a real database for the functions to talk to.
	st, err := stack.Start(context.Background(), stack.Options{DatabaseURL: pgtest.URL(t), DataDir: t.TempDir(), Ephemeral: true,
		APIAddr: "127.0.0.1:0", DispatchEvery: time.Hour, PurgeEvery: time.Hour})
	require.NoError(t, err)
	t.Cleanup(st.Stop)
	cfg := st.App.Config
	env := []string{
		"DATABASE_URL=" + cfg.DatabaseURL, "BUCKET=" + cfg.Bucket, "S3_ENDPOINT=" + cfg.S3Endpoint, "S3_PATH_STYLE=true",
		"SQS_ENDPOINT=" + cfg.SQSEndpoint, "WORK_QUEUE_URL=" + cfg.WorkQueue, "POPULATE_QUEUE_URL=" + cfg.PopulateQueue,
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local", "AWS_LAMBDA_FUNCTION_TIMEOUT=30",
		"LOG_LEVEL=debug",
	}

	t.Run("api answers an API Gateway v2 request", func(t *testing.T) {
		invoked["api"] = true
		status, out := invoke(t, rie, boot["api"], env, map[string]any{
			"version": "2.0", "routeKey": "$default", "rawPath": "/v1/batches/batch_00000000000000000000000000000000", "rawQueryString": "",
			"headers":         map[string]string{"authorization": "Bearer " + st.APIKey, "accept": "application/json"},
			"requestContext":  map[string]any{"http": map[string]any{"method": "GET", "path": "/v1/batches/batch_00000000000000000000000000000000", "sourceIp": "127.0.0.1"}},
			"isBase64Encoded": false,
		})
		require.Equal(t, http.StatusOK, status, "%s", out)
		var resp struct {
			StatusCode int               `json:"statusCode"`
			Headers    map[string]string `json:"headers"`
			Body       string            `json:"body"`
		}
		require.NoError(t, json.Unmarshal(out, &resp), "%s", out)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		require.Contains(t, resp.Body, `"No batch found with id 'batch_00000000000000000000000000000000'."`)
	})

	t.Run("populate reports the failed record of an SQS batch", func(t *testing.T) {
		invoked["populate"] = true
		status, out := invoke(t, rie, boot["populate"], env, map[string]any{"Records": []map[string]any{
			{"messageId": "m-1", "receiptHandle": "r1", "body": `{"batch_id":"batch_does_not_exist"}`, "eventSource": "aws:sqs"},
			{"messageId": "m-2", "receiptHandle": "r2", "body": `not json`, "eventSource": "aws:sqs"},
		}})
		require.Equal(t, http.StatusOK, status, "%s", out)
		require.JSONEq(t, `{"batchItemFailures":[{"itemIdentifier":"m-1"}]}`, string(out))
	})

	t.Run("worker acknowledges a stale delivery and a kick", func(t *testing.T) {
		invoked["worker"] = true
		status, out := invoke(t, rie, boot["worker"], env, map[string]any{"Records": []map[string]any{
			{"messageId": "w-1", "receiptHandle": "r1", "body": `{"r":"00000000-0000-0000-0000-000000000001","a":1}`, "eventSource": "aws:sqs"},
			{"messageId": "w-2", "receiptHandle": "r2", "body": `{"k":"mock-chat"}`, "eventSource": "aws:sqs"},
		}})
		require.Equal(t, http.StatusOK, status, "%s", out)
		require.JSONEq(t, `{"batchItemFailures":null}`, string(out))
	})

	scheduled := map[string]any{"version": "0", "id": "e-1", "detail-type": "Scheduled Event", "source": "aws.events",
		"account": "000000000000", "time": time.Now().UTC().Format(time.RFC3339), "region": "us-east-1",
		"resources": []string{"arn:aws:events:us-east-1:000000000000:rule/x"}, "detail": map[string]any{}}
	for _, fn := range []string{"dispatch", "purge"} {
		t.Run(fmt.Sprintf("%s runs on an EventBridge scheduled event", fn), func(t *testing.T) {
			invoked[fn] = true
			status, out := invoke(t, rie, boot[fn], env, scheduled)
			require.Equal(t, http.StatusOK, status, "%s", out)
			require.NotContains(t, string(out), "errorMessage")
			var stats map[string]any
			require.NoError(t, json.Unmarshal(out, &stats), "%s", out)
		})
	}

	t.Run("migrate answers a CloudFormation custom resource request", func(t *testing.T) {
		invoked["migrate"] = true
		responses := make(chan []byte, 1)
		cfn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if r.Method == http.MethodPut {
				responses <- b
			}
		}))
		defer cfn.Close()
		status, out := invoke(t, rie, boot["migrate"], env, map[string]any{
			"RequestType": "Update", "RequestId": "req-1", "ResponseURL": cfn.URL + "/response",
			"ResourceType": "Custom::SchemaMigration", "LogicalResourceId": "MigrateSchema",
			"StackId":            "arn:aws:cloudformation:us-east-1:000000000000:stack/fusillade/1",
			"PhysicalResourceId": "fusillade-schema", "ResourceProperties": map[string]any{"MigratorVersion": "2"},
		})
		require.Equal(t, http.StatusOK, status, "%s", out)
		var resp struct {
			Status             string
			PhysicalResourceID string `json:"PhysicalResourceId"`
			Data               map[string]any
		}
		require.NoError(t, json.Unmarshal(<-responses, &resp))
		require.Equal(t, "SUCCESS", resp.Status)
		require.Equal(t, "fusillade-schema", resp.PhysicalResourceID, "the same id on every update: never a replacement")
		require.EqualValues(t, postgres.LatestMigration(), resp.Data["SchemaVersion"])
	})
}

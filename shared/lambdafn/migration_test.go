package lambdafn_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/lambdafn"
)

type cfnResponse struct {
	Status             string
	Reason             string
	PhysicalResourceID string `json:"PhysicalResourceId"`
	Data               map[string]any
}

// respond runs the handler on one request type and returns what it reported to CloudFormation.
func respond(t *testing.T, h cfn.CustomResourceLambdaFunction, requestType cfn.RequestType) cfnResponse {
	t.Helper()
	got := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
	}))
	defer srv.Close()
	_, err := h(context.Background(), cfn.Event{RequestType: requestType, RequestID: "r", ResponseURL: srv.URL,
		LogicalResourceID: "MigrateSchema", PhysicalResourceID: lambdafn.SchemaResourceID})
	require.NoError(t, err)
	var resp cfnResponse
	require.NoError(t, json.Unmarshal(<-got, &resp))
	return resp
}

func TestMigrationStepMigratesOnCreateAndUpdateAndKeepsTheSchemaOnDelete(t *testing.T) {
	t.Parallel()
	calls := 0
	h := lambdafn.Migration(func(context.Context) (int, int, error) { calls++; return 3, 1, nil }, slog.New(slog.DiscardHandler))
	for _, rt := range []cfn.RequestType{cfn.RequestCreate, cfn.RequestUpdate} {
		resp := respond(t, h, rt)
		require.Equal(t, "SUCCESS", resp.Status, rt)
		require.Equal(t, lambdafn.SchemaResourceID, resp.PhysicalResourceID, rt)
		require.EqualValues(t, 3, resp.Data["SchemaVersion"], rt)
	}
	require.Equal(t, 2, calls)
	require.Equal(t, "SUCCESS", respond(t, h, cfn.RequestDelete).Status)
	require.Equal(t, 2, calls, "deleting the stack leaves the schema alone")

	failing := lambdafn.Migration(func(context.Context) (int, int, error) { return 0, 0, errors.New("migration 0004: boom") },
		slog.New(slog.DiscardHandler))
	resp := respond(t, failing, cfn.RequestUpdate)
	require.Equal(t, "FAILED", resp.Status, "a failed migration fails the deployment, which rolls back")
	require.Contains(t, resp.Reason, "migration 0004")
}

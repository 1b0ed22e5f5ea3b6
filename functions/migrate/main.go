// Command migrate is the deployment's migration step: the Lambda behind the template's
// MigrateSchema custom resource, which CloudFormation invokes on every deployment that changes
// this function's code, before it updates the other functions. It applies pending database
// migrations; the other functions refuse to start on an older schema.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/fusillade/fusillade/shared/config"
	"github.com/fusillade/fusillade/shared/lambdafn"
	"github.com/fusillade/fusillade/shared/wire"
)

func main() {
	if err := run(context.Background(), os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	lambda.Start(lambdafn.Migration(func(ctx context.Context) (int, int, error) { return wire.Migrate(ctx, cfg) },
		wire.NewLogger(os.Stdout, cfg.LogLevel)))
	return nil
}

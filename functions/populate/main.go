// Command populate is the populate Lambda: it expands a new batch's input file into request rows
// (triggered by the populate queue).
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
		fmt.Fprintln(os.Stderr, "populate:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	if err := cfg.Require("BUCKET", "WORK_QUEUE_URL"); err != nil {
		return err
	}
	app, err := wire.Open(ctx, cfg, nil, wire.Options{Function: "populate", Getenv: getenv})
	if err != nil {
		return err
	}
	lambda.Start(lambdafn.Populate(app.Ingester, app.Log))
	return nil
}

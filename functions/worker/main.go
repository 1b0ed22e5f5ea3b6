// Command worker is the worker Lambda (SQS-triggered, reserved concurrency): it executes claimed
// requests against the upstream, persists results with fenced writes and refills each freed slot
// at once.
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
		fmt.Fprintln(os.Stderr, "worker:", err)
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
	app, err := wire.Open(ctx, cfg, nil, wire.Options{Function: "worker", Getenv: getenv})
	if err != nil {
		return err
	}
	// On shutdown, mark this instance stopped so that anything it still held is rescued at once
	// instead of after the stale-worker threshold.
	lambda.StartWithOptions(lambdafn.Worker(app.Engine, app.Log),
		lambda.WithEnableSIGTERM(func() { app.Engine.Stop(context.Background()) }))
	return nil
}

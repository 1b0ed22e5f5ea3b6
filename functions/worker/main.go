// Command worker is the worker Lambda (SQS-triggered, reserved concurrency): it executes claimed
// requests against the upstream, persists results with fenced writes and refills each freed slot
// at once.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/fusillade/fusillade/shared/emf"
	"github.com/fusillade/fusillade/shared/lambdafn"
	"github.com/fusillade/fusillade/shared/sqsqueue"
	"github.com/fusillade/fusillade/shared/wire"
)

func main() {
	if err := run(context.Background(), os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string) error {
	app, err := wire.Boot(ctx, getenv, "worker", "BUCKET", "WORK_QUEUE_URL")
	if err != nil {
		return err
	}
	// On shutdown, mark this instance stopped so that anything it still held is rescued at once
	// instead of after the stale-worker threshold.
	lambda.StartWithOptions(emf.Flushing(app.EMF, lambdafn.Worker(app.Engine, sqsqueue.ParseMessage, app.Log, app.Metrics)),
		lambda.WithEnableSIGTERM(func() { app.Engine.Stop(context.Background()) }))
	return nil
}

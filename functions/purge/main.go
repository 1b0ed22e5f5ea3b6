// Command purge is the scheduled maintenance Lambda (engine.Maintain): it expires batches whose
// window closed, rescues requests stuck in claimed or processing (fencing out zombies), finalises
// batches whose finaliser died, and purges deleted and expired data. The function keeps the name
// of the deployed shape; everything inside speaks of maintenance.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/fusillade/fusillade/shared/emf"
	"github.com/fusillade/fusillade/shared/lambdafn"
	"github.com/fusillade/fusillade/shared/wire"
)

func main() {
	if err := run(context.Background(), os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "purge:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string) error {
	app, err := wire.Boot(ctx, getenv, "purge", "BUCKET", "WORK_QUEUE_URL")
	if err != nil {
		return err
	}
	lambda.Start(emf.Flushing(app.EMF, lambdafn.Maintenance(app.Engine)))
	return nil
}

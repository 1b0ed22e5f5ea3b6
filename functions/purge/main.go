// Command purge is the scheduled maintenance Lambda: it rescues requests stuck in claimed or
// processing (fencing out zombies) and finalises batches whose finaliser died.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

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
	lambda.Start(lambdafn.Purge(app.Engine))
	return nil
}

// Command dispatch is the scheduled dispatch Lambda: the start and safety net that claims free
// slots of every model and enqueues them (workers refill slots as requests finish).
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
		fmt.Fprintln(os.Stderr, "dispatch:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string) error {
	app, err := wire.Boot(ctx, getenv, "dispatch", "WORK_QUEUE_URL")
	if err != nil {
		return err
	}
	lambda.Start(emf.Flushing(app.EMF, lambdafn.Dispatch(app.Engine)))
	return nil
}

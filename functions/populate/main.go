// Command populate is the populate Lambda: it expands a new batch's input file into request rows
// (triggered by the populate queue).
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
		fmt.Fprintln(os.Stderr, "populate:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string) error {
	app, err := wire.Boot(ctx, getenv, "populate", "BUCKET", "WORK_QUEUE_URL")
	if err != nil {
		return err
	}
	lambda.Start(emf.Flushing(app.EMF, lambdafn.Populate(app.Ingester, sqsqueue.ParsePopulate, app.Log)))
	return nil
}

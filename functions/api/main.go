// Command api is the API Lambda: fusillade's OpenAI-compatible HTTP API behind API Gateway
// (HTTP API, payload v2).
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
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string) error {
	app, err := wire.Boot(ctx, getenv, "api", "BUCKET", "POPULATE_QUEUE_URL")
	if err != nil {
		return err
	}
	lambda.Start(emf.Flushing(app.EMF, lambdafn.API(app.API())))
	return nil
}

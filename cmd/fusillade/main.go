// Command fusillade runs fusillade on one machine, hosts its operator tools and is the command
// line for batches against any fusillade API (docs/cli.md).
//
//	fusillade run [flags]            the whole stack locally (make run)
//	fusillade migrate                apply database migrations to DATABASE_URL
//	fusillade with-postgres -- CMD   run CMD with DATABASE_URL pointing at a throwaway cluster (make test)
//	fusillade submit FILE.jsonl      upload a file, create a batch, watch it and download its results
//	fusillade batches|files|validate manage batches and files, check a file locally
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"golang.org/x/term"

	"github.com/fusillade/fusillade/cmd/fusillade/internal/cli"
)

func main() {
	if len(os.Args) > 1 && slices.Contains(cli.Commands, os.Args[1]) {
		os.Exit(runCLI(os.Args[1:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fusillade:", err)
		os.Exit(1)
	}
}

// runCLI runs a batch command: Ctrl-C is the command's to handle (submit asks whether to cancel
// the batch), SIGTERM stops it.
func runCLI(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	return cli.Run(ctx, args, cli.Env{
		Getenv: os.Getenv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Signals: sigs,
		StdoutTerminal: term.IsTerminal(int(os.Stdout.Fd())), StdinTerminal: term.IsTerminal(int(os.Stdin.Fd())),
	})
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: fusillade run|migrate|with-postgres -- CMD|submit|batches|files|validate")
	}
	switch args[0] {
	case "run":
		return runStack(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, getenv, stdout)
	case "with-postgres":
		return withPostgres(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown command %q (want run, migrate, with-postgres, submit, batches, files or validate)", args[0])
}

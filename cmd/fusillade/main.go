// Command fusillade runs fusillade on one machine and hosts its operator tools.
//
//	fusillade run [flags]            the whole stack locally (make run)
//	fusillade migrate                apply database migrations to DATABASE_URL
//	fusillade with-postgres -- CMD   run CMD with DATABASE_URL pointing at a throwaway cluster (make test)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fusillade:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: fusillade run|migrate|with-postgres -- CMD")
	}
	switch args[0] {
	case "run":
		return runStack(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, getenv, stdout)
	case "with-postgres":
		return withPostgres(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown command %q (want run, migrate or with-postgres)", args[0])
}

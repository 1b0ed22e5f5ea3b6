package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/fusillade/fusillade/local/pgcluster"
	"github.com/fusillade/fusillade/shared/postgres"
)

// migrate applies pending migrations to DATABASE_URL, by hand: on AWS the deployment's migrate
// function does it before the other functions are updated.
func migrate(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	url := getenv("DATABASE_URL")
	if url == "" {
		return errors.New("migrate: DATABASE_URL is required")
	}
	s, err := postgres.Open(ctx, url, postgres.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	defer s.Close()
	n, err := s.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "applied %d migration(s)\n", n)
	return nil
}

// withPostgres starts one throwaway cluster, runs the command with DATABASE_URL set to it, and
// removes the cluster afterwards. The test suite runs under it so that every package shares one
// server and isolates itself by database.
func withPostgres(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return errors.New("with-postgres: no command given")
	}
	dir, err := os.MkdirTemp("", "fusillade-pg-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cl, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir})
	if err != nil {
		return err
	}
	defer cl.Stop()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+cl.URL("postgres"))
	cmd.Stdout, cmd.Stderr, cmd.Stdin = stdout, stderr, os.Stdin
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("%s exited with status %d", args[0], exit.ExitCode())
		}
		return err
	}
	return nil
}

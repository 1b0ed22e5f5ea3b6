// Package cli is the fusillade command line for batches: submit a JSONL file and watch it run,
// list and manage batches and files, and validate files locally with the server's own rules.
// It talks to any fusillade API (local or on AWS) over HTTP, configured like OpenAI's tools by
// OPENAI_BASE_URL and OPENAI_API_KEY.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// Exit codes of every command, declared once (docs/cli.md lists them).
const (
	// ExitOK: the command did what was asked; for submit and batches wait, every line completed
	// (also a submit that detached, leaving the batch running).
	ExitOK = 0
	// ExitLinesFailed: the batch completed but some of its lines failed.
	ExitLinesFailed = 1
	// ExitUsage: bad arguments, or an input file that fails validation (nothing was sent).
	ExitUsage = 2
	// ExitBatchNotCompleted: the batch ended failed, expired or cancelled.
	ExitBatchNotCompleted = 3
	// ExitError: anything else, such as a network failure or an error answer from the API.
	ExitError = 4
)

// Env is everything the commands touch of the process, so that tests drive them fully.
type Env struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// StdoutTerminal selects the live progress bar (else plain periodic lines); StdinTerminal
	// lets Ctrl-C ask whether to cancel or detach (else it detaches).
	StdoutTerminal, StdinTerminal bool
	// Signals delivers SIGINT (Ctrl-C); nil never delivers.
	Signals <-chan os.Signal
	// HTTPClient defaults to a client with no overall timeout (downloads can be large).
	HTTPClient *http.Client
}

// Commands lists the top-level commands Run serves, for the binary's dispatcher.
var Commands = []string{"submit", "batches", "files", "validate"}

var usage = fmt.Sprintf(`usage:
  fusillade submit FILE.jsonl [--endpoint PATH] [--window 24h] [--metadata k=v]... [--out DIR] [--detach]
  fusillade batches ls|get|cancel|retry|results|wait [ID]
  fusillade files ls|get|rm|download [ID]
  fusillade validate FILE.jsonl [--endpoint PATH]

Every command takes --base-url (default $OPENAI_BASE_URL) and --api-key (default $OPENAI_API_KEY),
and --json for output meant for scripts. Exit codes: %d done (all lines completed), %d some lines
failed, %d usage or invalid file, %d batch failed, expired or cancelled, %d other errors.
`, ExitOK, ExitLinesFailed, ExitUsage, ExitBatchNotCompleted, ExitError)

// errUsage marks an error that exits with ExitUsage.
type errUsage struct{ msg string }

func (e errUsage) Error() string { return e.msg }

func usagef(format string, args ...any) error { return errUsage{fmt.Sprintf(format, args...)} }

// exitError carries an exit code other than ExitError out of a command.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }

// Run runs one command (args[0] is the command name, e.g. "submit") and returns its exit code.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	if env.HTTPClient == nil {
		env.HTTPClient = &http.Client{}
	}
	r := &runner{env: env, out: env.Stdout, errw: env.Stderr}
	code, err := r.dispatch(ctx, args)
	if err == nil {
		return code
	}
	var ue errUsage
	var ee exitError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return ExitUsage
	case errors.As(err, &ue):
		fmt.Fprintln(env.Stderr, "fusillade:", err)
		_, _ = fmt.Fprint(env.Stderr, usage)
		return ExitUsage
	case errors.As(err, &ee):
		fmt.Fprintln(env.Stderr, "fusillade:", err)
		return ee.code
	}
	fmt.Fprintln(env.Stderr, "fusillade:", err)
	return ExitError
}

type runner struct {
	env  Env
	out  io.Writer
	errw io.Writer
}

func (r *runner) dispatch(ctx context.Context, args []string) (int, error) {
	if len(args) == 0 {
		return 0, usagef("no command")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "submit":
		return r.submit(ctx, rest)
	case "validate":
		return r.validate(rest)
	case "batches", "files":
		if len(rest) == 0 {
			return 0, usagef("%s: want a subcommand", cmd)
		}
		sub, rest := rest[0], rest[1:]
		if cmd == "batches" {
			return r.batches(ctx, sub, rest)
		}
		return r.files(ctx, sub, rest)
	}
	return 0, usagef("unknown command %q", cmd)
}

// common are the flags every API command takes.
type common struct {
	baseURL, apiKey string
	json            bool
	poll            time.Duration
}

func (r *runner) flags(name string) (*flag.FlagSet, *common) {
	fs := flag.NewFlagSet("fusillade "+name, flag.ContinueOnError)
	fs.SetOutput(r.errw)
	c := &common{}
	fs.StringVar(&c.baseURL, "base-url", "", "API base URL with /v1 (default $OPENAI_BASE_URL)")
	fs.StringVar(&c.apiKey, "api-key", "", "API key (default $OPENAI_API_KEY)")
	fs.BoolVar(&c.json, "json", false, "print JSON for scripts instead of tables")
	return fs, c
}

// parse parses flags anywhere among the positional arguments (flag stops at the first one) and
// returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// client builds the API client from flags, else the environment.
func (r *runner) client(c *common) (*client, error) {
	base, key := c.baseURL, c.apiKey
	if base == "" {
		base = r.env.Getenv("OPENAI_BASE_URL")
	}
	if key == "" {
		key = r.env.Getenv("OPENAI_API_KEY")
	}
	if base == "" {
		return nil, usagef("no API base URL: set OPENAI_BASE_URL (e.g. http://127.0.0.1:8080/v1) or pass --base-url")
	}
	if key == "" {
		return nil, usagef("no API key: set OPENAI_API_KEY or pass --api-key")
	}
	return &client{base: strings.TrimRight(base, "/"), key: key, http: r.env.HTTPClient}, nil
}

// one requires exactly one positional argument.
func one(pos []string, what string) (string, error) {
	if len(pos) != 1 {
		return "", usagef("want exactly one %s, got %d arguments", what, len(pos))
	}
	return pos[0], nil
}

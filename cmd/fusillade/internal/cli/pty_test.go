package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/term"

	"github.com/fusillade/fusillade/cmd/fusillade/internal/cli"
)

// On a real pseudo-terminal submit draws a progress bar that redraws in place (carriage
// returns) as lines finish, and ends at 100 %.
func TestSubmitOnATerminalRedrawsTheProgressBar(t *testing.T) {
	st := startStack(t)
	ptmx, tty, err := pty.Open()
	require.NoError(t, err)
	defer ptmx.Close()
	require.NoError(t, pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 120}))
	var screen bytes.Buffer
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = io.Copy(&screen, ptmx) // ends with EIO once the terminal side is closed
	}()

	var lines []string
	for i := range 12 {
		lines = append(lines, chatLine(fmt.Sprintf("slow-%d", i), "x", map[string]any{"mock_delay_ms": 40}))
	}
	e := env(st)
	var errw bytes.Buffer
	e.Stdout, e.Stderr = tty, &errw
	e.StdoutTerminal = term.IsTerminal(int(tty.Fd()))
	require.True(t, e.StdoutTerminal, "the pty's terminal side is a terminal")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := cli.Run(ctx, []string{"submit", writeFile(t, lines...), "--out", t.TempDir(), "--poll", "20ms"}, e)
	require.NoError(t, tty.Close())
	<-drained
	// The terminal turns each "\n" into "\r\n" (onlcr): only a lone "\r" is a redraw.
	out := strings.ReplaceAll(screen.String(), "\r\n", "\n")
	require.Equal(t, cli.ExitOK, code, "screen:\n%q\nstderr:\n%s", out, errw.String())
	assert.GreaterOrEqual(t, strings.Count(out, "\r"), 4, "the bar redraws in place: %q", out)
	last, _, _ := strings.Cut(out[strings.LastIndex(out, "\r"):], "\n")
	assert.Contains(t, last, "100%", "the last redraw is the finished bar: %q", last)
	assert.Contains(t, last, "(12/12", "with the count of lines: %q", last)
	assert.Contains(t, out, "req/s", "and the rate")
	assert.Contains(t, out, "12 total, 12 completed, 0 failed")
}

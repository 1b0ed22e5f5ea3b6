package jsonl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// event is what one call to Next produced: a line (Text set) or a per-line error (Code set).
type event struct {
	Number int
	Offset int64
	Text   string
	Code   string
}

// readEvents drains a Reader and returns every line and per-line error, then
// BytesRead and the final error (io.EOF on success).
func readEvents(t testing.TB, r io.Reader, max int) ([]event, int64, error) {
	t.Helper()
	rd := NewReader(r, max)
	var evs []event
	for {
		line, err := rd.Next()
		var le *LineError
		switch {
		case err == nil:
			evs = append(evs, event{Number: line.Number, Offset: line.Offset, Text: string(line.Bytes)})
		case errors.As(err, &le):
			require.Nil(t, line.Bytes, "a rejected line must not expose its bytes")
			require.Equal(t, le.Line, line.Number)
			evs = append(evs, event{Number: line.Number, Offset: line.Offset, Code: le.Code})
		default:
			return evs, rd.BytesRead(), err
		}
	}
}

func TestReaderLineRules(t *testing.T) {
	t.Parallel()
	bom := "\xEF\xBB\xBF"
	tests := []struct {
		name  string
		input string
		want  []event
	}{
		{"empty input", "", nil},
		{"bom only", bom, nil},
		{"bom stripped, offsets count it", bom + "{\"a\":1}\n{}\n",
			[]event{{1, 3, `{"a":1}`, ""}, {2, 11, "{}", ""}}},
		{"bom after the start is content", "{}\n" + bom + "{}\n",
			[]event{{1, 0, "{}", ""}, {2, 3, bom + "{}", ""}}},
		{"partial bom is invalid utf8", "\xEF\xBB{}\n",
			[]event{{1, 0, "", CodeInvalidUTF8}}},
		{"lf and crlf", "a\r\nb\nc\r\n",
			[]event{{1, 0, "a", ""}, {2, 3, "b", ""}, {3, 5, "c", ""}}},
		{"lone cr is content", "a\rb\nc\r\r\nd\r",
			[]event{{1, 0, "a\rb", ""}, {2, 4, "c\r", ""}, {3, 8, "d\r", ""}}},
		{"no final newline", "a\nb", []event{{1, 0, "a", ""}, {2, 2, "b", ""}}},
		{"blank and whitespace lines skipped but numbered", "\n  \n\t\r\n\r\n{}\n\n \t",
			[]event{{5, 9, "{}", ""}}},
		{"only blank lines", "\n\n \r\n", nil},
		{"unicode space is not blank", "\u00a0\n", []event{{1, 0, "\u00a0", ""}}},
		{"nul byte", "{}\n{\"a\":\"\x00\"}\n{}\n",
			[]event{{1, 0, "{}", ""}, {2, 3, "", CodeInvalidJSONLine}, {3, 13, "{}", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, small := range []bool{false, true} {
				var r io.Reader = strings.NewReader(tt.input)
				if small {
					r = iotest.OneByteReader(r)
				}
				evs, n, err := readEvents(t, r, 0)
				assert.Equal(t, io.EOF, err)
				assert.Equal(t, tt.want, evs)
				assert.Equal(t, int64(len(tt.input)), n, "BytesRead")
			}
		})
	}
}

func TestReaderEOFIsSticky(t *testing.T) {
	t.Parallel()
	rd := NewReader(strings.NewReader("a"), 0)
	_, err := rd.Next()
	require.NoError(t, err)
	for range 3 {
		_, err = rd.Next()
		require.Equal(t, io.EOF, err)
	}
}

// TestReaderLineLimit feeds lines around the limit, for a limit below and above the bufio
// buffer size, and checks that every line comes out whole or as a line_too_large error: never
// truncated, never merged with its neighbour.
func TestReaderLineLimit(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{100, readBufferSize - 1, readBufferSize, 200_000} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			t.Parallel()
			type in struct {
				size int
				term string
				ok   bool
			}
			lines := []in{
				{limit - 1, "\n", true},
				{limit, "\n", true},
				{limit + 1, "\n", false},
				{limit, "\r\n", true},
				{limit + 1, "\r\n", false},
				{limit + 2, "\n", false},
				{3*limit + 7, "\n", false},
				{1, "\n", true},
				{limit + 1, "", false}, // the final line, unterminated
			}
			var buf bytes.Buffer
			for i, l := range lines {
				buf.WriteString(strings.Repeat(string(rune('a'+i)), l.size))
				buf.WriteString(l.term)
			}
			total := int64(buf.Len())
			for _, small := range []bool{false, true} {
				var r io.Reader = bytes.NewReader(buf.Bytes())
				if small {
					r = iotest.HalfReader(r)
				}
				evs, n, err := readEvents(t, r, limit)
				require.Equal(t, io.EOF, err)
				require.Equal(t, total, n)
				require.Len(t, evs, len(lines), "requests in must equal lines out")
				var off int64
				for i, l := range lines {
					ev := evs[i]
					assert.Equal(t, i+1, ev.Number)
					assert.Equal(t, off, ev.Offset)
					if l.ok {
						assert.Empty(t, ev.Code)
						assert.Equal(t, strings.Repeat(string(rune('a'+i)), l.size), ev.Text, "line %d", i+1)
					} else {
						assert.Equal(t, CodeLineTooLarge, ev.Code, "line %d", i+1)
					}
					off += int64(l.size + len(l.term))
				}
			}
		})
	}
}

func TestReaderLineTooLargeError(t *testing.T) {
	t.Parallel()
	rd := NewReader(strings.NewReader("{}\n"+strings.Repeat("x", 11)+"\n{}"), 10)
	_, err := rd.Next()
	require.NoError(t, err)
	line, err := rd.Next()
	var le *LineError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, 2, le.Line)
	assert.Equal(t, 2, line.Number)
	assert.Equal(t, int64(3), line.Offset)
	assert.Equal(t, CodeLineTooLarge, le.Code)
	assert.Equal(t, "line 2: line is longer than the limit of 10 bytes", le.Error())
	line, err = rd.Next()
	require.NoError(t, err)
	assert.Equal(t, 3, line.Number)
	assert.Equal(t, "{}", string(line.Bytes))
}

func TestReaderOneMiBLine(t *testing.T) {
	t.Parallel()
	big := `{"x":"` + strings.Repeat("y", 1<<20) + `"}`
	input := "{}\r\n" + big + "\r\n{}"
	evs, _, err := readEvents(t, strings.NewReader(input), 0)
	require.Equal(t, io.EOF, err)
	require.Len(t, evs, 3)
	assert.Equal(t, big, evs[1].Text)
	assert.Equal(t, int64(4), evs[1].Offset)
	assert.Equal(t, int64(4+len(big)+2), evs[2].Offset)
}

func TestReaderInvalidUTF8OnLine7(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	for i := 1; i <= 6; i++ {
		fmt.Fprintf(&buf, "{\"custom_id\":\"r%d\"}\n", i)
	}
	lineStart := buf.Len()
	buf.WriteString("{\"custom_id\":\"caf\xe9\"}\n") // Latin-1 é: 0xE9 followed by '"'
	buf.WriteString("{}\n")
	badInLine := len(`{"custom_id":"caf`)

	rd := NewReader(&buf, 0)
	for i := 1; i <= 6; i++ {
		_, err := rd.Next()
		require.NoError(t, err)
	}
	line, err := rd.Next()
	var le *LineError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, CodeInvalidUTF8, le.Code)
	assert.Equal(t, 7, le.Line)
	assert.Equal(t, int64(lineStart), line.Offset)
	assert.Equal(t, fmt.Sprintf("line 7: invalid UTF-8 byte 0xe9 at offset %d in the line (file offset %d)",
		badInLine, lineStart+badInLine), le.Message)
	line, err = rd.Next()
	require.NoError(t, err, "reading continues after a bad line")
	assert.Equal(t, 8, line.Number)
}

func TestReaderIOError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	rd := NewReader(io.MultiReader(strings.NewReader("{}\n{\"a\""), iotest.ErrReader(boom)), 0)
	line, err := rd.Next()
	require.NoError(t, err)
	assert.Equal(t, "{}", string(line.Bytes))
	for range 2 {
		_, err = rd.Next()
		require.ErrorIs(t, err, boom, "I/O errors are sticky")
		var le *LineError
		assert.False(t, errors.As(err, &le))
		assert.Contains(t, err.Error(), "line 2")
	}

	// A failure on the very first read (while looking for a BOM) is not lost.
	rd = NewReader(iotest.ErrReader(boom), 0)
	_, err = rd.Next()
	require.ErrorIs(t, err, boom)
	_, err = rd.Next()
	require.ErrorIs(t, err, boom)
}

// repeatReader yields count copies of line without allocating, standing in for a large file.
type repeatReader struct {
	line  []byte
	count int
	pos   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && r.count > 0 {
		c := copy(p[n:], r.line[r.pos:])
		n += c
		r.pos += c
		if r.pos == len(r.line) {
			r.pos = 0
			r.count--
		}
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// TestReaderBoundedMemory streams 10 MB files and checks that allocations do not grow with the
// number of lines: a short-line file needs only the Reader itself, and a file of lines longer
// than the bufio buffer reuses one line buffer.
//
//nolint:paralleltest // testing.AllocsPerRun panics while a parallel test runs, so this one runs alone
func TestReaderBoundedMemory(t *testing.T) {
	const fileSize = 10 << 20
	for _, lineSize := range []int{200, 100 << 10} {
		t.Run(fmt.Sprint(lineSize), func(t *testing.T) {
			line := []byte(requestLine("r", "m", lineSize) + "\n")
			count := fileSize / len(line)
			var lines int
			read := func() {
				rd := NewReader(&repeatReader{line: line, count: count}, 0)
				lines = 0
				for {
					_, err := rd.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					require.NoError(t, err)
					lines++
				}
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			allocs := testing.AllocsPerRun(1, read)
			runtime.ReadMemStats(&after)
			require.Equal(t, count, lines)
			assert.Less(t, allocs, 50.0, "allocations per 10 MB file")
			// Two runs (AllocsPerRun warms up once): each may hold the bufio buffer and, for long
			// lines, a line buffer of about twice the line.
			perRun := (after.TotalAlloc - before.TotalAlloc) / 2
			t.Logf("%d lines of %d bytes: %.0f allocations, %d bytes allocated per run", count, len(line), allocs, perRun)
			assert.Less(t, perRun, uint64(readBufferSize+4*len(line)+64<<10), "bytes allocated per 10 MB file")
		})
	}
}

// requestLine builds a valid request line of roughly size bytes.
func requestLine(id, model string, size int) string {
	head := fmt.Sprintf(`{"custom_id":%q,"method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"`, id, model)
	tail := `"}],"max_tokens":16}}`
	pad := max(size-len(head)-len(tail), 1)
	return head + strings.Repeat("x", pad) + tail
}

func BenchmarkReader(b *testing.B) {
	data := benchFile(10 << 20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rd := NewReader(bytes.NewReader(data), 0)
		for {
			if _, err := rd.Next(); err != nil {
				if !errors.Is(err, io.EOF) {
					require.NoError(b, err)
				}
				break
			}
		}
	}
}

// benchFile builds about size bytes of valid requests with bodies from 200 bytes to 8 KiB and
// a few models, a rough stand-in for real chat batches.
func benchFile(size int) []byte {
	var buf bytes.Buffer
	models := []string{"llama-3.1-8b", "qwen2.5-72b", "mistral-small"}
	for i := 0; buf.Len() < size; i++ {
		buf.WriteString(requestLine(fmt.Sprintf("req-%d", i), models[i%len(models)], 200+(i*997)%8000))
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

package jsonl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// DefaultMaxLineBytes is the line length limit used when NewReader gets a limit <= 0. It leaves
// room for a MaxBodyBytes (10 MiB) body plus the envelope and JSON escaping overhead.
const DefaultMaxLineBytes = 16 << 20

// readBufferSize is the bufio buffer. Lines that fit are returned straight from it without a
// copy; longer lines are assembled in Reader.buf.
const readBufferSize = 64 << 10

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Line is one non-blank line of the input.
type Line struct {
	Number int    // 1-based physical line number in the file
	Offset int64  // byte offset in the file of the first byte of Bytes
	Bytes  []byte // content without the trailing "\n" / "\r\n"; valid until the next call to Next
}

// Reader splits a stream into lines with memory proportional to the longest line, not the
// file. See the package documentation for the exact rules. A Reader is not safe for concurrent
// use.
type Reader struct {
	br      *bufio.Reader
	max     int
	buf     []byte // assembles lines longer than the bufio buffer; reused between calls
	number  int    // physical lines consumed so far
	offset  int64  // bytes consumed so far
	started bool   // the BOM check has run
	err     error  // sticky terminal error (io.EOF or an I/O failure)
}

// NewReader returns a Reader over r that rejects lines longer than maxLineBytes bytes
// (terminator excluded); maxLineBytes <= 0 means DefaultMaxLineBytes.
func NewReader(r io.Reader, maxLineBytes int) *Reader {
	if maxLineBytes <= 0 {
		maxLineBytes = DefaultMaxLineBytes
	}
	return &Reader{br: bufio.NewReaderSize(r, readBufferSize), max: maxLineBytes}
}

// BytesRead returns the number of input bytes consumed by the lines returned so far, including
// a BOM, skipped blank lines and terminators. Read-ahead buffering is not counted, so this is
// the offset just after the last line handed out, which makes it suitable for progress reports.
func (r *Reader) BytesRead() int64 { return r.offset }

// Next returns the next non-blank line, or io.EOF after the last one. A *LineError
// (line_too_large, invalid_utf8, invalid_json_line for NUL bytes) concerns only that line: the
// returned Line then carries its Number and Offset but no Bytes, and Next may be called again.
// Any other error is an I/O failure and is returned again by every later call.
func (r *Reader) Next() (Line, error) {
	if r.err != nil {
		return Line{}, r.err
	}
	if !r.started {
		r.started = true
		b, err := r.br.Peek(len(utf8BOM))
		if bytes.Equal(b, utf8BOM) {
			_, _ = r.br.Discard(len(utf8BOM)) // cannot fail: the bytes are buffered
			r.offset = int64(len(utf8BOM))
		} else if err != nil && err != io.EOF {
			// bufio hands out a read error only once, so keep it here rather than lose it.
			r.err = fmt.Errorf("jsonl: reading line 1: %w", err)
			return Line{}, r.err
		}
	}
	for {
		content, n, tooLarge, err := r.readLine()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				err = fmt.Errorf("jsonl: reading line %d: %w", r.number+1, err)
			}
			r.err = err
			return Line{}, err
		}
		r.number++
		line := Line{Number: r.number, Offset: r.offset}
		r.offset += n
		if tooLarge {
			return line, lineErr(line.Number, CodeLineTooLarge, "",
				"line is longer than the limit of %d bytes", r.max)
		}
		if isBlank(content) {
			continue
		}
		line.Bytes = content
		if le := checkEncoding(line); le != nil {
			line.Bytes = nil
			return line, le
		}
		return line, nil
	}
}

// readLine consumes one physical line. It returns the content without its terminator, the
// number of raw bytes consumed, and whether the content exceeded the limit (then content is
// nil and the whole line has been skipped). err is io.EOF only when no byte was left.
func (r *Reader) readLine() (content []byte, n int64, tooLarge bool, err error) {
	frag, err := r.br.ReadSlice('\n')
	n = int64(len(frag))
	switch {
	case err == nil || (errors.Is(err, io.EOF) && len(frag) > 0):
		// Fast path: the whole line sits in the bufio buffer; return it without copying.
		content = frag
	case errors.Is(err, bufio.ErrBufferFull):
		content, tooLarge, err = r.readLong(frag, &n)
		if err != nil {
			return nil, n, false, err
		}
		if tooLarge {
			return nil, n, true, nil
		}
	default:
		return nil, n, false, err // io.EOF with nothing left, or an I/O failure
	}
	if len(content) > 0 && content[len(content)-1] == '\n' {
		content = content[:len(content)-1]
		if len(content) > 0 && content[len(content)-1] == '\r' {
			content = content[:len(content)-1]
		}
	}
	if len(content) > r.max {
		return nil, n, true, nil
	}
	return content, n, false, nil
}

// readLong assembles a line that did not fit in the bufio buffer. It stops buffering as soon as
// the line is certainly too long (more than max+1 bytes without "\n": even if the last one is
// the "\r" of a "\r\n", the content is over the limit) and skips the rest, so memory stays at
// about max plus one bufio buffer.
func (r *Reader) readLong(first []byte, n *int64) (line []byte, tooLarge bool, err error) {
	r.buf = append(r.buf[:0], first...)
	for {
		if len(r.buf) > r.max+1 {
			return nil, true, r.skipRest(n)
		}
		frag, err := r.br.ReadSlice('\n')
		*n += int64(len(frag))
		r.buf = append(r.buf, frag...)
		switch {
		case err == nil || err == io.EOF:
			// At io.EOF the buffer is non-empty (first was), so this is an unterminated last line.
			return r.buf, false, nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return nil, false, err
		}
	}
}

// skipRest discards input up to and including the next "\n" (or the end of input).
func (r *Reader) skipRest(n *int64) error {
	for {
		frag, err := r.br.ReadSlice('\n')
		*n += int64(len(frag))
		switch {
		case err == nil || err == io.EOF:
			return nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return err
		}
	}
}

// isBlank reports whether b holds only JSON whitespace other than "\n" (which cannot occur in
// a line). Other Unicode spaces are not blank: a JSON parser would reject them too.
func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// checkEncoding rejects invalid UTF-8 and NUL bytes, naming the offset of the first bad byte in
// the line and in the file.
func checkEncoding(line Line) *LineError {
	b := line.Bytes
	if !utf8.Valid(b) {
		i := 0
		for i < len(b) {
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			i += size
		}
		return lineErr(line.Number, CodeInvalidUTF8, "",
			"invalid UTF-8 byte 0x%02x at offset %d in the line (file offset %d)",
			b[i], i, line.Offset+int64(i))
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return lineErr(line.Number, CodeInvalidJSONLine, "",
			"NUL byte at offset %d in the line (file offset %d); this line is not parseable as valid JSON",
			i, line.Offset+int64(i))
	}
	return nil
}

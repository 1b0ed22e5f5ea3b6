package main

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// chatPath is the endpoint every generated line targets.
const chatPath = "/v1/chat/completions"

// filler pads message contents to a chosen line size; plain ASCII so a line's size is its
// length in bytes and no JSON escaping is involved.
var filler = strings.Repeat(" the quick brown fox jumps over the lazy dog", 256)

// appendLine appends input line i (1-based) for model: an OpenAI batch line with a chat body whose
// user message is padded with pad bytes of text.
func appendLine(b []byte, i int, model string, pad int) []byte {
	return appendLineAsking(b, i, i, model, pad)
}

// appendLineAsking is appendLine whose body asks question q: lines asking the same q carry the
// same body (what request coalescing sends once).
func appendLineAsking(b []byte, i, q int, model string, pad int) []byte {
	b = append(b, `{"custom_id":"req-`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `","method":"POST","url":"`+chatPath+`","body":{"model":"`...)
	b = append(b, model...)
	b = append(b, `","messages":[{"role":"user","content":"request `...)
	b = strconv.AppendInt(b, int64(q), 10)
	for pad > 0 {
		n := min(pad, len(filler))
		b = append(b, filler[:n]...)
		pad -= n
	}
	b = append(b, `"}],"max_tokens":16}}`...)
	return append(b, '\n')
}

// modelFor spreads lines over models round-robin, so that every model's requests are interleaved
// through the file as in a mixed real batch.
func modelFor(models []string, i int) string { return models[(i-1)%len(models)] }

// genJSONL returns an n-line file over models.
func genJSONL(n int, models []string, pad int) []byte {
	b := make([]byte, 0, n*(160+pad))
	for i := 1; i <= n; i++ {
		b = appendLine(b, i, modelFor(models, i), pad)
	}
	return b
}

// writeJSONL streams the same file to w without holding it in memory.
func writeJSONL(w io.Writer, n int, models []string, pad int) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	var total int64
	var line []byte
	for i := 1; i <= n; i++ {
		line = appendLine(line[:0], i, modelFor(models, i), pad)
		k, err := bw.Write(line)
		total += int64(k)
		if err != nil {
			return total, err
		}
	}
	return total, bw.Flush()
}

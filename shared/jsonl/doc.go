// Package jsonl reads and validates Batch API input files: JSON Lines where every line is one
// request, {"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{...}}.
//
// Files can be hundreds of megabytes and single lines several megabytes, so nothing here holds a
// whole file: Reader hands out one line at a time from a reused buffer and Validator keeps only
// per-file bookkeeping (seen custom_ids, per-model totals), which is capped by Rules.MaxLines.
//
// # Line rules (Reader)
//
//   - A UTF-8 byte order mark (EF BB BF) at the very start of the file is skipped. Offsets still
//     count it, so line 1 of a file with a BOM starts at offset 3. A BOM anywhere else is
//     ordinary content (and then fails JSON parsing).
//   - "\n" and "\r\n" end a line; the terminator is not part of Line.Bytes. A "\r" that is not
//     directly followed by "\n" is content, including one at the very end of the file.
//   - The last line does not need a terminator.
//   - Lines that are empty or hold only JSON whitespace (space, tab, "\r") are skipped, but they
//     still count for line numbers and offsets, so numbers match what an editor shows.
//   - A line whose content (terminator excluded) is longer than the limit (default 16 MiB) is
//     never truncated: Next returns a *LineError with code line_too_large, discards the rest of
//     that line without buffering it, and the following call continues with the next line.
//   - Invalid UTF-8 gives code invalid_utf8; the message names the line and the byte offset of
//     the first bad byte both within the line and within the file.
//   - A NUL byte gives code invalid_json_line: JSON never allows a raw NUL, and rejecting it
//     here gives a precise offset instead of a generic parse error.
//
// After a *LineError, Next can be called again; after any other error (including io.EOF) it
// keeps returning that error.
//
// # Request rules (Validator)
//
// Each line must be a JSON object. Unknown top-level keys are ignored. Keys are matched exactly
// (case-sensitive, after JSON unescaping). A repeated key among custom_id, method, url and body,
// or a repeated "model" or "stream" inside body, is rejected: JSON parsers disagree on which
// copy wins, so the value validated here could differ from the one the inference server uses.
//
//   - custom_id: a non-empty string (missing_custom_id), at most MaxCustomID bytes (default 64),
//     printable ASCII 0x20-0x7E only and without leading or trailing spaces, so it survives being
//     sent as an HTTP header unchanged (invalid_custom_id); unique within the file
//     (duplicate_custom_id, naming both lines).
//   - method: "POST", compared case-insensitively (invalid_method); Request.Method is always
//     "POST".
//   - url: exactly one of Rules.AllowedURLs, byte for byte, with no normalisation (invalid_url);
//     equal to Rules.Endpoint when that is set (url_mismatch).
//   - body: a JSON object (invalid_body) of at most MaxBodyBytes raw bytes, default 10 MiB
//     (body_too_large). body.model: a non-empty string (missing_model) of at most 256 bytes and
//     accepted by Rules.ModelAllowed (model_not_found). body.stream: absent, false or null;
//     anything else (true, but also "true" or 1, which lenient servers coerce to true) gives
//     stream_not_supported.
//   - At most MaxLines request lines (default 50000); the first line over the limit gets
//     too_many_lines, once.
//   - A file without any request line gives empty_file from Finish.
//
// A line gets at most one error: the first failing check in the order above, after the
// encoding checks (which Check repeats for lines that did not come from a Reader) and JSON
// parsing. The line that crosses MaxLines gets too_many_lines instead of its own checks.
package jsonl

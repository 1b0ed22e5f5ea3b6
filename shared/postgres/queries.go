package postgres

import (
	"embed"
	"fmt"
	"io/fs"
	"strings"
)

// Queries live in queries*.sql: queries.sql holds the request lifecycle (ingest, claim,
// execute, finalise, rescue) and queries_api.sql what only the HTTP API reads and writes.
//
//go:embed queries*.sql
var queryFiles embed.FS

// queries maps a query name to its SQL, parsed once at start-up. A name defined twice is a
// programming error and panics here, at init, rather than silently shadowing.
//
// A block headed "-- fragment: Name" is not a query but a piece of one that several queries
// share (a row shape that must not drift between them); a query includes it as {{Name}}.
var queries = loadQueries()

func loadQueries() map[string]string {
	out, fragments := map[string]string{}, map[string]string{}
	names, _ := fs.Glob(queryFiles, "queries*.sql")
	for _, n := range names {
		b, err := queryFiles.ReadFile(n)
		if err != nil {
			panic(err)
		}
		qs, frags := parseQueries(string(b))
		merge(out, qs, n)
		merge(fragments, frags, n)
	}
	for k, v := range out {
		for f, body := range fragments {
			v = strings.ReplaceAll(v, "{{"+f+"}}", body)
		}
		if strings.Contains(v, "{{") {
			panic(fmt.Sprintf("postgres: query %q includes an unknown fragment", k))
		}
		out[k] = v
	}
	return out
}

func merge(into, m map[string]string, file string) {
	for k, v := range m {
		if _, dup := into[k]; dup {
			panic(fmt.Sprintf("postgres: query %q defined twice (%s)", k, file))
		}
		into[k] = v
	}
}

func parseQueries(src string) (queries, fragments map[string]string) {
	queries, fragments = map[string]string{}, map[string]string{}
	var name string
	into := queries
	var body strings.Builder
	flush := func() {
		if name != "" {
			into[name] = strings.TrimSpace(body.String())
		}
		body.Reset()
	}
	for _, line := range strings.Split(src, "\n") {
		if n, ok := strings.CutPrefix(strings.TrimSpace(line), "-- name:"); ok {
			flush()
			name, into = strings.TrimSpace(n), queries
			continue
		}
		if n, ok := strings.CutPrefix(strings.TrimSpace(line), "-- fragment:"); ok {
			flush()
			name, into = strings.TrimSpace(n), fragments
			continue
		}
		if name != "" {
			body.WriteString(line)
			body.WriteByte('\n')
		}
	}
	flush()
	return queries, fragments
}

// q returns the named query; a missing name is a programming error caught by the tests.
func q(name string) string {
	s, ok := queries[name]
	if !ok {
		panic(fmt.Sprintf("postgres: no query named %q in queries.sql", name))
	}
	return s
}

// Queries returns every named query (for tests that prepare them all against the schema).
func Queries() map[string]string { return queries }

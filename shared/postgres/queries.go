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
var queries = loadQueries()

func loadQueries() map[string]string {
	out := map[string]string{}
	names, _ := fs.Glob(queryFiles, "queries*.sql")
	for _, n := range names {
		b, err := queryFiles.ReadFile(n)
		if err != nil {
			panic(err)
		}
		for k, v := range parseQueries(string(b)) {
			if _, dup := out[k]; dup {
				panic(fmt.Sprintf("postgres: query %q defined twice (%s)", k, n))
			}
			out[k] = v
		}
	}
	return out
}

func parseQueries(src string) map[string]string {
	out := map[string]string{}
	var name string
	var body strings.Builder
	flush := func() {
		if name != "" {
			out[name] = strings.TrimSpace(body.String())
		}
		body.Reset()
	}
	for _, line := range strings.Split(src, "\n") {
		if n, ok := strings.CutPrefix(strings.TrimSpace(line), "-- name:"); ok {
			flush()
			name = strings.TrimSpace(n)
			continue
		}
		if name != "" {
			body.WriteString(line)
			body.WriteByte('\n')
		}
	}
	flush()
	return out
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

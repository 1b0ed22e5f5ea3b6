package postgres_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// sqlFiles returns the text of every .sql file of the package (queries and migrations) by name,
// with -- comments removed so that prose is not mistaken for SQL.
func sqlFiles(t *testing.T) map[string]string {
	t.Helper()
	names, err := filepath.Glob("*.sql")
	require.NoError(t, err)
	migrations, err := filepath.Glob("migrations/*.sql")
	require.NoError(t, err)
	names = append(names, migrations...)
	require.NotEmpty(t, migrations)
	comment := regexp.MustCompile(`--[^\n]*`)
	out := map[string]string{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		require.NoError(t, err)
		out[n] = comment.ReplaceAllString(string(b), "")
	}
	return out
}

var quoted = regexp.MustCompile(`'([^']*)'`)

// literalsOf returns the string literals the SQL compares column with or assigns to it: col = 'x',
// col <> 'x', col [NOT] IN ('x', …), col = CASE … THEN 'x' … ELSE 'y' END and
// CASE … THEN 'x' … END AS col.
func literalsOf(sql, col string) []string {
	var out []string
	c := `\b` + col + `\b`
	for _, m := range regexp.MustCompile(`(?i)`+c+`\s*(?:=|<>|!=)\s*'([^']*)'`).FindAllStringSubmatch(sql, -1) {
		out = append(out, m[1])
	}
	for _, m := range regexp.MustCompile(`(?i)`+c+`\s+(?:NOT\s+)?IN\s*\(([^)]*)\)`).FindAllStringSubmatch(sql, -1) {
		for _, q := range quoted.FindAllStringSubmatch(m[1], -1) {
			out = append(out, q[1])
		}
	}
	for _, m := range regexp.MustCompile(`(?is)`+c+`\s*=\s*CASE\b(.*?)\bEND\b`).FindAllStringSubmatch(sql, -1) {
		for _, q := range thenElse.FindAllStringSubmatch(m[1], -1) {
			out = append(out, q[1])
		}
	}
	for _, loc := range regexp.MustCompile(`(?i)\bEND\s+AS\s+`+col+`\b`).FindAllStringIndex(sql, -1) {
		before := sql[:loc[0]]
		start := strings.LastIndex(strings.ToUpper(before), "CASE")
		if start < 0 {
			continue
		}
		for _, q := range thenElse.FindAllStringSubmatch(before[start:], -1) {
			out = append(out, q[1])
		}
	}
	return out
}

var thenElse = regexp.MustCompile(`(?i)\b(?:THEN|ELSE)\s+'([^']*)'`)

func names[S ~string](vs []S) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// SQL cannot import the domain's constants, so this keeps its literals from drifting: every
// request state, batch or file status and worker status the queries and migrations name is one
// the domain declares, and the tables' CHECK constraints allow exactly the domain's values.
func TestEveryStatusLiteralInTheSQLIsADomainValue(t *testing.T) {
	t.Parallel()
	states := names(domain.RequestStates)
	statuses := append(names(domain.BatchStatuses), domain.FileStatuses...)
	checked := 0
	for file, sql := range sqlFiles(t) {
		for _, l := range literalsOf(sql, "state") {
			require.Contains(t, states, l, "%s: request state %q is not a domain.RequestState", file, l)
			checked++
		}
		for _, l := range literalsOf(sql, "status") {
			require.Contains(t, statuses, l, "%s: status %q is neither a domain.BatchStatus nor a file status", file, l)
			checked++
		}
	}
	require.Greater(t, checked, 50, "the patterns still find the SQL's literals")
	workers := 0
	for file, sql := range sqlFiles(t) {
		for _, l := range literalsOf(sql, "worker_status") {
			require.Contains(t, names(domain.WorkerStatuses), l, "%s: worker status %q is not a domain.WorkerStatus", file, l)
			workers++
		}
	}
	require.Equal(t, len(domain.WorkerStatuses), workers, "ListWorkers names every worker status once")
	deliveries := 0
	for file, sql := range sqlFiles(t) {
		for _, l := range literalsOf(sql, "delivery_state") {
			require.Contains(t, domain.DeliveryStates, l, "%s: delivery state %q is not a domain delivery state", file, l)
			deliveries++
		}
	}
	require.Greater(t, deliveries, 5, "the webhook queries' delivery states are found")

	check := regexp.MustCompile(`(?i)CHECK\s*\(\s*(state|status|delivery_state)\s+IN\s*\(([^)]*)\)\s*\)`)
	var constraints [][]string
	for _, sql := range sqlFiles(t) {
		for _, m := range check.FindAllStringSubmatch(sql, -1) {
			var vals []string
			for _, q := range quoted.FindAllStringSubmatch(m[2], -1) {
				vals = append(vals, q[1])
			}
			slices.Sort(vals)
			constraints = append(constraints, vals)
		}
	}
	for _, want := range [][]string{states, names(domain.BatchStatuses), domain.FileStatuses, domain.DeliveryStates} {
		want = slices.Sorted(slices.Values(want))
		require.True(t, slices.ContainsFunc(constraints, func(c []string) bool { return slices.Equal(c, want) }),
			"no CHECK constraint allows exactly %s; found %v", strings.Join(want, ", "), constraints)
	}
}

// The error codes the SQL writes into requests.error_code are the domain's.
func TestEveryErrorCodeLiteralInTheSQLIsADomainCode(t *testing.T) {
	t.Parallel()
	codes := []string{domain.CodeBatchExpired, domain.CodeBatchCancelled, domain.CodeRequestCancelled}
	found := map[string]bool{}
	for file, sql := range sqlFiles(t) {
		for _, l := range literalsOf(sql, "error_code") {
			require.Contains(t, codes, l, "%s: error code %q is not declared in shared/domain", file, l)
			found[l] = true
		}
	}
	for _, c := range codes {
		require.True(t, found[c], "the patterns still find %q in the SQL", c)
	}
}

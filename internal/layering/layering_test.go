package layering

import (
	"go/build"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/fusillade/fusillade/"

// core are the packages that hold fusillade's behaviour. They and every package of the module
// they import (directly or not) must not import an adapter.
var core = []string{"shared/batches", "shared/domain", "shared/engine", "shared/httpapi", "shared/idempotency", "shared/ingest",
	"shared/lambdafn", "shared/webhooks"}

// adapters are the packages that implement the domain's interfaces on a technology, and the
// client libraries of those technologies.
var adapters = []string{
	module + "shared/postgres",
	module + "shared/s3blob",
	module + "shared/sqsqueue",
	module + "shared/secrets",
	module + "shared/emf",
	module + "shared/prometheus",
	"github.com/jackc/pgx",
	"github.com/prometheus/",
	"github.com/aws/aws-sdk-go-v2/service/",
}

func isAdapter(path string) bool {
	for _, a := range adapters {
		if path == a || strings.HasPrefix(path, strings.TrimSuffix(a, "/")+"/") {
			return true
		}
	}
	return false
}

// repoRoot is the module's root, two directories above this file.
func repoRoot(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok, "no caller information")
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// violations returns "importer imports adapter" for every adapter import reachable from the
// packages start (module-relative paths), reading the non-test Go files of each package with the
// default build constraints.
func violations(t *testing.T, root string, start []string) []string {
	t.Helper()
	seen := map[string]bool{}
	var bad []string
	var visit func(rel string)
	visit = func(rel string) {
		if seen[rel] {
			return
		}
		seen[rel] = true
		pkg, err := build.Default.ImportDir(filepath.Join(root, filepath.FromSlash(rel)), 0)
		require.NoError(t, err, "read package %s", rel)
		for _, imp := range pkg.Imports {
			if isAdapter(imp) {
				bad = append(bad, rel+" imports "+imp)
				continue
			}
			if next, ok := strings.CutPrefix(imp, module); ok {
				visit(next)
			}
		}
	}
	for _, rel := range start {
		visit(rel)
	}
	sort.Strings(bad)
	return bad
}

func TestCorePackagesImportNoAdapter(t *testing.T) {
	t.Parallel()
	assert.Empty(t, violations(t, repoRoot(t), core), "the core speaks shared/domain's types; an adapter belongs in shared/wire or a main")
}

// The check reads real packages: the wiring does import adapters, so an empty answer above is
// not an accident of paths.
func TestTheLayeringCheckSeesTheAdaptersOfTheWiring(t *testing.T) {
	t.Parallel()
	require.NotEmpty(t, violations(t, repoRoot(t), []string{"shared/wire"}),
		"shared/wire imports postgres, s3blob, sqsqueue and secrets, yet no adapter import was found")
}

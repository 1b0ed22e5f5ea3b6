package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/dashboard"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	b, err := io.ReadAll(w.Result().Body)
	require.NoError(t, err)
	return w.Code, string(b)
}

var (
	htmlRef     = regexp.MustCompile(`(?:src|href)="([^"#:]+)"`)
	jsImport    = regexp.MustCompile(`(?m)^import .* from "\./([^"]+)";$`)
	inlineCode  = regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|<style|\son[a-z]+=|\sstyle=|javascript:`)
	scriptNoSrc = regexp.MustCompile(`(?i)<script(?:(?:\s+[a-z-]+(?:="[^"]*")?)*)>`)
)

// Everything the pages load is served: the index page's scripts and stylesheets and every
// module's imports name assets; nothing is inline (the Content-Security-Policy would block it).
func TestEveryReferencedAssetIsServedAndNothingIsInline(t *testing.T) {
	t.Parallel()
	h := dashboard.Handler(http.NotFoundHandler())
	names := dashboard.Names()
	require.Contains(t, names, "index.html")
	code, index := get(t, h, "/ui/")
	require.Equal(t, http.StatusOK, code)
	refs := htmlRef.FindAllStringSubmatch(index, -1)
	require.GreaterOrEqual(t, len(refs), 2, "the index page loads a script and a stylesheet")
	for _, m := range refs {
		assert.Contains(t, names, m[1], "index.html refers to %s", m[1])
	}
	for _, tag := range scriptNoSrc.FindAllString(index, -1) {
		assert.Contains(t, tag, ` src="`, "a script without src: %s", tag)
	}
	imports := 0
	for _, n := range names {
		code, body := get(t, h, "/ui/"+n)
		require.Equal(t, http.StatusOK, code, n)
		assert.NotRegexp(t, inlineCode, body, "%s has inline script or style", n)
		for _, m := range jsImport.FindAllStringSubmatch(body, -1) {
			imports++
			assert.True(t, slices.Contains(names, m[1]), "%s imports %s, which is not served", n, m[1])
		}
	}
	assert.GreaterOrEqual(t, imports, 5, "the modules' imports were read")
}

// A name that is no asset reaches the notFound handler, whatever its shape.
func TestAnUnknownAssetIsNotFound(t *testing.T) {
	t.Parallel()
	h := dashboard.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for _, p := range []string{"/ui/nope.js", "/ui/assets/index.html", "/ui/index.html/", "/ui//app.js", "/other/app.js"} {
		code, _ := get(t, h, p)
		assert.Equal(t, http.StatusTeapot, code, p)
	}
}

package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/dashboard"
)

// The dashboard is served under /ui/ without a key and without touching the store (the fake
// fails the test on any call): its index page, its assets by name with their types and security
// headers, a redirect from /ui, and the unknown-URL 404 for any other name.
func TestTheDashboardIsServedWithoutAKey(t *testing.T) {
	t.Parallel()
	h := newAPI(newFake(t))

	w := call(t, h, "GET", "/ui/", "", "")
	require.Equal(t, http.StatusOK, w.Code, "body %s", w.Body)
	assert.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"))
	assert.Contains(t, w.Body.String(), `<script type="module" src="app.js"></script>`)
	assert.Equal(t, dashboard.ContentSecurityPolicy, w.Header().Get("Content-Security-Policy"))
	assert.Contains(t, w.Header().Get("Content-Security-Policy"), "script-src 'self';")
	assert.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
	assert.Equal(t, "no-cache", w.Header().Get("Cache-Control"))
	etag := w.Header().Get("ETag")
	require.NotEmpty(t, etag)

	again := call(t, h, "GET", "/ui/", "", "", "If-None-Match", etag)
	assert.Equal(t, http.StatusNotModified, again.Code, "an unchanged asset is a 304")
	assert.Empty(t, again.Body.String())

	js := call(t, h, "GET", "/ui/app.js", "", "")
	require.Equal(t, http.StatusOK, js.Code)
	assert.Equal(t, "text/javascript; charset=utf-8", js.Header().Get("Content-Type"))
	assert.NotEqual(t, etag, js.Header().Get("ETag"))
	css := call(t, h, "GET", "/ui/style.css", "", "")
	require.Equal(t, http.StatusOK, css.Code)
	assert.Equal(t, "text/css; charset=utf-8", css.Header().Get("Content-Type"))

	redirect := call(t, h, "GET", "/ui", "", "")
	assert.Equal(t, http.StatusTemporaryRedirect, redirect.Code)
	assert.Equal(t, "/ui/", redirect.Header().Get("Location"))

	for _, p := range []string{"/ui/nope.js", "/ui/index.html/x", "/ui/assets/app.js", "/ui/..%2fdashboard.go", "/ui/APP.JS"} {
		w := call(t, h, "GET", p, "", "")
		require.Equal(t, http.StatusNotFound, w.Code, "%s: %s", p, w.Body)
		assert.Contains(t, errorOf(t, w).Error.Message, "Unknown request URL: GET ", p)
	}
	post := call(t, h, "POST", "/ui/", "", "")
	require.Equal(t, http.StatusNotFound, post.Code, "the assets are read-only")
	assert.Equal(t, "Unknown request URL: POST /ui/.", errorOf(t, post).Error.Message)
}

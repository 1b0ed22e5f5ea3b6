// Package dashboard is the web dashboard: static HTML, CSS and ES modules embedded in the binary
// and served by the API function under /ui/ (docs/dashboard.md). It serves files only; every
// piece of data the pages show comes from the JSON API, called by the browser with the signed-in
// key as its bearer token, so the dashboard needs no key, session or state of its own.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var files embed.FS

// Prefix is where the dashboard is mounted.
const Prefix = "/ui/"

// ContentSecurityPolicy allows the pages nothing but their own assets: no inline script or
// style, no frames, no forms posted anywhere. connect-src also allows https: (a presigned S3
// upload URL on AWS) and loopback http (the local stack's S3), the only places the pages send
// file bytes to other than the API itself.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' https: http://127.0.0.1:* http://localhost:*; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// contentTypes are the kinds of asset the dashboard ships, spelled here rather than taken from the
// system's MIME table, which differs between machines.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

type asset struct {
	body        []byte
	contentType string
	etag        string
}

// Handler serves the dashboard's assets below Prefix: the index page at Prefix itself, and each
// asset by its name. Any other path, including an asset's name with a query the pages never
// send, is answered by notFound. Assets are revalidated on every load (Cache-Control: no-cache)
// against a strong ETag of their content, so a deployment is seen at once and an unchanged asset
// costs a 304.
func Handler(notFound http.Handler) http.Handler {
	assets := load()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		if !ok {
			notFound.ServeHTTP(w, r)
			return
		}
		if name == "" {
			name = "index.html"
		}
		a, ok := assets[name]
		if !ok {
			notFound.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
	})
}

// Names lists the served asset names, for tests.
func Names() []string {
	var out []string
	for n := range load() {
		out = append(out, n)
	}
	return out
}

// load reads every embedded asset once. The set is fixed at build time, so a failure here is a
// build defect and panics.
func load() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(files, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("%s: no content type for its extension", p)
		}
		sum := sha256.Sum256(b)
		out[strings.TrimPrefix(p, "assets/")] = asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		return nil
	})
	if err != nil {
		panic("dashboard: " + err.Error())
	}
	return out
}

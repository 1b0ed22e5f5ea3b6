package stack_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
)

// The dashboard in a real browser (Debian's chromium, headless, driven over the DevTools
// protocol) against a running stack: sign in with a tenant key, watch a running batch's bar
// move, open its results, cancel a batch, upload a file and see it listed and validated (a bad
// line shown by its number), then sign in as an admin and change a model's limit, confirmed
// through the API. Every check reads the DOM; a screenshot of each page goes to build/ui-*.png.
// Chromium missing fails the test: `make test` installs it (the deps target).
func TestDashboardInABrowser(t *testing.T) {
	// Installed before anything starts: npm ci takes seconds that the running batches must not.
	axeSource, err := os.ReadFile(filepath.Join(nodePackages(t), "node_modules", "axe-core", "axe.min.js"))
	require.NoError(t, err)
	chromium, err := exec.LookPath("chromium")
	require.NoError(t, err, "chromium is needed for the dashboard test: `make test` installs it")
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 2}, {Name: "parked", Limit: 0}},
		PurgeEvery: 200 * time.Millisecond,
		Env:        map[string]string{"COMPLETION_WINDOWS": "24h,48h", "WEBHOOK_ALLOW_PRIVATE": "true"}})
	// A webhook receiver that answers 204 to everything; the dashboard registers it below.
	var hooks atomic.Int32
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hooks.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)
	c := client(st, st.APIKey)
	shots := screenshotDir(t)

	// A slow batch (30 lines of 400 ms over 2 slots: about 6 s) and one that cannot run.
	slow := newBatch(t, c, uploadSDK(t, c, paced("mock-chat", 30, 400)).ID)
	parked := newBatch(t, c, uploadSDK(t, c, lines(chatLine("p1", "parked"), chatLine("p2", "parked"))).ID)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000))...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	type step = chromedp.Action[chromedp.Void]
	var shot func(page string) step
	run := func(what string, steps ...step) {
		t.Helper()
		err := chromedp.Do(browser, steps...)
		if err != nil {
			// What the page showed when the step failed, for the reader of the failure.
			_ = chromedp.Do(browser, shot("failed"))
			html, _ := chromedp.Run(browser, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
			t.Logf("the page at the failure (build/ui-failed.png):\n%s", html)
		}
		require.NoError(t, err, what)
	}
	// Every page that gets a screenshot is also audited with axe-core (pinned in tests/node) against
	// WCAG 2.1 A and AA; the violations of every page are reported together at the end.
	type violation struct {
		ID     string   `json:"id"`
		Impact string   `json:"impact"`
		Help   string   `json:"help"`
		Nodes  []string `json:"nodes"`
	}
	violations := map[string][]violation{}
	audit := func(ctx context.Context, tg *chromedp.Target, page string) error {
		if _, err := chromedp.Evaluate[bool]("(typeof axe !== 'undefined') || (() => { "+string(axeSource)+"\n; return true })()")(ctx, tg); err != nil {
			return fmt.Errorf("load axe-core: %w", err)
		}
		found, err := chromedp.Evaluate[[]violation](`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})
			.then(r => r.violations.map(v => ({id: v.id, impact: v.impact || "", help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))})))`,
			chromedp.EvalAwaitPromise)(ctx, tg)
		if err != nil {
			return fmt.Errorf("axe.run: %w", err)
		}
		if len(found) > 0 {
			violations[page] = found
		}
		return nil
	}
	t.Cleanup(func() {
		assert.Empty(t, violations, "accessibility violations (axe-core, WCAG 2.1 A/AA) by page")
	})
	shot = func(page string) step {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(shots, "ui-"+page+".png"), png, 0o644); err != nil || page == "failed" {
				return err
			}
			return audit(ctx, tg, page)
		})
	}
	// until waits for a JavaScript condition on the page to hold; eval runs a statement.
	until := func(expr string) step {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool]("Boolean("+expr+")", chromedp.WithPollingInterval(50*time.Millisecond),
				chromedp.WithPollingTimeout(20*time.Second))(ctx, tg)
			if err != nil {
				return fmt.Errorf("waiting for %s: %w", expr, err)
			}
			return nil
		})
	}
	eval := func(stmt string) step {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool]("("+stmt+", true)")(ctx, tg)
			return err
		})
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(browser, chromedp.TextContent(css(sel)))
		require.NoError(t, err, "read %s", sel)
		return s
	}
	evalInt := func(expr string) int {
		t.Helper()
		v, err := chromedp.Run(browser, chromedp.Evaluate[int](expr))
		require.NoError(t, err, "evaluate %s", expr)
		return v
	}
	valueNow := func(sel string) int {
		t.Helper()
		return evalInt(fmt.Sprintf(`Number(document.querySelector(%q).getAttribute("aria-valuenow"))`, sel))
	}
	signIn := func(key string) {
		t.Helper()
		run("sign in", chromedp.Navigate(st.APIURL+"/ui/"), chromedp.WaitVisible(css("#api-key")),
			chromedp.SendKeys(css("#api-key"), key), chromedp.Click(css(`#sign-in button[type="submit"]`)),
			chromedp.WaitVisible(css("#nav")))
	}

	// Sign in with a tenant key: the batches list, no admin link, the slow batch's bar moving.
	run("the sign-in page", chromedp.Navigate(st.APIURL+"/ui/"), chromedp.WaitVisible(css("#api-key")), shot("sign-in"))
	run("a refused key", chromedp.SendKeys(css("#api-key"), "fsk_0000000000000000000000000000000000000000"),
		chromedp.Click(css(`#sign-in button[type="submit"]`)), chromedp.WaitVisible(css(`#sign-in-result [role="alert"]`)))
	require.Contains(t, text("#sign-in-result"), "refused")
	signIn(st.APIKey)
	row := fmt.Sprintf(`#batch-rows tr[data-id=%q] [role="progressbar"]`, slow.ID)
	run("the batches list", chromedp.WaitVisible(css(row)), until(`document.getElementById("nav-admin").hidden`))
	first := valueNow(row)
	run("the list's bar moves", until(fmt.Sprintf(`Number(document.querySelector(%q).getAttribute("aria-valuenow")) > %d`, row, first)), shot("batches"))
	require.Contains(t, text(fmt.Sprintf(`#batch-rows tr[data-id=%q]`, parked.ID)), "in_progress")

	// The slow batch's page: its bar moves, its results table has its lines.
	run("open the batch", chromedp.Click(css(fmt.Sprintf(`a[href="#/batches/%s"]`, slow.ID))),
		chromedp.WaitVisible(css(`#results-rows tr[data-custom-id="l0"]`)))
	seen := valueNow("#batch-progress")
	run("the batch's bar moves", until(fmt.Sprintf(`Number(document.querySelector("#batch-progress").getAttribute("aria-valuenow")) > %d`, seen)))
	run("the batch ends", until(`document.querySelector("#batch-status").textContent === "completed"`),
		until(`document.querySelectorAll("#results-rows tr[data-custom-id]").length === 30`),
		until(`[...document.querySelectorAll("#results-rows tr")].every(tr => tr.children[2].textContent === "completed" && tr.children[3].textContent.endsWith(" ms"))`),
		until(`document.querySelectorAll("#batch-chart polyline").length === 3`), shot("batch"))
	require.Equal(t, 30, valueNow("#batch-progress"))
	// Opened again after the end, the chart still draws the whole run (the batch's timeline, not
	// what the page saw): 61 points from nothing done to all 30.
	run("the chart of an ended batch", chromedp.Navigate(st.APIURL+"/ui/#/batches"), chromedp.WaitVisible(css("#batch-rows")),
		chromedp.Navigate(st.APIURL+"/ui/#/batches/"+slow.ID),
		until(`document.querySelector("#batch-chart") && document.querySelector("#batch-chart").dataset.completed === "30"`))
	require.Equal(t, 61, evalInt(`document.querySelector("#batch-chart polyline.completed").getAttribute("points").split(" ").length`))
	require.Equal(t, "off", text("#batch-coalescing"), "a batch created without coalescing says so")
	run("search the results", chromedp.SendKeys(css("#results-search"), "l1"),
		chromedp.Click(css(`#results-filters button[type="submit"]`)),
		until(`document.querySelectorAll("#results-rows tr[data-custom-id]").length === 11`)) // l1, l10..l19

	// Register a webhook endpoint from its page: the secret is shown once, the list shows its hint.
	run("register a webhook", chromedp.Click(css(`a[href="#/webhooks"]`)), chromedp.WaitVisible(css("#webhook-url")),
		chromedp.SendKeys(css("#webhook-url"), receiver.URL+"/hook"), chromedp.Click(css(`#webhook-form button[type="submit"]`)),
		chromedp.WaitVisible(css("#webhook-secret")), until(`document.querySelectorAll("#webhook-rows tr[data-id]").length === 1`), shot("webhooks"))
	secret := text("#webhook-secret")
	require.True(t, strings.HasPrefix(secret, "whsec_"), secret)
	require.NotContains(t, text("#webhook-rows"), secret, "the list shows a hint, never the secret")
	hooksList := callJSON(t, st, st.APIKey, "GET", "/v1/webhooks", nil).json(t)["data"].([]any)
	require.Len(t, hooksList, 1)
	require.Equal(t, receiver.URL+"/hook", hooksList[0].(map[string]any)["url"])
	require.ElementsMatch(t, []any{"batch.completed", "batch.failed", "batch.expired", "batch.cancelled"}, hooksList[0].(map[string]any)["event_types"])

	// A batch with a failed line: its error code is counted, and "Retry failed lines" runs it
	// again (the mock refuses its first attempt only), so the batch ends with every line completed.
	flaky := newBatch(t, c, uploadSDK(t, c, lines(chatLine("ok", "mock-chat"),
		`{"custom_id":"flaky","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","messages":[],"mock_status":400,"mock_fail_times":1,"mock_key":"dashboard-flaky"}}`)).ID)
	run("a failed line and its code", chromedp.Navigate(st.APIURL+"/ui/#/batches/"+flaky.ID),
		until(`document.querySelector("#batch-status") && document.querySelector("#batch-status").textContent === "completed"`),
		until(`document.querySelectorAll("#error-codes tr td.num").length === 1`),
		until(`!document.querySelector("#batch-retry").disabled`))
	require.Equal(t, "1", text("#error-codes tr td.num"))
	run("retry the failed line", chromedp.Click(css("#batch-retry")),
		until(`document.querySelector("#batch-status").textContent === "completed" && document.querySelector("#batch-retry").disabled`))
	retried, err := c.Batches.Get(ctx, flaky.ID)
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusCompleted, retried.Status)
	require.Equal(t, int64(2), retried.RequestCounts.Completed, "the retried line completed")
	require.Zero(t, retried.RequestCounts.Failed)

	// Extend the parked batch's deadline from its page: a window the API refuses is shown, an
	// allowed one moves the deadline.
	run("a refused extension", chromedp.Navigate(st.APIURL+"/ui/#/batches/"+parked.ID),
		until(`document.querySelector("#batch-status") && document.querySelector("#batch-status").textContent === "in_progress"`),
		chromedp.SendKeys(css("#extend-window"), "1h"), chromedp.Click(css(`#extend-form button[type="submit"]`)),
		until(`document.querySelector("#batch-message .error, #batch-message [role=alert]") !== null`))
	require.Contains(t, text("#batch-message"), "completion_window")
	run("extend the deadline", eval(`document.querySelector("#extend-window").value = ""`), chromedp.SendKeys(css("#extend-window"), "48h"),
		chromedp.Click(css(`#extend-form button[type="submit"]`)),
		until(`document.querySelector("#batch-message").textContent.includes("Deadline moved")`))
	extended, err := c.Batches.Get(ctx, parked.ID)
	require.NoError(t, err)
	require.Equal(t, "48h", string(extended.CompletionWindow))
	require.Equal(t, extended.CreatedAt+48*3600, extended.ExpiresAt)

	// Cancel the parked batch from its page.
	run("cancel a batch", chromedp.Navigate(st.APIURL+"/ui/#/batches/"+parked.ID),
		until(`document.querySelector("#batch-status") && document.querySelector("#batch-status").textContent === "in_progress"`),
		chromedp.Click(css("#batch-cancel")), until(`document.querySelector("#batch-cancel").dataset.armed === "true"`))
	// One click only asks: the batch still runs.
	require.Equal(t, "Confirm: cancel batch?", text("#batch-cancel"))
	armed, err := c.Batches.Get(ctx, parked.ID)
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusInProgress, armed.Status, "a single click cancels nothing")
	run("confirm the cancel", chromedp.Click(css("#batch-cancel")),
		until(`["cancelling", "cancelled"].includes(document.querySelector("#batch-status").textContent)`),
		until(`document.querySelector("#batch-cancel").disabled`), shot("batch-cancelled"))
	got, err := c.Batches.Get(ctx, parked.ID)
	require.NoError(t, err)
	require.Contains(t, []openai.BatchStatus{openai.BatchStatusCancelling, openai.BatchStatusCancelled}, got.Status)
	// Once cancelled, its unfinished lines run again as a linked batch, opened at once.
	run("rerun the cancelled batch", until(`document.querySelector("#batch-status").textContent === "cancelled"`),
		until(`!document.querySelector("#batch-rerun").disabled`))
	require.Equal(t, 1, evalInt(`document.querySelector("#batch-retry").disabled ? 1 : 0`), "a cancelled batch is rerun, not retried")
	run("open its rerun", chromedp.Click(css("#batch-rerun")),
		until(`document.querySelector("#batch-rerun-of") !== null`))
	require.Equal(t, parked.ID, text("#batch-rerun-of"))
	link := callJSON(t, st, st.APIKey, "GET", "/v1/batches/"+parked.ID, nil).json(t)
	require.NotEmpty(t, link["rerun_batch_id"])
	rerunPage, err := chromedp.Run(browser, chromedp.Evaluate[string](`location.hash`))
	require.NoError(t, err)
	require.Equal(t, "#/batches/"+link["rerun_batch_id"].(string), rerunPage)

	// Files: upload one (listed, then validated: valid for its own endpoint, every line shown
	// bad against another), and one whose line 2 names a model nobody serves (refused, with
	// that line shown).
	dir := t.TempDir()
	good := filepath.Join(dir, "good.jsonl")
	require.NoError(t, os.WriteFile(good, lines(chatLine("a", "mock-chat"), chatLine("b", "mock-chat")), 0o600))
	bad := filepath.Join(dir, "unknown-model.jsonl")
	require.NoError(t, os.WriteFile(bad, lines(chatLine("a", "mock-chat"), chatLine("b", "no-such-model")), 0o600))
	fileRow := `[...document.querySelectorAll("#file-rows tr")].find(tr => tr.textContent.includes("good.jsonl"))`
	run("upload a file", chromedp.Click(css(`a[href="#/files"]`)), chromedp.WaitVisible(css("#upload-file")),
		chromedp.SetUploadFiles(css("#upload-file"), []string{good}),
		chromedp.Click(css(`#upload-form button[type="submit"]`)),
		until(fileRow+` !== undefined`), until(`document.querySelector("#upload-progress").value === 1`),
		eval(fileRow+`.querySelector("button").click()`),
		until(`document.querySelector("#validation").dataset.valid === "true"`))
	require.Contains(t, text("#upload-result"), "Uploaded good.jsonl")
	require.Contains(t, text("#validation"), "Valid: 2 requests")
	run("validate against another endpoint", chromedp.SetValue(css("#validate-endpoint"), "/v1/embeddings"),
		eval(fileRow+`.querySelector("button").click()`),
		until(`document.querySelector("#validation").dataset.valid === "false"`),
		chromedp.WaitVisible(css(`#validation tr[data-line="2"]`)))
	require.Contains(t, text(`#validation tr[data-line="1"]`), "url_mismatch")
	run("a refused upload", chromedp.SetUploadFiles(css("#upload-file"), []string{bad}),
		chromedp.Click(css(`#upload-form button[type="submit"]`)),
		chromedp.WaitVisible(css(`#upload-result tr[data-line="2"]`)), shot("files"))
	require.Contains(t, text("#upload-result"), "unknown-model.jsonl was refused")
	require.Contains(t, text(`#upload-result tr[data-line="2"]`), "no-such-model")
	require.NotContains(t, text("#upload-result"), `data-line="1"`)
	// A file over the API's 4.5 MB multipart cap goes by the presigned path: a PUT straight to
	// the bucket (cross-origin, so the bucket's CORS rule matters), then complete.
	large := filepath.Join(dir, "large.jsonl")
	var big []string
	pad := strings.Repeat("x", 8000)
	for i := range 600 {
		big = append(big, fmt.Sprintf(`{"custom_id":"big-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","messages":[{"role":"user","content":%q}]}}`, i, pad))
	}
	require.NoError(t, os.WriteFile(large, lines(big...), 0o600))
	run("a large upload", chromedp.SetUploadFiles(css("#upload-file"), []string{large}),
		chromedp.Click(css(`#upload-form button[type="submit"]`)),
		until(`document.querySelector("#upload-result").textContent.includes("Uploaded large.jsonl")`))
	list, err := c.Files.List(ctx, openai.FileListParams{})
	require.NoError(t, err)
	var sizes = map[string]int64{}
	for _, f := range list.Data {
		sizes[f.Filename] = f.Bytes
	}
	require.Greater(t, sizes["large.jsonl"], int64(4_500_000), "the large file was stored whole")
	// Its content is over the API's inline cap, so the download the dashboard makes (a fetch with
	// the key, as api.js download does) is redirected to a presigned GET on the bucket's origin.
	var largeID string
	for _, f := range list.Data {
		if f.Filename == "large.jsonl" {
			largeID = f.ID
		}
	}
	size, err := chromedp.Run(browser, chromedp.Evaluate[float64](fmt.Sprintf(`fetch("/v1/files/%s/content",
		{headers: {Authorization: "Bearer " + sessionStorage.getItem("fusillade.key")}}).then(r => r.ok ? r.blob() : Promise.reject(r.status)).then(b => b.size)`, largeID),
		chromedp.EvalAwaitPromise))
	require.NoError(t, err, "the browser downloads a large file through the redirect")
	require.Equal(t, float64(sizes["large.jsonl"]), size)
	var names []string
	for _, f := range list.Data {
		names = append(names, f.Filename)
	}
	require.Contains(t, names, "good.jsonl")
	require.NotContains(t, names, "unknown-model.jsonl")

	// Delete the good file: one click arms the button, the second deletes.
	run("delete a file", eval(fileRow+`.querySelector("button.danger").click()`),
		until(fileRow+`.querySelector("button.danger").dataset.armed === "true"`),
		eval(fileRow+`.querySelector("button.danger").click()`),
		until(fileRow+` === undefined`))
	var goodID string
	for _, f := range list.Data {
		if f.Filename == "good.jsonl" {
			goodID = f.ID
		}
	}
	_, err = c.Files.Get(ctx, goodID)
	require.Error(t, err, "the deleted file is gone from the API")

	// The webhook's deliveries: the flaky batch's two completions (before and after the retry of
	// its failed line: a batch sealed again is a new event) and the parked batch's cancellation,
	// each delivered to the receiver.
	run("webhook deliveries", chromedp.Click(css(`a[href="#/webhooks"]`)), chromedp.WaitVisible(css("#webhook-rows tr[data-id] button.secondary")),
		eval(`document.querySelector("#webhook-rows tr[data-id] button.secondary").click()`),
		until(`[...document.querySelectorAll("#delivery-rows tr[data-state=delivered]")].map(tr => tr.children[1].textContent).sort().join() === "batch.cancelled,batch.completed,batch.completed"`))
	require.GreaterOrEqual(t, hooks.Load(), int32(3), "the receiver got the three events")

	// An admin: the models' limits, changed in place and confirmed through the API.
	run("sign out", chromedp.Click(css("#sign-out")), chromedp.WaitVisible(css("#api-key")))
	signIn(st.AdminKey)
	run("change a limit", chromedp.Click(css(`#nav-admin`)), chromedp.WaitVisible(css("#limit-mock-chat")),
		until(`document.querySelector('[data-in-flight="mock-chat"]').textContent === "0"`),
		until(`document.querySelectorAll("#tenant-rows tr").length >= 1`),
		chromedp.SetValue(css("#limit-mock-chat"), ""), chromedp.SendKeys(css("#limit-mock-chat"), "5"),
		chromedp.Click(css(`tr[data-model="mock-chat"] button[type="submit"]`)),
		until(`document.querySelector("#admin-message").textContent.includes("mock-chat: concurrency limit 5")`), shot("admin"))
	models := callJSON(t, st, st.AdminKey, "GET", "/v1/admin/models", nil).json(t)["data"].([]any)
	limits := map[string]float64{}
	for _, m := range models {
		limits[m.(map[string]any)["name"].(string)] = m.(map[string]any)["concurrency_limit"].(float64)
	}
	require.Equal(t, map[string]float64{"mock-chat": 5, "parked": 0}, limits)
	require.Contains(t, text("#tenant-rows"), st.TenantID)
	run("a tenant's keys", chromedp.Click(css(fmt.Sprintf(`#tenant-rows tr[data-id=%q] button`, st.TenantID))),
		until(`document.querySelectorAll("#key-table tbody tr").length >= 2`)) // the tenant key and the admin key
}

// screenshotDir is build/ at the repository's root, made if missing (git ignores it).
func screenshotDir(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "build")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

//! The status page in a real headless Chromium (Debian's `chromium`), driven over the DevTools
//! protocol on a pipe (`--remote-debugging-pipe`: NUL-separated JSON on fds 3 and 4, so no
//! WebSocket client is needed). The test loads the page at a phone's width, checks the four
//! cards and that failures show no error text without the admin token, clicks force sync,
//! answers the token prompt once, sees the new run appear and the error text with it, and forces
//! a second sync without being asked again; the token is kept in memory, not in the browser's
//! storage. The page runs at all only because its content security policy names its script's
//! hash (no `unsafe-inline`).
//!
//! A second test seeds a day of runs and checks the history charts (`/api/sync/history`): each
//! object's three charts drawn, failures marked besides their colour, the data table's numbers
//! equal to `sync_logs`' bucket by bucket, the 7-day toggle, no sideways scrolling at 390 px;
//! with `HUBSPOT_SYNC_SCREENSHOTS=<dir>` it also writes the README's screenshots there.
//!
//! A third test gives two accounts different runs: the page offers a selector of them (names and
//! portal ids, no secret variable names), and picking the other account shows its figures in
//! the cards, the runs and the history table, kept in the address (`/?account=2002`) so a link
//! opens on it.
//!
//! Without Chromium the test fails, naming the package to install; set
//! `HUBSPOT_SYNC_SKIP_BROWSER=1` to skip it deliberately (it then says so on stderr).

use std::path::PathBuf;
use std::process::Stdio;

use hubspot_sync::objects::ObjectKind;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::harness::control::{ADMIN_TOKEN, DEFAULT_PORTAL, OTHER_PORTAL, finished, finished_for, two_accounts};
use crate::harness::{PATIENCE, TestApp, within};

fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .flat_map(|name| std::env::split_paths(&dirs).map(move |dir| dir.join(name)))
        .find(|path| path.is_file())
}

/// A DevTools protocol session over Chromium's debugging pipe.
struct Browser {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
    next_id: u64,
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn launch(chromium: &PathBuf) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        // The shell hands our stdin/stdout to Chromium as fds 3 and 4 (its pipe protocol).
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#)
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        let to = child.stdin.take().unwrap();
        let from = BufReader::new(child.stdout.take().unwrap());
        Browser { child, to, from, next_id: 0, events: Vec::new(), _profile: profile }
    }

    async fn read(&mut self) -> Value {
        let mut buf = Vec::new();
        let n = self.from.read_until(0, &mut buf).await.unwrap();
        assert!(n > 0, "chromium closed the debugging pipe");
        buf.pop();
        serde_json::from_slice(&buf).unwrap()
    }

    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).await.unwrap();
        loop {
            let reply = self.read().await;
            if reply["id"] == json!(id) {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
            self.events.push(reply);
        }
    }

    /// The next event named `method` (already received, or yet to come).
    async fn event(&mut self, method: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
            return self.events.remove(i);
        }
        loop {
            let message = self.read().await;
            if message["method"] == method {
                return message;
            }
            self.events.push(message);
        }
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value.
    async fn eval(&mut self, session: &str, expression: &str) -> Value {
        let result = self
            .call(
                Some(session),
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        assert!(result.get("exceptionDetails").is_none(), "{expression}: {result}");
        result["result"]["value"].clone()
    }
}

/// "just now", or "<n> second(s)/minute(s)/hour(s)/day(s) ago", as the page words a past time.
fn is_relative_past(text: &str) -> bool {
    if text == "just now" {
        return true;
    }
    let words: Vec<&str> = text.split(' ').collect();
    let units = ["second", "seconds", "minute", "minutes", "hour", "hours", "day", "days"];
    matches!(words[..], [n, unit, "ago"] if n.parse::<u32>().is_ok() && units.contains(&unit))
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// A script that resolves with `probe()`'s value once it is truthy.
fn wait_for(probe: &str) -> String {
    format!(
        "new Promise(resolve => {{ const probe = () => {{ const v = ({probe}); \
         if (v) resolve(v); else setTimeout(probe, 50); }}; probe(); }})"
    )
}

/// Chromium, or `None` when the test `name` is deliberately skipped (`HUBSPOT_SYNC_SKIP_BROWSER`,
/// said on stderr); without Chromium and without that, the test fails naming the package.
fn chromium_for(name: &str) -> Option<PathBuf> {
    if let Some(chromium) = find_chromium() {
        return Some(chromium);
    }
    if std::env::var_os("HUBSPOT_SYNC_SKIP_BROWSER").is_some() {
        eprintln!("\n*** SKIPPED {name}: no chromium (HUBSPOT_SYNC_SKIP_BROWSER set) ***\n");
        return None;
    }
    panic!(
        "chromium is not installed: `apt-get install -y chromium` (or set CHROMIUM=/path/to/chrome); \
         set HUBSPOT_SYNC_SKIP_BROWSER=1 to skip this test deliberately"
    );
}

#[tokio::test]
async fn status_page_in_headless_chromium() {
    let Some(chromium) = chromium_for("status_page_in_headless_chromium") else { return };
    within(PATIENCE, "the browser test hangs", drive(chromium)).await;
}

#[tokio::test]
async fn history_charts_in_headless_chromium() {
    let Some(chromium) = chromium_for("history_charts_in_headless_chromium") else { return };
    within(PATIENCE, "the browser test hangs", drive_history(chromium)).await;
}

async fn drive(chromium: PathBuf) {
    let mut app = TestApp::builder().recording_control().admin_token(ADMIN_TOKEN).start().await;
    finished(&app.db, "contacts", 250, 0, None).await;
    finished(&app.db, "deals", 40, 0, Some("HubSpot answered 502")).await;
    finished(&app.db, "calls", 100, 5, None).await;

    let mut browser = Browser::launch(&chromium).await;
    let target = browser.call(None, "Target.createTarget", json!({ "url": "about:blank" })).await;
    let attached =
        browser.call(None, "Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true })).await;
    let session = attached["sessionId"].as_str().unwrap().to_owned();
    let s = Some(session.as_str());
    browser.call(s, "Page.enable", json!({})).await;
    browser.call(s, "Runtime.enable", json!({})).await;
    // A phone: 390 px wide.
    let phone = json!({ "width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": true });
    browser.call(s, "Emulation.setDeviceMetricsOverride", phone).await;
    browser.call(s, "Page.navigate", json!({ "url": format!("{}/", app.base) })).await;
    browser.event("Page.loadEventFired").await;
    browser.eval(&session, &wait_for("Number(document.body.dataset.loads) >= 1")).await;

    let cards = browser
        .eval(
            &session,
            "[...document.querySelectorAll('article.card')].map(c => ({ object: c.dataset.object, \
             status: c.dataset.status, text: c.innerText }))",
        )
        .await;
    let cards = cards.as_array().unwrap();
    let summary: Vec<(String, String)> = cards
        .iter()
        .map(|c| (c["object"].as_str().unwrap().to_owned(), c["status"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [
        ("contacts", "success"),
        ("deals", "failed"),
        ("calls", "partial"),
        ("owners", "never"),
        ("associations", "never"),
    ];
    assert_eq!(summary, expected.map(|(o, s)| (o.to_owned(), s.to_owned())));
    let contacts_text = cards[0]["text"].as_str().unwrap();
    assert!(contacts_text.contains("250"), "{contacts_text}");
    // "Last sync" shows the run's time, relative to now in words: whatever the wording (it
    // depends on how long the machine took to get here), the exact time is in its title.
    let status = get_json(&app.url("/api/sync/status")).await;
    let last_sync = status[0]["last_sync_time"].as_str().expect("contacts ran").to_owned();
    let shown = browser
        .eval(
            &session,
            "(() => { const dd = document.querySelector('article.card[data-object=contacts] dt + dd'); \
             return { title: dd.title, text: dd.innerText }; })()",
        )
        .await;
    assert_eq!(shown["title"], last_sync.as_str(), "{shown}");
    let relative = shown["text"].as_str().unwrap();
    assert!(is_relative_past(relative), "not a past time in words: {relative:?}");
    let failures = browser.eval(&session, "document.getElementById('failures').innerText").await;
    let failures = failures.as_str().unwrap();
    assert!(!failures.contains("HubSpot answered 502"), "error texts need the admin token: {failures}");
    assert!(failures.contains("details need the admin token"), "{failures}");
    let overflow = browser.eval(&session, "document.documentElement.scrollWidth").await;
    assert!(overflow.as_u64().unwrap() <= 390, "the page is wider than a phone: {overflow}");
    let picker = browser.eval(&session, "document.getElementById('account-picker').hidden").await;
    assert_eq!(picker, true, "one account: no account selector");

    // Force sync: the token is asked for once...
    browser
        .eval(&session, "setTimeout(() => document.querySelector('button.force[data-object=contacts]').click(), 0)")
        .await;
    let dialog = browser.event("Page.javascriptDialogOpening").await;
    assert_eq!(dialog["params"]["type"], "prompt");
    browser.call(s, "Page.handleJavaScriptDialog", json!({ "accept": true, "promptText": ADMIN_TOKEN })).await;
    let (kind, _, _, run_id) = app.next_started().await;
    assert_eq!(kind, ObjectKind::Contacts);
    let shown = browser
        .eval(
            &session,
            &wait_for(&format!("document.querySelector('#runs tr[data-run-id=\"{run_id}\"]')?.dataset.trigger")),
        )
        .await;
    assert_eq!(shown, "manual", "the new run appears in the recent runs");
    let failures = browser.eval(&session, "document.getElementById('failures').innerText").await;
    assert!(failures.as_str().unwrap().contains("HubSpot answered 502"), "the token shows details: {failures}");
    let card =
        browser.eval(&session, "document.querySelector('article.card[data-object=contacts]').dataset.status").await;
    assert_eq!(card, "running");

    // ...and kept: the second force sync asks nothing.
    browser
        .eval(&session, "setTimeout(() => document.querySelector('button.force[data-object=deals]').click(), 0)")
        .await;
    let (kind, _, _, deals_run) = app.next_started().await;
    assert_eq!(kind, ObjectKind::Deals);
    browser
        .eval(&session, &wait_for(&format!("document.querySelector('#runs tr[data-run-id=\"{deals_run}\"]')")))
        .await;
    assert!(!browser.events.iter().any(|e| e["method"] == "Page.javascriptDialogOpening"), "asked for the token twice");
    let stored =
        browser.eval(&session, "JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])").await;
    assert_eq!(stored, "[[],[]]", "the token is kept in memory only");

    // "Hide details" forgets it: summaries again.
    browser.eval(&session, "document.getElementById('details').click()").await;
    let hidden = browser
        .eval(&session, &wait_for("!document.getElementById('failures').innerText.includes('HubSpot answered 502')"))
        .await;
    assert_eq!(hidden, true);

    let _ = browser.call(None, "Browser.close", json!({})).await;
    let _ = browser.child.wait().await;
    app.stop().await;
}

#[test]
fn relative_times_are_recognised_whatever_the_machine_took() {
    for text in ["just now", "6 seconds ago", "1 minute ago", "3 hours ago", "2 days ago"] {
        assert!(is_relative_past(text), "{text}");
    }
    for text in ["in 5 minutes", "–", "seconds ago", "5 fortnights ago", ""] {
        assert!(!is_relative_past(text), "{text}");
    }
}

/// Opens the page at `width` in a new tab; the session id once the charts are drawn.
async fn open_page(browser: &mut Browser, base: &str, width: u32, mobile: bool) -> String {
    open_url(browser, &format!("{base}/"), width, mobile).await
}

/// Opens `url` (the page, with a query string) at `width` in a new tab; the session id once the
/// charts are drawn.
async fn open_url(browser: &mut Browser, url: &str, width: u32, mobile: bool) -> String {
    let target = browser.call(None, "Target.createTarget", json!({ "url": "about:blank" })).await;
    let attached =
        browser.call(None, "Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true })).await;
    let session = attached["sessionId"].as_str().unwrap().to_owned();
    let s = Some(session.as_str());
    browser.call(s, "Page.enable", json!({})).await;
    browser.call(s, "Runtime.enable", json!({})).await;
    let metrics =
        json!({ "width": width, "height": if mobile { 844 } else { 900 }, "deviceScaleFactor": 1, "mobile": mobile });
    browser.call(s, "Emulation.setDeviceMetricsOverride", metrics).await;
    browser.call(s, "Page.navigate", json!({ "url": url })).await;
    browser.event("Page.loadEventFired").await;
    browser.eval(&session, &wait_for("Number(document.body.dataset.historyLoads) >= 1")).await;
    session
}

/// With `HUBSPOT_SYNC_SCREENSHOTS=<dir>`, the page as `<dir>/<name>.png`: all of it, or the
/// screen from the history's heading down (`history_only`).
async fn screenshot(browser: &mut Browser, session: &str, name: &str, history_only: bool) {
    let Some(dir) = std::env::var_os("HUBSPOT_SYNC_SCREENSHOTS") else { return };
    if history_only {
        browser.eval(session, "document.getElementById('legend').previousElementSibling.scrollIntoView()").await;
    }
    let shot = browser
        .call(
            Some(session),
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": !history_only }),
        )
        .await;
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
    std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).unwrap();
}

async fn drive_history(chromium: PathBuf) {
    let opts = hubspot_sim::SimOptions { contacts: 20, deals: 0, calls: 0, owners: 2, ..Default::default() };
    let mut app = TestApp::builder().sim(opts).budget(50).arg("--fetch-window", "50ms").start().await;
    crate::history::seed_history(&app.db).await;
    let live = crate::history::live_minutes_with_a_429(&app).await;
    // With a HubSpot token the server starts with a run of the owners (they have none yet).
    let owners = "SELECT count(*) FROM sync_logs WHERE sync_type = 'owners'";
    crate::harness::eventually(crate::harness::PATIENCE, "the first owners run finished", || async {
        let finished = app.db.count(&format!("{owners} AND status <> 'running'")).await;
        finished >= 1 && finished == app.db.count(owners).await
    })
    .await;
    let owner_runs = app.db.count(owners).await;
    let mut browser = Browser::launch(&chromium).await;

    // A phone: every object's three charts are drawn, and nothing scrolls sideways.
    let session = open_page(&mut browser, &app.base, 390, true).await;
    let drawn = browser
        .eval(
            &session,
            "[...document.querySelectorAll('figure.history')].map(f => ({ object: f.dataset.object, \
             charts: f.querySelectorAll('svg.chart').length, \
             runs: [...f.querySelectorAll('rect[data-status]')].reduce((n, r) => n + Number(r.dataset.count), 0), \
             failed: f.querySelectorAll('rect[data-status=failed]').length, \
             marked: f.querySelectorAll('text.marker').length, \
             points: f.querySelectorAll('circle[data-series=average]').length, \
             labelled: [...f.querySelectorAll('svg.chart')].every(c => c.getAttribute('role') === 'img' && c.getAttribute('aria-label')) }))",
        )
        .await;
    let drawn = drawn.as_array().unwrap();
    let objects: Vec<&str> = drawn.iter().map(|f| f["object"].as_str().unwrap()).collect();
    assert_eq!(objects, ["contacts", "deals", "calls", "owners", "live"]);
    let runs: Vec<u64> = drawn[..4].iter().map(|f| f["runs"].as_u64().unwrap()).collect();
    assert_eq!(runs, [240, 80, 40, owner_runs as u64], "the status bars add up to the runs: {drawn:?}");
    for f in &drawn[..4] {
        assert_eq!(f["charts"], 3, "{f}");
        assert_eq!(f["labelled"], true, "{f}");
    }
    let contacts = &drawn[0];
    assert!(contacts["failed"].as_u64().unwrap() > 0, "failed runs are drawn: {contacts}");
    assert_eq!(contacts["failed"], contacts["marked"], "each bucket with a failure is marked, not only coloured");
    assert!(contacts["points"].as_u64().unwrap() > 0, "duration points: {contacts}");
    // The last hour: webhooks, HubSpot requests against the budget with the 429 crossed and
    // marked, latency points, queue depth; the bars add up to what the API counted.
    let shown = browser
        .eval(
            &session,
            "(() => { const f = document.querySelector('figure[data-object=live]');              const sum = (s) => [...f.querySelectorAll(`rect[data-series=${s}]`)].reduce((n, r) => n + Number(r.dataset.count), 0);              return { charts: f.querySelectorAll('svg.chart').length, accepted: sum('accepted'),              requests: sum('hubspot-requests') + sum('rate-limited'), limited: sum('rate-limited'),              budget: f.querySelectorAll('line[data-series=budget]').length,              latency: f.querySelectorAll('circle[data-series=latency-average]').length,              marked: f.querySelectorAll('text.marker').length,              labelled: [...f.querySelectorAll('svg.chart')].every(c => c.getAttribute('role') === 'img' && c.getAttribute('aria-label')),              table: document.querySelectorAll('#live-table tr[data-minute]').length }; })()",
        )
        .await;
    assert_eq!(shown["charts"], 4, "{shown}");
    assert_eq!(shown["labelled"], true, "{shown}");
    assert_eq!(shown["accepted"].as_u64(), Some(crate::history::sum(&live, "received")), "{shown} {live}");
    assert!(shown["requests"].as_u64() >= Some(crate::history::sum(&live, "hubspot_requests")), "{shown} {live}");
    assert!(shown["limited"].as_u64() >= Some(1), "the 429 is drawn: {shown}");
    assert!(shown["marked"].as_u64() >= Some(1), "and marked, not only patterned: {shown}");
    assert_eq!(shown["budget"], 1, "the budget line: {shown}");
    assert!(shown["latency"].as_u64() >= Some(1), "{shown}");
    assert!(shown["table"].as_u64() >= Some(1), "the minutes as table rows: {shown}");
    screenshot(&mut browser, &session, "status-history-phone", true).await;
    browser.eval(&session, "document.querySelector('details.numbers').open = true").await;
    let width = browser.eval(&session, "document.documentElement.scrollWidth").await;
    assert!(width.as_u64().unwrap() <= 390, "the page (with its data table open) is wider than a phone: {width}");

    // The data table: every row's numbers are what sync_logs holds for that object and bucket.
    let rows = browser
        .eval(
            &session,
            "[...document.querySelectorAll('#history-table tr[data-object]')].map(r => ({ object: r.dataset.object, \
             from: r.cells[1].title, values: ['runs', 'success', 'partial', 'failed', 'processed', 'recordsFailed'] \
             .map(k => Number(r.dataset[k])) }))",
        )
        .await;
    let rows = rows.as_array().unwrap();
    assert!(rows.len() > 40, "{}", rows.len());
    let mut per_object = std::collections::HashMap::<String, i64>::new();
    for row in rows {
        let object = row["object"].as_str().unwrap();
        let from: chrono::DateTime<chrono::Utc> = row["from"].as_str().unwrap().parse().unwrap();
        let expected = crate::history::bucket_in_sql(&app.db, object, from, 1800).await;
        let shown: Vec<Option<i64>> = row["values"].as_array().unwrap().iter().map(Value::as_i64).collect();
        assert_eq!(shown, expected[..6].to_vec(), "{object} from {from}");
        *per_object.entry(object.to_owned()).or_default() += shown[0].unwrap();
    }
    assert_eq!(per_object.get("contacts"), Some(&240));
    assert_eq!(per_object.get("owners").copied().unwrap_or(0), owner_runs, "the owners' runs of this test");

    // 7 days: the run of 3 days ago is in.
    browser.eval(&session, "document.querySelector('.window button[data-window=\"7d\"]').click()").await;
    let week = browser
        .eval(
            &session,
            &wait_for(
                "Number(document.body.dataset.historyLoads) >= 2 && [...document.querySelectorAll('#history-table tr[data-object=contacts]')] \
                 .reduce((n, r) => n + Number(r.dataset.runs), 0)",
            ),
        )
        .await;
    assert_eq!(week, 241);

    // A desktop for the README's screenshot.
    let desktop = open_page(&mut browser, &app.base, 1280, false).await;
    let width = browser.eval(&desktop, "document.documentElement.scrollWidth").await;
    assert!(width.as_u64().unwrap() <= 1280, "{width}");
    screenshot(&mut browser, &desktop, "status-history-desktop", false).await;

    let _ = browser.call(None, "Browser.close", json!({})).await;
    let _ = browser.child.wait().await;
    app.stop().await;
}

#[tokio::test]
async fn account_selector_in_headless_chromium() {
    let Some(chromium) = chromium_for("account_selector_in_headless_chromium") else { return };
    within(PATIENCE, "the browser test hangs", drive_accounts(chromium)).await;
}

/// What the page shows of the account it shows, once `account` (`default` or a portal id) is
/// drawn: the contacts card's processed count and the deals card's status, the objects of the
/// recent runs, and the records processed in the history table.
async fn shown_for(browser: &mut Browser, session: &str, account: &str) -> Value {
    let probe = format!(
        "document.body.dataset.account === '{account}' && document.body.dataset.historyAccount === '{account}' && \
         ({{ processed: document.querySelector('article.card[data-object=contacts] dd.processed').innerText, \
            deals: document.querySelector('article.card[data-object=deals]').dataset.status, \
            runs: [...document.querySelectorAll('#runs tr[data-object]')].map(r => r.dataset.object).sort().join(','), \
            history: [...document.querySelectorAll('#history-table tr[data-object]')].reduce((n, r) => n + Number(r.dataset.processed), 0), \
            selected: document.getElementById('account').value, search: location.search }})"
    );
    browser.eval(session, &wait_for(&probe)).await
}

/// Picks the account of `portal_id` in the page's selector, as a person does.
async fn pick(browser: &mut Browser, session: &str, portal_id: i64) {
    let script = format!(
        "(() => {{ const s = document.getElementById('account'); s.value = '{portal_id}'; \
         s.dispatchEvent(new Event('change')); }})()"
    );
    browser.eval(session, &script).await;
}

async fn drive_accounts(chromium: PathBuf) {
    let mut app = TestApp::builder().recording_control().start().await;
    two_accounts(&app.db).await;
    finished_for(&app.db, DEFAULT_PORTAL, "contacts", 250, 0, None).await;
    finished_for(&app.db, OTHER_PORTAL, "contacts", 777, 0, None).await;
    finished_for(&app.db, OTHER_PORTAL, "deals", 40, 0, Some("HubSpot answered 502")).await;

    let mut browser = Browser::launch(&chromium).await;
    let session = open_page(&mut browser, &app.base, 1280, false).await;
    let options = browser
        .eval(
            &session,
            &wait_for(
                "!document.getElementById('account-picker').hidden && \
                 [...document.querySelectorAll('#account option')].map(o => [o.value, o.textContent])",
            ),
        )
        .await;
    assert_eq!(options, json!([["1001", "default (portal 1001)"], ["2002", "emea (portal 2002)"]]));
    let page = browser.eval(&session, "document.documentElement.outerHTML").await;
    let page = page.as_str().unwrap();
    assert!(!page.contains("HUBSPOT_TOKEN") && !page.contains("HUBSPOT_SECRET"), "secret variable names shown");

    // The default account first, as without accounts.
    let default = shown_for(&mut browser, &session, "default").await;
    assert_eq!(default["processed"], "250", "{default}");
    assert_eq!(default["deals"], "never", "{default}");
    assert_eq!(default["runs"], "contacts", "{default}");
    assert_eq!(default["history"], 250, "{default}");
    assert_eq!((default["selected"].as_str(), default["search"].as_str()), (Some("1001"), Some("")));

    // Picking the other account shows its figures, and its portal id goes into the address.
    pick(&mut browser, &session, OTHER_PORTAL).await;
    let other = shown_for(&mut browser, &session, "2002").await;
    assert_eq!(other["processed"], "777", "{other}");
    assert_eq!(other["deals"], "failed", "{other}");
    assert_eq!(other["runs"], "contacts,deals", "{other}");
    assert_eq!(other["history"], 817, "{other}");
    assert_eq!(other["search"], "?account=2002", "{other}");

    // A link keeps it: the address opens on the other account.
    let linked = open_url(&mut browser, &format!("{}/?account={OTHER_PORTAL}", app.base), 1280, false).await;
    let shown = shown_for(&mut browser, &linked, "2002").await;
    assert_eq!((shown["processed"].as_str(), shown["selected"].as_str()), (Some("777"), Some("2002")), "{shown}");

    // And back to the default account.
    pick(&mut browser, &linked, DEFAULT_PORTAL).await;
    let back = shown_for(&mut browser, &linked, "default").await;
    assert_eq!((back["processed"].as_str(), back["search"].as_str()), (Some("250"), Some("")), "{back}");

    let _ = browser.call(None, "Browser.close", json!({})).await;
    let _ = browser.child.wait().await;
    app.stop().await;
}

//! The console in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! with fantoccini) against `trunkline dev`, the whole onboarding flow as a user clicks it:
//! sign in with the one-time link, verify and save credentials, pick a number, connect it,
//! status without drift, simulate a call and see the agent dispatched, break the LiveKit
//! rule at the emulator and see the drift, repair, disconnect; the support view; and that
//! another customer sees nothing of it.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`;
//! `TRUNKLINE_CHROMIUM` / `TRUNKLINE_CHROMEDRIVER` name other paths). Without them the test
//! says it skipped, except under `CI=true`, where it fails. Screenshots of every step go to
//! `<target dir>/console-screenshots/` (`TRUNKLINE_SCREENSHOT_DIR` overrides).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use trunkline_e2e::{ServerOptions, TestServer, trunkline_bin};

const WAIT: Duration = Duration::from_secs(30);

fn find(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    candidates.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// chromedriver on a free port; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(chromedriver: &Path) -> anyhow::Result<Driver> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawn {}", chromedriver.display()))?;
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await
            && r.status().is_success()
        {
            return Ok(driver);
        }
        if Instant::now() > deadline {
            bail!("chromedriver did not answer on {}", driver.url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn screenshot_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TRUNKLINE_SCREENSHOT_DIR") {
        return PathBuf::from(d);
    }
    // target/<profile>/deps/<test> → target/console-screenshots
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(std::env::temp_dir)
        .join("console-screenshots")
}

/// One browser session and where its screenshots go.
struct Browser {
    client: Client,
    shots: PathBuf,
    taken: usize,
}

impl Browser {
    async fn shot(&mut self, name: &str) -> anyhow::Result<()> {
        self.taken += 1;
        let png = self.client.screenshot().await?;
        let path = self.shots.join(format!("{:02}-{name}.png", self.taken));
        std::fs::write(&path, png).with_context(|| format!("write {}", path.display()))?;
        Ok(())
    }

    async fn js(&self, script: &str) -> anyhow::Result<Value> {
        Ok(self.client.execute(script, vec![]).await?)
    }

    /// Wait until the JavaScript expression `cond` is true in the page.
    async fn until(&self, what: &str, cond: &str) -> anyhow::Result<()> {
        let script = format!("try {{ return Boolean({cond}); }} catch (e) {{ return false; }}");
        let deadline = Instant::now() + WAIT;
        loop {
            if self.js(&script).await? == json!(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let text = self.js("return document.body.innerText").await?;
                bail!(
                    "timed out waiting for {what} ({cond}); the page says:\n{}",
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Click `#id`. The status part redraws itself every few seconds, so an element found
    /// just before a redraw may be gone when clicked: find it again then.
    async fn click(&self, id: &str) -> anyhow::Result<()> {
        let mut attempts = 0;
        loop {
            let e = self
                .client
                .wait()
                .at_most(WAIT)
                .for_element(Locator::Id(id))
                .await
                .with_context(|| format!("#{id}"))?;
            match e.click().await {
                Ok(()) => return Ok(()),
                Err(err) if attempts < 3 && err.to_string().contains("stale element") => {
                    attempts += 1;
                }
                Err(err) => return Err(err).with_context(|| format!("click #{id}")),
            }
        }
    }

    async fn type_into(&self, id: &str, text: &str) -> anyhow::Result<()> {
        let e = self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Id(id))
            .await
            .with_context(|| format!("#{id}"))?;
        e.clear().await?;
        e.send_keys(text).await?;
        Ok(())
    }

    async fn text(&self, css: &str) -> anyhow::Result<String> {
        Ok(self.client.find(Locator::Css(css)).await?.text().await?)
    }

    /// What an API call made with the console's own token answers (status code), as the
    /// page's JavaScript would make it.
    async fn fetch_status(&self, path: &str) -> anyhow::Result<u64> {
        let v = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 fetch(arguments[0], {headers: {Authorization: 'Bearer ' +
                   sessionStorage.getItem('trunkline.token')}}).then(r => done(r.status),
                   e => done(-1));",
                vec![json!(path)],
            )
            .await?;
        v.as_u64().context("status code")
    }
}

/// A line of the banner after `label`.
fn banner_value(stdout: &str, label: &str) -> anyhow::Result<String> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
        .with_context(|| format!("`{label}` not in the banner:\n{stdout}"))
}

/// The line after the one starting with `heading`.
fn banner_link(stdout: &str, heading: &str) -> anyhow::Result<String> {
    let mut lines = stdout.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with(heading))
        .with_context(|| format!("`{heading}` not in the banner:\n{stdout}"))?;
    Ok(lines.next().unwrap_or_default().trim().to_owned())
}

#[tokio::test]
async fn console_walkthrough_in_headless_chromium() {
    let chromium = find(
        "TRUNKLINE_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let chromedriver = find("TRUNKLINE_CHROMEDRIVER", &["chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the browser test: install chromium and chromium-driver"
        );
        eprintln!(
            "SKIPPED console_walkthrough_in_headless_chromium: chromium or chromedriver not \
             found (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let mut server = TestServer::start_with(ServerOptions::default().dev())
        .await
        .expect("trunkline dev starts");
    let outcome = walkthrough(&server, &chromium, &chromedriver).await;
    if let Err(e) = outcome {
        server.stop();
        panic!(
            "{e:#}\n--- trunkline dev stdout ---\n{}\n--- stderr (tail) ---\n{}",
            server.stdout(),
            tail(&server.stderr(), 40)
        );
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

async fn walkthrough(
    server: &TestServer,
    chromium: &Path,
    chromedriver: &Path,
) -> anyhow::Result<()> {
    let out = server.stdout();
    let customer_link = banner_link(&out, "Console, signed in as customer")?;
    let support_link = banner_link(&out, "Support view")?;
    let account = banner_value(&out, "Twilio Account SID:")?;
    let key = banner_value(&out, "Twilio API key SID:")?;
    let secret = banner_value(&out, "Twilio API key secret:")?;
    let first_number = banner_value(&out, "First Twilio number:")?;
    assert!(
        customer_link.contains("/console/#signin="),
        "{customer_link}"
    );
    // The banner's one-line curl works as printed.
    let curl = banner_value(&out, "curl -s -H \"Authorization: Bearer ")?;
    assert!(curl.ends_with("/telephony/me"), "{curl}");

    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots)?;
    let driver = start_driver(chromedriver).await?;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1100,1400"]
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .context("WebDriver session")?;
    let mut b = Browser {
        client,
        shots,
        taken: 0,
    };
    let result = steps(
        &mut b,
        server,
        &customer_link,
        &support_link,
        [&account, &key, &secret],
        &first_number,
    )
    .await;
    if result.is_err() {
        let _ = b.shot("failure").await;
    }
    let _ = b.client.close().await;
    result
}

async fn steps(
    b: &mut Browser,
    server: &TestServer,
    customer_link: &str,
    support_link: &str,
    [account, key, secret]: [&str; 3],
    first_number: &str,
) -> anyhow::Result<()> {
    let started = Instant::now();
    // Sign in with the one-time link; the code leaves the address bar at once.
    b.client.goto(customer_link).await?;
    b.until(
        "signed in",
        "document.getElementById('who').textContent.includes('dev-customer')",
    )
    .await?;
    let url = b.client.current_url().await?;
    assert!(!url.as_str().contains("signin"), "{url}");
    b.until(
        "the numbers part",
        "document.getElementById('no-integration')",
    )
    .await?;
    b.shot("signed-in").await?;

    // Verify, then save.
    b.type_into("cred-accountSid", account).await?;
    b.type_into("cred-apiKeySid", key).await?;
    b.type_into("cred-apiKeySecret", secret).await?;
    b.click("verify").await?;
    b.until("verified", "document.getElementById('verify-ok')")
        .await?;
    b.shot("verified").await?;
    b.click("save").await?;
    b.until("saved", "document.getElementById('save-ok')")
        .await?;
    let secret_value = b
        .js("return document.getElementById('cred-apiKeySecret').value")
        .await?;
    assert_eq!(secret_value, json!(""), "the secret is cleared once stored");
    b.until(
        "the numbers table",
        "document.querySelectorAll('#numbers-table tr[data-number]').length === 10",
    )
    .await?;

    // A number on someone else's route (on some page: numbers come in SID order): the
    // console warns before taking it.
    for page in 2..=4 {
        let found = b
            .js("return Boolean(document.querySelector('#numbers-table td.warn'))")
            .await?;
        if found == json!(true) {
            break;
        }
        b.click("next-page").await?;
        b.until(
            "the next page",
            &format!("document.getElementById('page-label').textContent === 'Page {page}'"),
        )
        .await?;
    }
    let foreign_id = b
        .js("return document.querySelector('#numbers-table td.warn').parentElement.dataset.number")
        .await?;
    let foreign_id = foreign_id.as_str().context("foreign number id")?.to_owned();
    b.click(&format!("pick-{foreign_id}")).await?;
    b.click("connect").await?;
    b.until("the warning", "document.querySelector('#foreign-warning .warning') && document.getElementById('confirm-take')")
        .await?;
    b.shot("foreign-route-warning").await?;
    b.click(&format!("pick-{foreign_id}")).await?; // changed my mind
    b.until(
        "no warning",
        "!document.querySelector('#foreign-warning .warning')",
    )
    .await?;

    // Search the first number and connect it.
    b.type_into("number-search", first_number).await?;
    b.click("search").await?;
    b.until(
        "one number",
        "document.querySelectorAll('#numbers-table tr[data-number]').length === 1",
    )
    .await?;
    let number_id = b
        .js("return document.querySelector('#numbers-table tr[data-number]').dataset.number")
        .await?;
    let number_id = number_id.as_str().context("number id")?.to_owned();
    b.click(&format!("pick-{number_id}")).await?;
    b.shot("picked").await?;
    b.click("connect").await?;
    b.until(
        "connected",
        &format!("document.querySelector('#progress-{number_id} [data-result=connected]')"),
    )
    .await?;
    let steps = b.text(&format!("#progress-{number_id} ol")).await?;
    for step in [
        "Carrier route",
        "LiveKit dispatch rule",
        "Carrier termination",
        "LiveKit outbound trunk",
    ] {
        assert!(steps.contains(step), "{steps}");
    }
    b.shot("connected").await?;

    // Status: no drift.
    b.click(&format!("open-status-{number_id}")).await?;
    b.until(
        "no drift",
        "document.getElementById('drift-state').dataset.drifts === '0' && \
         document.getElementById('conn-status').textContent === 'connected'",
    )
    .await?;
    b.shot("status-no-drift").await?;

    // It fits a phone: nothing scrolls sideways at 375 px.
    b.client.set_window_size(375, 1400).await?;
    b.until(
        "375 px layout",
        "document.documentElement.clientWidth <= 375",
    )
    .await?;
    let overflow = b
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await?;
    // What overflows, deepest last, for the failure message.
    let wide = b
        .js("return [...document.querySelectorAll('*')].filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === 'visible').slice(-3).map(e => e.tagName + '.' + e.className + ' ' + (e.textContent || '').slice(0, 60)).join(' | ')")
        .await?;
    assert_eq!(overflow, json!(0), "the page is wider than 375 px: {wide}");
    b.shot("status-375px").await?;
    b.client.set_window_size(1100, 1400).await?;

    // A simulated call: the agent is dispatched once, and the status shows it live.
    b.click("simulate-call").await?;
    b.until("the call played", "document.getElementById('call-ok')")
        .await?;
    b.until(
        "the dispatch",
        "document.getElementById('newest-dispatch') && \
         document.getElementById('newest-dispatch').textContent === 'dispatched' && \
         document.querySelectorAll('#calls tbody tr').length === 1",
    )
    .await?;
    let checklist = b.text("#checklist").await?;
    assert!(checklist.contains("room_finished"), "{checklist}");
    b.shot("call-dispatched").await?;

    // A test call out from the number (POST /telephony/calls); the emulated callee answers,
    // and the agent is dispatched to the outbound call's room once.
    b.until(
        "the outbound half",
        "document.getElementById('outbound-part') && \
         !document.getElementById('outbound-drift') && \
         document.getElementById('place-call')",
    )
    .await?;
    b.click("place-call").await?;
    b.until(
        "the call answered",
        "document.getElementById('place-call-ok') && \
         document.getElementById('place-call-ok').textContent.includes('answered') && \
         document.getElementById('answer-call-ok')",
    )
    .await?;
    b.until(
        "the outbound call's dispatch",
        "document.querySelectorAll('#calls tbody tr').length === 2 && \
         document.querySelector('#calls tbody tr').textContent.includes('outbound') && \
         document.getElementById('newest-dispatch').textContent === 'dispatched'",
    )
    .await?;
    b.shot("test-call-out").await?;
    eprintln!(
        "console: from the sign-in link to a connected number and a dispatched simulated call \
         in {:.1} s of clicking",
        started.elapsed().as_secs_f64()
    );

    // Break it at the emulator: the drift shows, repair fixes it.
    b.click("break-livekit").await?;
    b.until(
        "the drift",
        "document.getElementById('drift-state').dataset.drifts !== '0' && \
         document.getElementById('drift-state').textContent.includes('livekit_rule_missing') && \
         document.querySelector('#part-livekitRule.drifted')",
    )
    .await?;
    b.shot("drift").await?;
    b.click("repair").await?;
    b.until(
        "repaired",
        "document.getElementById('repair-ok') && \
         document.getElementById('drift-state').dataset.drifts === '0'",
    )
    .await?;
    b.shot("repaired").await?;

    // Disconnect, restoring the previous routing.
    b.click("restore-routing").await?;
    b.click("disconnect").await?;
    b.until(
        "disconnected",
        "document.getElementById('disconnect-ok') && \
         document.getElementById('conn-status').textContent === 'disconnected'",
    )
    .await?;
    b.shot("disconnected").await?;

    // Support: pick the customer, read-only status, calls and audit trail.
    b.click("sign-out").await?;
    b.client.goto(support_link).await?;
    b.until(
        "support signed in",
        "document.getElementById('support-customer')",
    )
    .await?;
    b.type_into("support-customer", "dev-customer").await?;
    b.click("support-open").await?;
    b.until(
        "the customer's numbers",
        "document.querySelectorAll('#numbers-table tr[data-number]').length === 10",
    )
    .await?;
    let pickers = b
        .js("return document.querySelectorAll('#numbers-table input[type=checkbox], #connect').length")
        .await?;
    assert_eq!(pickers, json!(0), "support cannot connect");
    b.type_into("number-search", first_number).await?;
    b.click("search").await?;
    b.until(
        "one number",
        "document.querySelectorAll('#numbers-table tr[data-number]').length === 1",
    )
    .await?;
    b.click(&format!("status-{number_id}")).await?;
    b.until(
        "the status, read-only",
        "document.getElementById('conn-status') && \
         document.querySelectorAll('#calls tbody tr').length === 2",
    )
    .await?;
    let buttons = b
        .js("return document.querySelectorAll('#disconnect, #repair, #simulate-call, #break-livekit, #place-call').length")
        .await?;
    assert_eq!(buttons, json!(0), "support changes nothing");
    b.click("load-audit").await?;
    b.until(
        "the audit trail",
        "document.getElementById('audit-table') && \
         document.getElementById('audit-table').textContent.includes('number.connected')",
    )
    .await?;
    b.shot("support-view").await?;

    // Another customer sees nothing of dev-customer's.
    let other = Command::new(trunkline_bin()?)
        .args(["dev-token", "--customer", "other-customer"])
        .env("TRUNKLINE_DATA_DIR", server.data_dir())
        .env_remove("TRUNKLINE_AUTH_PUBLIC_KEYS")
        .env_remove("TRUNKLINE_ENV")
        .output()?;
    assert!(other.status.success(), "{other:?}");
    let other_token = String::from_utf8(other.stdout)?.trim().to_owned();
    b.click("sign-out").await?;
    b.type_into("token", &other_token).await?;
    b.click("sign-in").await?;
    b.until(
        "the other customer",
        "document.getElementById('who').textContent.includes('other-customer')",
    )
    .await?;
    b.until("no numbers", "document.getElementById('no-integration')")
        .await?;
    assert_eq!(
        b.js("return document.querySelectorAll('#support-customer').length")
            .await?,
        json!(0),
        "a customer gets no support view"
    );
    b.click("load-audit").await?;
    b.until(
        "an empty audit trail",
        "document.getElementById('audit-empty')",
    )
    .await?;
    b.shot("other-customer").await?;
    // Even asking the API directly with the console's token finds nothing of it.
    let status_path = format!("/telephony/providers/twilio/numbers/{number_id}/status");
    let seen = b.fetch_status(&status_path).await?;
    assert!(seen == 404, "another customer's number: {seen}");
    let seen = b
        .fetch_status("/telephony/audit?customerId=dev-customer")
        .await?;
    assert_eq!(seen, 403, "another customer's audit trail");
    Ok(())
}

//! A real headless Chromium, driven over WebDriver by chromedriver (both
//! from Debian's `chromium` and `chromium-driver` packages, which
//! `scripts/test.sh` installs).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    artifacts: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session. Screenshots go
    /// to `target/ui-artifacts/` (or `$BOAT_UI_ARTIFACTS`).
    pub async fn start() -> anyhow::Result<Browser> {
        let driver_bin = which("chromedriver").ok_or_else(|| {
            anyhow::anyhow!(
                "chromedriver is not on PATH: install Debian's chromium and chromium-driver (scripts/test.sh does)"
            )
        })?;
        let port = free_port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let profile = tempfile::Builder::new().prefix("boat-chromium-").tempdir()?;
        let mut options = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1400", "--no-first-run", "--disable-extensions",
                     format!("--user-data-dir={}", profile.path().display())],
        });
        if let Some(bin) = which("chromium") {
            options["binary"] = json!(bin);
        }
        let caps = json!({"browserName": "chrome", "goog:chromeOptions": options});
        let caps = caps.as_object().cloned().unwrap_or_default();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => anyhow::bail!("no WebDriver session from chromedriver: {e}"),
            }
        };
        let artifacts = std::env::var_os("BOAT_UI_ARTIFACTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| boat_tests::workspace_root().join("target").join("ui-artifacts"));
        std::fs::create_dir_all(&artifacts)?;
        let artifacts = artifacts.canonicalize()?;
        Ok(Browser { client, driver, _profile: profile, artifacts })
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("loading {url}: {e}"));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Runs `script` asynchronously: it ends by calling its last argument
    /// with the result.
    pub async fn js_async(&self, script: &str) -> Value {
        self.client.execute_async(script, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns something truthy, and returns that;
    /// panics with the banner's text and a screenshot after `within`.
    pub async fn wait_js(&self, what: &str, script: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        // A check may throw while the page is still rendering; the last
        // error is reported if it never passes.
        let mut last_error = None;
        loop {
            let ran = self.client.execute(script, vec![]).await;
            if let Err(e) = &ran {
                last_error = Some(e.to_string());
            }
            if let Ok(v) = ran {
                let truthy = match &v {
                    Value::Null => false,
                    Value::Bool(b) => *b,
                    Value::Number(n) => n.as_f64() != Some(0.0),
                    Value::String(s) => !s.is_empty(),
                    _ => true,
                };
                if truthy {
                    return v;
                }
            }
            if Instant::now() > deadline {
                let banner = self.banner().await;
                self.screenshot(&format!("failed-{}", what.replace(' ', "-"))).await;
                panic!("{what}: not seen within {within:?}; banner: {banner:?}; last script error: {last_error:?}");
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The banner's text when it is shown.
    pub async fn banner(&self) -> Option<String> {
        let v = self
            .js("const b = document.getElementById('banner'); return b && !b.hidden ? b.textContent : null;", vec![]);
        v.await.as_str().map(str::to_string)
    }

    /// Types `text` into the element `css`, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await;
        let e = e.unwrap_or_else(|err| panic!("no {css}: {err}"));
        e.clear().await.unwrap_or_else(|err| panic!("clearing {css}: {err}"));
        e.send_keys(text).await.unwrap_or_else(|err| panic!("typing into {css}: {err}"));
    }

    pub async fn click(&self, css: &str) {
        let e = self.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await;
        e.unwrap_or_else(|err| panic!("no {css}: {err}"))
            .click()
            .await
            .unwrap_or_else(|err| panic!("clicking {css}: {err}"));
    }

    /// Chooses the file at `path` in the file input `css`.
    pub async fn choose_file(&self, css: &str, path: &Path) {
        let e = self.client.find(Locator::Css(css)).await.unwrap_or_else(|err| panic!("no {css}: {err}"));
        // chromedriver takes only canonical paths.
        let path = path.canonicalize().unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        e.send_keys(&path.display().to_string()).await.unwrap_or_else(|err| panic!("choosing a file in {css}: {err}"));
    }

    /// Saves a PNG of the window as `<artifacts>/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        if let Ok(png) = self.client.screenshot().await {
            let path = self.artifacts.join(format!("{name}.png"));
            if std::fs::write(&path, png).is_ok() {
                eprintln!("screenshot: {}", path.display());
            }
        }
    }

    pub fn artifacts(&self) -> &Path {
        &self.artifacts
    }

    /// Signs in on the node at `base` through the sign-in page.
    pub async fn sign_in(&self, base: &str, email: &str, password: &str) {
        self.goto(&format!("{base}/ui/login")).await;
        self.submit_login(email, password).await;
    }

    /// Fills and sends the sign-in form of the page shown.
    pub async fn submit_login(&self, email: &str, password: &str) {
        self.fill("#login input[name=email]", email).await;
        self.fill("#login input[name=password]", password).await;
        self.click("#login button[type=submit]").await;
        self.wait_js(
            &format!("signed in as {email}"),
            "return !location.pathname.startsWith('/ui/login') && document.getElementById('who').textContent;",
            Duration::from_secs(15),
        )
        .await;
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver takes its Chromium with it.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

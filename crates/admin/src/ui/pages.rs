//! The HTML shell of every page: head, navigation, a banner for errors, an
//! empty main area and the page's script, which fills it.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::assets;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Login,
    Cluster,
    Models,
    Apps,
    App,
    Datasets,
    Jobs,
    Job,
    Users,
    NotFound,
}

impl Page {
    /// The page's title and its script under `/ui/assets/`.
    fn title_and_script(self) -> (&'static str, &'static str) {
        match self {
            Page::Login => ("Sign in", "login.js"),
            Page::Cluster => ("Cluster", "cluster.js"),
            Page::Models => ("Models", "models.js"),
            Page::Apps => ("Apps", "apps.js"),
            Page::App => ("App", "app.js"),
            Page::Datasets => ("Datasets", "datasets.js"),
            Page::Jobs => ("Train jobs", "jobs.js"),
            Page::Job => ("Train job", "job.js"),
            Page::Users => ("Users", "users.js"),
            Page::NotFound => ("Not found", "notfound.js"),
        }
    }
}

/// Navigation entries: path, label, and whether only admins see it.
const NAV: &[(&str, &str, bool)] = &[
    ("/ui/", "Cluster", false),
    ("/ui/models", "Models", false),
    ("/ui/apps", "Apps", false),
    ("/ui/datasets", "Datasets", false),
    ("/ui/jobs", "Train jobs", false),
    ("/ui/users", "Users", true),
];

/// Escapes text for HTML content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's HTML. `arg` is the page's path argument (an app name, a job
/// id), handed to its script in `data-arg`.
pub fn html(page: Page, arg: Option<&str>) -> String {
    let (title, script) = page.title_and_script();
    let nav: String = NAV
        .iter()
        .map(|(href, label, admin)| {
            let admin = if *admin { r#" data-admin="1" hidden"# } else { "" };
            format!(r#"<a href="{href}"{admin}>{label}</a>"#)
        })
        .collect();
    let arg = escape(arg.unwrap_or(""));
    let heading = if arg.is_empty() { title.to_string() } else { format!("{title} {arg}") };
    let asset = |name: &str| format!("/ui/assets/{name}?v={}", assets::version(name));
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{heading} · Boat</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{css}">
</head>
<body data-page="{page:?}" data-arg="{arg}">
<header>
<a class="brand" href="/ui/">Boat</a>
<nav>{nav}</nav>
<span id="who"></span>
</header>
<div id="banner" role="alert" hidden></div>
<main>
<h1 id="title">{heading}</h1>
<div id="content"><p class="muted">Loading…</p></div>
</main>
<script src="{common}"></script>
<script src="{page_js}"></script>
</body>
</html>
"#,
        css = asset("boat.css"),
        common = asset("boat.js"),
        page_js = asset(script),
    )
}

/// Scripts and styles from this node only, no framing, no plugins; data:
/// only for the empty favicon. Style attributes are allowed: the charts
/// colour their legends with them.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub fn render(page: Page, arg: Option<&str>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        html(page, arg),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_escaped_and_every_script_exists() {
        let h = html(Page::App, Some(r#"<x a="1">&"#));
        assert!(h.contains(r#"data-arg="&lt;x a=&quot;1&quot;&gt;&amp;""#), "{h}");
        assert!(!h.contains("<x a="));
        for page in [
            Page::Login,
            Page::Cluster,
            Page::Models,
            Page::Apps,
            Page::App,
            Page::Datasets,
            Page::Jobs,
            Page::Job,
            Page::Users,
            Page::NotFound,
        ] {
            let (_, script) = page.title_and_script();
            assert!(assets::find(script).is_some(), "{script} is not embedded");
        }
    }
}

//! The web admin in a real headless Chromium, against a real three-node
//! cluster: sign in, see the nodes and the leader (on a follower's page
//! too), upload a model, create an app and predict from its form, upload
//! datasets, run a small train job and watch its trials table and charts
//! fill in, and see a user with too low a role refused. Screenshots of
//! every page go to `target/ui-artifacts/`, with each page's weight and
//! load time (median of several loads) in `page-weights.json` there.

mod browser;

use std::time::Duration;

use boat::client::Method;
use boat_tests::{model_path, others, workspace_root, Sandbox};
use browser::Browser;
use serde_json::{json, Value};

const PASSWORD: &str = "ui-password-1";
const SLOW: Duration = Duration::from_secs(30);

async fn user(sb: &Sandbox, leader: usize, email: &str, role: &str) {
    let body = json!({"email": email, "password": PASSWORD, "role": role});
    let r = sb.api(leader, Method::POST, "/api/users", Some(body), &sb.token()).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// Rows of the table inside `#id`, as text per cell; there is at least one.
async fn rows(b: &Browser, id: &str) -> Vec<Vec<String>> {
    let v = b
        .js(
            "return [...document.querySelectorAll(`#${arguments[0]} tbody tr`)]\
               .map(tr => [...tr.children].map(td => td.textContent.trim()));",
            vec![json!(id)],
        )
        .await;
    let rows: Vec<Vec<String>> = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("#{id}: {e}: {v}"));
    assert!(!rows.is_empty(), "#{id} has no rows");
    rows
}

/// Bytes of the page at `path` and of every asset it links.
async fn page_weight(sb: &Sandbox, base: &str, path: &str) -> usize {
    let get = |p: String| async move {
        let r = sb.client().send_raw(Method::GET, base, &p, "text/plain", Vec::new(), None).await.unwrap();
        assert_eq!(r.status, 200, "{p}: {}", r.text);
        r.text
    };
    let html = get(path.to_string()).await;
    let mut total = html.len();
    for link in html.split('"').filter(|s| s.starts_with("/ui/assets/")) {
        total += get(link.to_string()).await.len();
    }
    total
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_admin_works_in_a_real_browser() {
    let mut sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let follower = others(leader)[0];
    let leader_id = sb.status(leader).await.unwrap().node_id;
    user(&sb, leader, "admin@example.org", "ADMIN").await;
    user(&sb, leader, "viewer@example.org", "APP_USER").await;
    let b = Browser::start().await.expect("a headless Chromium (chromium and chromium-driver)");
    let on_leader = sb.url(leader);
    let on_follower = sb.url(follower);

    // A page without a session sends the visitor to sign in, then back.
    b.goto(&format!("{on_follower}/ui/models")).await;
    b.wait_js("the sign-in page", "return location.pathname === '/ui/login' && location.search;", SLOW).await;
    b.screenshot("login").await;
    b.submit_login("admin@example.org", PASSWORD).await;
    b.wait_js("back on the models page", "return location.pathname === '/ui/models';", SLOW).await;

    // The cluster, on a follower's page: three nodes, one leader.
    b.goto(&format!("{on_follower}/ui/")).await;
    b.wait_js("three nodes", "return document.querySelectorAll('#nodes tbody tr').length === 3;", SLOW).await;
    let leader_rows = b
        .wait_js("the leader highlighted", "const r = document.querySelectorAll('#nodes tr.leader'); return r.length === 1 && r[0].children[0].textContent;", SLOW)
        .await;
    assert_eq!(leader_rows, json!(leader_id.to_string()), "the highlighted row is the leader");
    let verdict = b.wait_js("a verdict", "return document.getElementById('verdict').textContent;", SLOW).await;
    assert_eq!(verdict, json!("healthy"));
    let table = rows(&b, "nodes").await;
    assert_eq!(table.len(), 3, "{table:?}");
    assert!(table.iter().all(|r| r[8].len() == 16 && r[10] == "ok"), "digests and health: {table:?}");
    b.screenshot("cluster").await;

    // A model uploaded on the follower's page lands through the leader.
    b.goto(&format!("{on_follower}/ui/models")).await;
    b.fill("#upload input[name=name]", "iris").await;
    b.choose_file("#upload input[name=file]", &model_path("iris_logreg.onnx")).await;
    b.click("#upload button[type=submit]").await;
    b.wait_js("the uploaded model", "return document.querySelector('section[data-model=iris]') !== null;", SLOW).await;
    let banner = b.banner().await.unwrap_or_default();
    assert!(banner.contains("Uploaded iris version 1"), "{banner}");
    let models = sb.client().send_json(Method::GET, &on_leader, "/api/models/iris", None, None).await.unwrap();
    assert_eq!(models.status, 200, "the leader has it: {}", models.text);
    b.screenshot("models").await;

    // An app from the form, and a prediction from its page.
    b.goto(&format!("{on_follower}/ui/apps")).await;
    b.fill("#create-app input[name=name]", "flowers").await;
    b.fill("#create-app input[name=members]", "iris").await;
    b.click("#create-app button[type=submit]").await;
    b.wait_js(
        "the app's page",
        "return location.pathname === '/ui/apps/flowers' && document.querySelector('#facts dd');",
        SLOW,
    )
    .await;
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(workspace_root().join("models/expected.json")).unwrap()).unwrap();
    let row = &expected["inputs"][2];
    b.fill("#predict-input", &json!([row]).to_string()).await;
    b.click("#predict button[type=submit]").await;
    let answer = b
        .wait_js("an answer", "const a = document.getElementById('answer'); return !a.hidden && a.textContent;", SLOW)
        .await;
    let answer: Value = serde_json::from_str(answer.as_str().unwrap()).unwrap();
    assert_eq!(answer["output"]["output_label"], json!([expected["iris_logreg"]["output_label"][2]]), "{answer}");
    // The leader's figures reach the page at the next refresh.
    b.wait_js(
        "the request counted",
        "return [...document.querySelectorAll('#facts dd')].some(d => d.textContent === '1 (0)') && document.querySelector('#rate-chart polyline');",
        Duration::from_secs(15),
    )
    .await;
    let measured = b.js("return document.querySelector('#content > p.muted').textContent;", vec![]).await;
    assert!(
        measured.as_str().unwrap().starts_with(&format!("Measured by node {leader_id} (the leader)")),
        "{measured}"
    );
    b.screenshot("app").await;

    // Datasets through the form, then a train job on them.
    b.goto(&format!("{on_follower}/ui/datasets")).await;
    let iris = workspace_root().join("datasets/iris.csv");
    for name in ["iris_train", "iris_val"] {
        b.fill("#upload input[name=name]", name).await;
        b.choose_file("#upload input[name=file]", &iris).await;
        b.click("#upload button[type=submit]").await;
        b.wait_js(
            "the uploaded dataset",
            &format!("return [...document.querySelectorAll('#datasets tbody tr')].some(tr => tr.children[0].textContent === '{name}');"),
            SLOW,
        )
        .await;
    }
    let table = rows(&b, "datasets").await;
    assert_eq!(table.len(), 2, "{table:?}");
    assert!(table.iter().all(|r| r[2] == "150" && r[5].contains("0: 50")), "rows and classes: {table:?}");
    b.screenshot("datasets").await;

    b.goto(&format!("{on_follower}/ui/jobs")).await;
    b.fill("#create-job input[name=app]", "iris-ui").await;
    b.js("document.querySelector('#create-job select[name=validation_dataset]').value = 'iris_val';", vec![]).await;
    b.click("#create-job input[value=logistic_regression]").await;
    b.fill("#create-job input[name=trials]", "4").await;
    b.fill("#create-job input[name=workers]", "2").await;
    b.click("#create-job button[type=submit]").await;
    b.wait_js("the job's page", "return /^\\/ui\\/jobs\\/\\d+$/.test(location.pathname);", SLOW).await;
    b.wait_js(
        "four trials done",
        "const r = [...document.querySelectorAll('#trials tbody tr')]; return r.length === 4 && r.every(tr => tr.children[3].textContent === 'completed');",
        Duration::from_secs(120),
    )
    .await;
    b.wait_js(
        "four scores in the chart",
        "return document.querySelectorAll('#score-chart circle').length === 4;",
        SLOW,
    )
    .await;
    b.wait_js("a best-so-far line", "return document.querySelector('#score-chart polyline');", SLOW).await;
    b.wait_js("per-epoch metrics", "return document.querySelectorAll('#metrics-chart polyline').length >= 2;", SLOW)
        .await;
    let still = sb.status(follower).await.unwrap();
    assert!(!still.is_leader, "the writes above went through a follower's page");
    let trials = rows(&b, "trials").await;
    assert_eq!(trials.len(), 4, "{trials:?}");
    assert!(
        trials.iter().all(|r| r[1] == "logistic_regression" && r[4].parse::<f64>().is_ok_and(|s| s > 0.5)),
        "{trials:?}"
    );
    b.screenshot("job").await;

    // Deploy the best trial to a new app from the job's page.
    b.fill("#deploy input[name=app]", "iris-best").await;
    b.click("#deploy button[type=submit]").await;
    let done = b
        .wait_js("the deploy", "const b = document.getElementById('banner'); return !b.hidden && b.textContent;", SLOW)
        .await;
    assert!(done.as_str().unwrap().starts_with("App iris-best now serves iris-ui-job1:"), "{done}");
    let best = sb.api(leader, Method::GET, "/api/jobs/1/best", None, &sb.token()).await;
    let app = sb.api(leader, Method::GET, "/api/apps/iris-best", None, &sb.token()).await;
    let model = best.body["trials"][0]["model"].as_str().unwrap().to_string();
    let member = &app.body["members"][0];
    assert_eq!(format!("{}:{}", member["model"].as_str().unwrap(), member["version"]), model, "{}", app.text);

    // A long job, stopped from its page.
    b.goto(&format!("{on_follower}/ui/jobs")).await;
    b.fill("#create-job input[name=app]", "iris-long").await;
    b.click("#create-job input[value=mlp_classifier]").await;
    b.fill("#create-job input[name=trials]", "200").await;
    b.click("#create-job button[type=submit]").await;
    b.wait_js("the long job running", "const s = document.getElementById('job-status'); return s && document.querySelector('#trials tbody tr') && s.textContent === 'running';", SLOW).await;
    b.click("#stop").await;
    b.client.accept_alert().await.expect("the stop asks to confirm");
    b.wait_js(
        "the job stopped",
        "const s = document.getElementById('job-status'); return s && s.textContent.startsWith('stopped');",
        SLOW,
    )
    .await;
    b.goto(&format!("{on_follower}/ui/jobs")).await;
    b.wait_js("both jobs listed", "return document.querySelectorAll('#jobs tbody tr a').length === 2;", SLOW).await;
    b.screenshot("jobs").await;

    // Users, for admins.
    b.goto(&format!("{on_follower}/ui/users")).await;
    b.wait_js("the users", "return document.querySelectorAll('#users tbody tr').length === 3;", SLOW).await;
    b.fill("#create-user input[name=email]", "temp@example.org").await;
    b.fill("#create-user input[name=password]", PASSWORD).await;
    b.click("#create-user button[type=submit]").await;
    b.wait_js("the new user", "return document.querySelectorAll('#users tbody tr').length === 4;", SLOW).await;
    b.js("[...document.querySelectorAll('#users tbody tr')].find(tr => tr.children[1].textContent === 'temp@example.org').querySelector('button[data-action=ban]').click();", vec![]).await;
    b.wait_js("the ban", "return [...document.querySelectorAll('#users tbody tr')].some(tr => tr.children[1].textContent === 'temp@example.org' && tr.children[3].textContent === 'banned');", SLOW).await;
    let users = sb.api(leader, Method::GET, "/api/users", None, &sb.token()).await;
    let temp = users.body["users"].as_array().unwrap().iter().find(|u| u["email"] == "temp@example.org").cloned();
    assert_eq!(temp.map(|u| u["banned"].clone()), Some(json!(true)), "{}", users.text);
    b.screenshot("users").await;

    // Page weights (the HTML and the assets it links, as served) and load
    // times in the browser (to the load event, and to the page showing its
    // data), medians of five loads each.
    let pages = [
        "/ui/login",
        "/ui/",
        "/ui/models",
        "/ui/apps",
        "/ui/apps/flowers",
        "/ui/datasets",
        "/ui/jobs",
        "/ui/jobs/1",
        "/ui/users",
    ];
    let mut weights = Vec::new();
    for page in pages {
        let bytes = page_weight(&sb, &on_follower, page).await;
        let (mut loads, mut ready) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            b.goto(&format!("{on_follower}{page}")).await;
            let m = b
                .wait_js(
                    "the page ready",
                    "const n = performance.getEntriesByType('navigation')[0];\
                     const r = performance.getEntriesByName('boat-ready')[0];\
                     return n && n.loadEventEnd && r ? {load_ms: n.loadEventEnd - n.startTime, ready_ms: r.startTime} : null;",
                    SLOW,
                )
                .await;
            assert_eq!(b.banner().await, None, "{page} loaded without an error");
            loads.push(m["load_ms"].as_f64().unwrap());
            ready.push(m["ready_ms"].as_f64().unwrap());
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        weights.push(
            json!({"page": page, "bytes": bytes, "median_load_ms": median(loads), "median_ready_ms": median(ready)}),
        );
        assert!(bytes > 5_000 && bytes < 200_000, "{page} weighs {bytes} bytes");
    }
    let report = serde_json::to_string_pretty(&weights).unwrap();
    eprintln!("page weights:\n{report}");
    std::fs::write(b.artifacts().join("page-weights.json"), &report).unwrap();

    // Only the API's own routes are reachable through /ui/api, and only
    // numeric job pages exist.
    for path in
        ["/ui/api/control", "/ui/api/status", "/ui/api/metrics", "/ui/api/api/../control", "/ui/api/api/%2e%2e/control"]
    {
        let r = sb
            .client()
            .send_raw(Method::POST, &on_follower, path, "application/json", b"{}".to_vec(), None)
            .await
            .unwrap();
        assert_eq!(r.status, 404, "{path}: {}", r.text);
    }
    for path in ["/ui/jobs/..%2Fusers%2F5%2Fban%3F", "/ui/apps/..%2Fusers"] {
        let r = sb.client().send_raw(Method::GET, &on_follower, path, "text/plain", Vec::new(), None).await.unwrap();
        assert!(r.status == 404 && r.text.contains("Not found · Boat"), "{path}: {} {}", r.status, r.text);
    }

    // Sign out; a user with too low a role sees what it may not do refused.
    b.click("#signout").await;
    b.wait_js("the sign-in page", "return location.pathname === '/ui/login';", SLOW).await;
    b.sign_in(&on_leader, "viewer@example.org", PASSWORD).await;
    b.goto(&format!("{on_leader}/ui/models")).await;
    b.wait_js("the models list", "return document.querySelector('section[data-model=iris]');", SLOW).await;
    let upload_form = b.js("return document.getElementById('upload') !== null;", vec![]).await;
    assert_eq!(upload_form, json!(false), "an app user gets no upload form");
    b.goto(&format!("{on_leader}/ui/users")).await;
    let refused = b
        .wait_js("the refusal", "const b = document.getElementById('banner'); return !b.hidden && b.textContent;", SLOW)
        .await;
    assert!(refused.as_str().unwrap().starts_with("Not allowed for your role"), "{refused}");
    b.goto(&format!("{on_leader}/ui/datasets")).await;
    b.wait_js(
        "the list refused",
        "const b = document.getElementById('banner'); return !b.hidden && b.textContent.includes('Not allowed');",
        SLOW,
    )
    .await;
    let upload_form = b.js("return document.getElementById('upload') !== null;", vec![]).await;
    assert_eq!(upload_form, json!(false), "an app user gets no upload form");
    // The hidden form is not the protection: the same write from this
    // user's session is refused by the API, with a readable message.
    let refused = b
        .js_async(
            "const done = arguments[arguments.length - 1];\
             Boat.request('POST', '/api/datasets/sneaky?task=classification', {body: 'a,b\\n1,0\\n', type: 'text/csv'})\
               .then(() => done('stored'), e => done(e.status + ' ' + e.message));",
        )
        .await;
    assert!(refused.as_str().unwrap().starts_with("403 Not allowed for your role"), "{refused}");
    b.screenshot("refused").await;
    let listed = sb.api(leader, Method::GET, "/api/datasets/sneaky", None, &sb.token()).await;
    assert_eq!(listed.status, 404, "nothing was stored: {refused}");

    // A node down: the cluster page says so and goes on refreshing.
    let down = others(leader)[1];
    let down_id = sb.status(down).await.unwrap().node_id;
    sb.cluster.kill_node(down).await.unwrap();
    b.goto(&format!("{on_leader}/ui/")).await;
    let verdict = b
        .wait_js(
            "the degraded verdict",
            "const v = document.getElementById('verdict').textContent; return v.startsWith('degraded') && v;",
            SLOW,
        )
        .await;
    assert!(verdict.as_str().unwrap().contains("is unreachable"), "{verdict}");
    let table = rows(&b, "nodes").await;
    let row = table.iter().find(|r| r[0] == down_id.to_string()).expect("the dead node's row");
    assert!(row[10].starts_with("unreachable"), "{row:?}");
    b.screenshot("cluster-degraded").await;
    b.close().await;
}

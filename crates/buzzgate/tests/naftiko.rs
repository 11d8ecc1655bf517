//! `deploy/naftiko/civitai-oauth.yaml`, seed 000's capability: well-formed YAML whose every
//! path, port and tool exists in Buzzgate (docs/mcp.md).

use serde_json::Value;

fn capability() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/naftiko/civitai-oauth.yaml"
    );
    let text = std::fs::read_to_string(path).expect("the capability file");
    yaml_serde::from_str(&text).expect("well-formed YAML")
}

async fn serve_with_mcp() -> (buzzgate::Running, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("bgnaftiko-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = buzzgate::Config {
        listen: "127.0.0.1:0".into(),
        mcp_listen: Some("127.0.0.1:0".into()),
        database_url: format!("sqlite://{}", dir.join("bg.db").display()),
        signing_key_file: dir.join("key.pem").display().to_string(),
        sweep_interval_seconds: 0,
        ..buzzgate::Config::default()
    };
    (buzzgate::start(&cfg).await.expect("serve"), dir)
}

#[tokio::test]
async fn the_seed_capability_names_only_what_buzzgate_serves() {
    let c = capability();
    assert_eq!(c["naftiko"], "1.0.0-alpha2");
    let keys = &c["binds"][0]["keys"];
    assert_eq!(keys["CIVITAI_CLIENT_ID"], "CIVITAI_CLIENT_ID");
    assert_eq!(keys["CIVITAI_CLIENT_SECRET"], "CIVITAI_CLIENT_SECRET");
    // The settings the binds name exist.
    assert!(buzzgate::config::ENV_KEYS.contains(&"CIVITAI_CLIENT_ID"));
    assert!(buzzgate::config::ENV_KEYS.contains(&"CIVITAI_CLIENT_SECRET"));
    // Ports: the REST adapter is the default listener's, the MCP adapter the proxy's default.
    let exposes = c["capability"]["exposes"].as_array().unwrap();
    let rest = exposes.iter().find(|e| e["type"] == "rest").unwrap();
    let mcp = exposes.iter().find(|e| e["type"] == "mcp").unwrap();
    assert_eq!(rest["port"], 8080);
    assert!(buzzgate::Config::default().listen.ends_with(":8080"));
    assert_eq!(mcp["port"], 9090);
    assert_eq!(mcp["transport"], "http");
    let base = c["capability"]["consumes"][0]["baseUri"].as_str().unwrap();
    assert_eq!(
        base,
        format!("http://{}", buzzgate::Config::default().listen)
    );

    let (running, dir) = serve_with_mcp().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |path: &str| format!("http://{}{path}", running.addr);
    // Every consumed path and every exposed REST path answers (not 404/405).
    let mut paths: Vec<(String, String)> = Vec::new();
    for r in c["capability"]["consumes"][0]["resources"]
        .as_array()
        .unwrap()
    {
        let method = r["operations"][0]["method"].as_str().unwrap().to_owned();
        paths.push((method, r["path"].as_str().unwrap().to_owned()));
    }
    for r in rest["resources"].as_array().unwrap() {
        let method = r["operations"][0]["method"].as_str().unwrap().to_owned();
        paths.push((method, r["path"].as_str().unwrap().to_owned()));
    }
    assert_eq!(paths.len(), 4);
    for (method, path) in &paths {
        let res = match method.as_str() {
            "GET" => http.get(url(path)).send().await.unwrap(),
            "POST" => http
                .post(url(path))
                .form(&[("grant_type", "authorization_code")])
                .send()
                .await
                .unwrap(),
            m => panic!("unexpected method {m}"),
        };
        let s = res.status().as_u16();
        assert!(s != 404 && s != 405 && s < 500, "{method} {path}: {s}");
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert!(
            body["error"].is_string(),
            "{method} {path} answers an OAuth error: {body}"
        );
    }
    // The tool exists on the MCP listener with the capability's hints.
    let mcp_url = format!("http://{}/mcp", running.mcp_addr.unwrap());
    let post = |body: Value, session: Option<String>| {
        let mut req = http
            .post(&mcp_url)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(s) = session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-06-18");
        }
        req.send()
    };
    let init = post(
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "naftiko-check", "version": "1"}}}),
        None,
    )
    .await
    .unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    post(
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        Some(session.clone()),
    )
    .await
    .unwrap();
    let listed = post(
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        Some(session),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let msg: Value = listed
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .next_back()
        .or_else(|| serde_json::from_str(&listed).ok())
        .expect("a JSON-RPC answer");
    for tool in mcp["tools"].as_array().unwrap() {
        let name = tool["name"].as_str().unwrap();
        let served = msg["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} is served"));
        let a = &served["annotations"];
        assert_eq!(a["readOnlyHint"], tool["hints"]["readOnly"], "{name}");
        assert_eq!(a["destructiveHint"], tool["hints"]["destructive"], "{name}");
        assert_eq!(a["idempotentHint"], tool["hints"]["idempotent"], "{name}");
    }
    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

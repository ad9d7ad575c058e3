//! The authorisation matrix: every route × every role (bearer tokens and browser sessions) ×
//! own / other tenant × no / forged credentials × missing or wrong CSRF token → the expected
//! status, on SQLite and PostgreSQL; and nothing of one tenant is visible to another. Global
//! admins' users and tokens are objects too: only a global admin sees or changes them; to a
//! tenant's own admin they do not exist (404).

use serde_json::{Value, json};
use siren_core::user::Role;

use crate::server::{
    Browser, PASSWORD, add_token, add_user, backends, config, log_cleared, login, logon, start,
};

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Nobody needs to log in.
    Public,
    /// Any authenticated caller.
    Anyone,
    /// admin, analyst, viewer.
    Read,
    /// admin, analyst.
    Work,
    /// admin, analyst, agent.
    Send,
    /// agent, admin.
    Heartbeat,
    /// admin.
    Admin,
    /// A global admin.
    GlobalAdmin,
}

/// A route of the API and who may use it.
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path (with `{id}` / `{name}` placeholders).
    pub path: &'static str,
    /// Who may use it.
    pub who: Who,
    /// Statuses an allowed caller gets on its own tenant's objects.
    pub ok: &'static [u16],
}

/// Every route the server has (the OpenAPI test checks this table against the document).
pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/healthz",
        who: Who::Public,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/metrics",
        who: Who::GlobalAdmin,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/api/v1/openapi.json",
        who: Who::Public,
        ok: &[200],
    },
    Route {
        method: "POST",
        path: "/api/v1/auth/login",
        who: Who::Public,
        ok: &[200],
    },
    Route {
        method: "POST",
        path: "/api/v1/auth/logout",
        who: Who::Anyone,
        ok: &[204],
    },
    Route {
        method: "GET",
        path: "/api/v1/auth/me",
        who: Who::Anyone,
        ok: &[200],
    },
    Route {
        method: "POST",
        path: "/api/v1/events",
        who: Who::Send,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/api/v1/events",
        who: Who::Read,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/api/v1/incidents",
        who: Who::Read,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/api/v1/incidents/{id}",
        who: Who::Read,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/api/v1/incidents/{id}/timeline",
        who: Who::Read,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/api/v1/incidents/{id}/alerts",
        who: Who::Read,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/api/v1/incidents/{id}/events",
        who: Who::Read,
        ok: &[200],
    },
    Route {
        method: "POST",
        path: "/api/v1/incidents/{id}/assign",
        who: Who::Work,
        ok: &[200],
    },
    Route {
        method: "POST",
        path: "/api/v1/incidents/{id}/status",
        who: Who::Work,
        ok: &[200, 422],
    },
    Route {
        method: "POST",
        path: "/api/v1/incidents/{id}/notes",
        who: Who::Work,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/api/v1/rules",
        who: Who::Read,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/api/v1/stats",
        who: Who::Read,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/api/v1/reports/summary",
        who: Who::Read,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/api/v1/reports/incidents/{id}",
        who: Who::Read,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/api/v1/stream",
        who: Who::Read,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/api/v1/agents",
        who: Who::Read,
        ok: &[200],
    },
    Route {
        method: "POST",
        path: "/api/v1/agents/heartbeat",
        who: Who::Heartbeat,
        ok: &[204],
    },
    Route {
        method: "GET",
        path: "/api/v1/cluster",
        who: Who::GlobalAdmin,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/api/v1/retention",
        who: Who::Admin,
        ok: &[200],
    },
    Route {
        method: "POST",
        path: "/api/v1/retention/purge",
        who: Who::Admin,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/api/v1/archive",
        who: Who::Admin,
        ok: &[200],
    },
    Route {
        method: "POST",
        path: "/api/v1/archive/restore",
        who: Who::Admin,
        // The matrix's server has no archive.
        ok: &[422],
    },
    Route {
        method: "GET",
        path: "/api/v1/users",
        who: Who::Admin,
        ok: &[200],
    },
    Route {
        method: "POST",
        path: "/api/v1/users",
        who: Who::Admin,
        ok: &[200],
    },
    Route {
        method: "POST",
        path: "/api/v1/users/{name}/disable",
        who: Who::Admin,
        ok: &[200],
    },
    Route {
        method: "POST",
        path: "/api/v1/users/{name}/enable",
        who: Who::Admin,
        ok: &[200],
    },
    Route {
        method: "GET",
        path: "/api/v1/tokens",
        who: Who::Admin,
        ok: &[200],
    },
    Route {
        method: "POST",
        path: "/api/v1/tokens",
        who: Who::Admin,
        ok: &[200],
    },
    Route {
        method: "DELETE",
        path: "/api/v1/tokens/{id}",
        who: Who::Admin,
        ok: &[200],
    },
];

/// Whether `role` may call a route of class `who`: the matrix written out as data here, not
/// taken from `Role::can_*` (the code under test).
fn allowed(who: Who, role: Role, global: bool) -> bool {
    use Role::{Admin, Agent, Analyst, Viewer};
    let roles: &[Role] = match who {
        Who::Public | Who::Anyone => &[Admin, Analyst, Viewer, Agent],
        Who::Read => &[Admin, Analyst, Viewer],
        Who::Work => &[Admin, Analyst],
        Who::Send => &[Admin, Analyst, Agent],
        Who::Heartbeat => &[Admin, Agent],
        Who::Admin => &[Admin],
        Who::GlobalAdmin => return role == Admin && global,
    };
    roles.contains(&role)
}

/// How a caller authenticates.
enum Credential {
    Token(String),
    Session(Browser, CsrfMode),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CsrfMode {
    Right,
    Missing,
    Wrong,
}

struct Caller {
    label: String,
    role: Role,
    global: bool,
    credential: Credential,
}

/// The objects of one tenant the routes' placeholders point at.
struct Objects {
    incident: i64,
    token: i64,
    user: &'static str,
    /// A global admin user of the tenant.
    global_user: &'static str,
    /// A global admin token of the tenant.
    global_token: i64,
}

fn concrete(path: &str, objects: &Objects) -> String {
    if path.starts_with("/api/v1/tokens/") {
        path.replace("{id}", &objects.token.to_string())
    } else {
        path.replace("{id}", &objects.incident.to_string())
            .replace("{name}", objects.user)
    }
}

/// `path` pointing at the tenant's global user or token, for the routes that name one.
fn concrete_global(path: &str, objects: &Objects) -> Option<String> {
    if path.starts_with("/api/v1/tokens/") {
        Some(path.replace("{id}", &objects.global_token.to_string()))
    } else if path.contains("{name}") {
        Some(path.replace("{name}", objects.global_user))
    } else {
        None
    }
}

fn body(route: &Route, n: usize) -> Option<Value> {
    match (route.method, route.path) {
        ("POST", "/api/v1/events") => Some(json!([logon("matrix", n as i64)])),
        ("POST", "/api/v1/agents/heartbeat") => Some(json!({"agent": "matrix-agent"})),
        ("POST", "/api/v1/incidents/{id}/assign") => Some(json!({"assignee": "analyst"})),
        ("POST", "/api/v1/incidents/{id}/status") => Some(json!({"status": "escalated"})),
        ("POST", "/api/v1/incidents/{id}/notes") => Some(json!({"text": "matrix"})),
        ("POST", "/api/v1/users") => {
            Some(json!({"name": format!("new{n}"), "role": "viewer", "password": PASSWORD}))
        }
        ("POST", "/api/v1/tokens") => Some(json!({"name": "matrix", "role": "viewer"})),
        ("POST", "/api/v1/retention/purge") => Some(json!({"dry_run": true})),
        ("POST", "/api/v1/archive/restore") => Some(json!({"from": "2024-03-04"})),
        ("POST", "/api/v1/auth/login") => {
            Some(json!({"username": "viewer", "password": PASSWORD, "tenant": "acme"}))
        }
        _ => None,
    }
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    route: &Route,
    path: &str,
    caller: Option<&Caller>,
    tenant_header: Option<&str>,
    n: usize,
) -> u16 {
    let url = format!("{base}{path}");
    let method: reqwest::Method = route.method.parse().unwrap();
    let mut request = match caller.map(|c| &c.credential) {
        Some(Credential::Session(browser, csrf)) => {
            let mut request = browser.client.request(method, &url);
            match csrf {
                CsrfMode::Right => request = request.header("X-CSRF-Token", &browser.csrf),
                CsrfMode::Wrong => request = request.header("X-CSRF-Token", "f".repeat(64)),
                CsrfMode::Missing => {}
            }
            request
        }
        Some(Credential::Token(secret)) => http.request(method, &url).bearer_auth(secret),
        None => http.request(method, &url),
    };
    if let Some(tenant) = tenant_header {
        request = request.header("X-Siren-Tenant", tenant);
    }
    if let Some(body) = body(route, n) {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    response.status().as_u16()
}

/// Sets up a tenant: an incident, users of every role, tokens of every role.
async fn tenant(server: &crate::server::TestServer, name: &str) -> (Objects, Vec<Caller>) {
    let store = &server.store;
    // Each tenant's disable/enable target has its own name, so reaching another tenant's
    // user by name would show.
    let (victim, root) = if name == "acme" {
        ("victim", "root")
    } else {
        ("victim-globex", "root-globex")
    };
    for (user, role) in [
        ("admin", Role::Admin),
        ("analyst", Role::Analyst),
        ("viewer", Role::Viewer),
        (victim, Role::Viewer),
        (root, Role::Admin),
    ] {
        add_user(store, name, user, role).await;
    }
    let tenant_id = siren_core::TenantId::parse(name).unwrap();
    store
        .set_user_global(
            &tenant_id,
            root,
            true,
            &siren_core::user::Actor {
                name: "test".into(),
                origin: "test".into(),
            },
        )
        .await
        .unwrap();
    add_token(store, name, Role::Admin, true).await;
    let global_token = store
        .list_tokens(&tenant_id)
        .await
        .unwrap()
        .last()
        .unwrap()
        .id;
    let agent = add_token(store, name, Role::Agent, false).await;
    let http = reqwest::Client::new();
    let outcome: Value = http
        .post(server.at("/api/v1/events"))
        .bearer_auth(&agent)
        .json(&json!([log_cleared(&format!("{name}-dc"), 1)]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(outcome["incidents_created"], 1, "{outcome}");
    let tenant = siren_core::TenantId::parse(name).unwrap();
    let page = store
        .list_incidents(
            &tenant,
            &siren_core::incident::IncidentFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let incident = page.incidents[0].id.0;
    add_token(store, name, Role::Viewer, false).await;
    let token = store.list_tokens(&tenant).await.unwrap().last().unwrap().id;
    let mut callers = vec![Caller {
        label: format!("{name} agent token"),
        role: Role::Agent,
        global: false,
        credential: Credential::Token(agent),
    }];
    for role in [Role::Admin, Role::Analyst, Role::Viewer] {
        callers.push(Caller {
            label: format!("{name} {} token", role.as_str()),
            role,
            global: false,
            credential: Credential::Token(add_token(store, name, role, false).await),
        });
        for csrf in [CsrfMode::Right, CsrfMode::Missing, CsrfMode::Wrong] {
            callers.push(Caller {
                label: format!("{name} {} session (CSRF {csrf:?})", role.as_str()),
                role,
                global: false,
                credential: Credential::Session(login(server, name, role.as_str()).await, csrf),
            });
        }
    }
    callers.push(Caller {
        label: format!("{name} global admin token"),
        role: Role::Admin,
        global: true,
        credential: Credential::Token(add_token(store, name, Role::Admin, true).await),
    });
    (
        Objects {
            incident,
            token,
            user: victim,
            global_user: root,
            global_token,
        },
        callers,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_every_role_every_tenant() {
    for (url, dir) in backends().await {
        let server = start(&url, dir, config()).await;
        let (acme, acme_callers) = tenant(&server, "acme").await;
        let (globex, globex_callers) = tenant(&server, "globex").await;
        let http = reqwest::Client::new();
        let mut failures = Vec::new();
        let mut checked = 0;
        let mut n = 0;
        for route in ROUTES {
            // Logging out ends the caller's session: checked on its own below.
            if route.path == "/api/v1/auth/logout" {
                continue;
            }
            let own_path = concrete(route.path, &acme);
            // No credentials, forged credentials.
            let expect_anonymous = if route.who == Who::Public {
                route.ok[0]
            } else {
                401
            };
            n += 1;
            let got = send(&http, &server.base, route, &own_path, None, None, n).await;
            checked += 1;
            if got != expect_anonymous {
                failures.push(format!(
                    "{} {own_path} without credentials: {got}, expected {expect_anonymous}",
                    route.method
                ));
            }
            if route.who != Who::Public {
                let forged_token = Caller {
                    label: "forged".into(),
                    role: Role::Admin,
                    global: true,
                    credential: Credential::Token(
                        "siren_forged0000000000000000000000000000000000".into(),
                    ),
                };
                let got = send(
                    &http,
                    &server.base,
                    route,
                    &own_path,
                    Some(&forged_token),
                    None,
                    n,
                )
                .await;
                checked += 1;
                if got != 401 {
                    failures.push(format!(
                        "{} {own_path} with a forged token: {got}",
                        route.method
                    ));
                }
                let forged_cookie = reqwest::Client::new()
                    .request(route.method.parse().unwrap(), server.at(&own_path))
                    .header("Cookie", "siren_session=forged-session-value")
                    .header("X-CSRF-Token", "anything")
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                checked += 1;
                if forged_cookie != 401 {
                    failures.push(format!(
                        "{} {own_path} with a forged cookie: {forged_cookie}",
                        route.method
                    ));
                }
            }
            if route.who == Who::Public {
                continue;
            }
            for (callers, target, target_is_own) in [
                (&acme_callers, &acme, true),
                (&globex_callers, &acme, false),
            ] {
                for caller in callers {
                    let path = concrete(route.path, target);
                    n += 1;
                    let got = send(&http, &server.base, route, &path, Some(caller), None, n).await;
                    checked += 1;
                    let changes = route.method != "GET";
                    let bad_csrf = matches!(&caller.credential, Credential::Session(_, csrf) if *csrf != CsrfMode::Right);
                    let expected: Vec<u16> = if !allowed(route.who, caller.role, caller.global)
                        || (changes && bad_csrf)
                    {
                        vec![403]
                    } else if !target_is_own && route.path.contains('{') {
                        vec![404]
                    } else {
                        route.ok.to_vec()
                    };
                    if !expected.contains(&got) {
                        failures.push(format!(
                            "{} {path} as {}: {got}, expected {expected:?}",
                            route.method, caller.label
                        ));
                    }
                    // The tenant's global user or token: a tenant admin does not see it.
                    if let Some(global_path) = concrete_global(route.path, target) {
                        let expected: Vec<u16> = if !allowed(route.who, caller.role, caller.global)
                            || (changes && bad_csrf)
                        {
                            vec![403]
                        } else if !target_is_own || !caller.global {
                            vec![404]
                        } else {
                            route.ok.to_vec()
                        };
                        n += 1;
                        let got = send(
                            &http,
                            &server.base,
                            route,
                            &global_path,
                            Some(caller),
                            None,
                            n,
                        )
                        .await;
                        checked += 1;
                        if !expected.contains(&got) {
                            failures.push(format!(
                                "{} {global_path} as {}: {got}, expected {expected:?}",
                                route.method, caller.label
                            ));
                        }
                    }
                    // Naming the other tenant: only a global admin may.
                    let other = if target_is_own { "globex" } else { "acme" };
                    if !(caller.global || (changes && bad_csrf)) {
                        n += 1;
                        let got = send(
                            &http,
                            &server.base,
                            route,
                            &path,
                            Some(caller),
                            Some(other),
                            n,
                        )
                        .await;
                        checked += 1;
                        if got != 403 {
                            failures.push(format!(
                                "{} {path} as {} naming tenant {other}: {got}, expected 403",
                                route.method, caller.label
                            ));
                        }
                    }
                }
            }
            // A global admin of globex works on acme's objects when it names acme.
            let global = globex_callers.iter().find(|c| c.global).unwrap();
            n += 1;
            let got = send(
                &http,
                &server.base,
                route,
                &own_path,
                Some(global),
                Some("acme"),
                n,
            )
            .await;
            checked += 1;
            if !route.ok.contains(&got) {
                failures.push(format!(
                    "{} {own_path} as globex's global admin naming acme: {got}, expected {:?}",
                    route.method, route.ok
                ));
            }
            if let Some(global_path) = concrete_global(route.path, &acme) {
                n += 1;
                let got = send(
                    &http,
                    &server.base,
                    route,
                    &global_path,
                    Some(global),
                    Some("acme"),
                    n,
                )
                .await;
                checked += 1;
                if !route.ok.contains(&got) {
                    failures.push(format!(
                        "{} {global_path} as globex's global admin naming acme: {got}, expected {:?}",
                        route.method, route.ok
                    ));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {checked} checks failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
        eprintln!("{url}: {checked} authorisation checks passed");

        // Lists: a tenant admin sees no global user or token; a global admin sees them.
        let global = globex_callers.iter().find(|c| c.global).unwrap();
        let tenant_admin = acme_callers
            .iter()
            .find(|c| c.label == "acme admin token")
            .unwrap();
        for (caller, sees_global) in [(tenant_admin, false), (global, true)] {
            for path in ["/api/v1/users", "/api/v1/tokens"] {
                let route = ROUTES
                    .iter()
                    .find(|r| r.method == "GET" && r.path == path)
                    .unwrap();
                let Credential::Token(secret) = &caller.credential else {
                    unreachable!()
                };
                let listed: Value = http
                    .get(server.at(route.path))
                    .bearer_auth(secret)
                    .header("X-Siren-Tenant", "acme")
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let key = if path.ends_with("users") {
                    "users"
                } else {
                    "tokens"
                };
                let items = listed[key].as_array().unwrap();
                let globals = items.iter().filter(|i| i["global"] == true).count();
                assert_eq!(
                    globals > 0,
                    sees_global,
                    "{path} as {}: {listed}",
                    caller.label
                );
                if path.ends_with("users") {
                    let root_listed = items.iter().any(|u| u["name"] == "root");
                    assert_eq!(root_listed, sees_global, "{path} as {}", caller.label);
                }
            }
        }

        // Nothing of acme is visible to globex.
        let viewer = globex_callers
            .iter()
            .find(|c| c.label == "globex viewer token")
            .unwrap();
        let Credential::Token(secret) = &viewer.credential else {
            unreachable!()
        };
        for path in [
            "/api/v1/incidents",
            "/api/v1/events?limit=1000",
            "/api/v1/stats",
            "/api/v1/agents",
        ] {
            let text = http
                .get(server.at(path))
                .bearer_auth(secret)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(!text.contains("acme"), "{path} shows acme's data: {text}");
        }
        let stats: Value = http
            .get(server.at("/api/v1/stats"))
            .bearer_auth(secret)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            stats["incidents_open"], 1,
            "globex's own incident only: {stats}"
        );
        let other: Value = http
            .get(server.at(&format!("/api/v1/incidents/{}", acme.incident)))
            .bearer_auth(secret)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(!other.to_string().contains("acme"), "{other}");
        let _ = globex;

        // Logout: needs the CSRF token, then ends the session.
        let analyst = acme_callers
            .iter()
            .find(|c| {
                matches!(&c.credential, Credential::Session(_, CsrfMode::Right))
                    && c.role == Role::Analyst
            })
            .unwrap();
        let Credential::Session(browser, _) = &analyst.credential else {
            unreachable!()
        };
        let refused = browser
            .client
            .post(server.at("/api/v1/auth/logout"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
        let out = browser
            .client
            .post(server.at("/api/v1/auth/logout"))
            .header("X-CSRF-Token", &browser.csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(out.status(), 204);
        assert_eq!(
            browser
                .client
                .get(server.at("/api/v1/auth/me"))
                .send()
                .await
                .unwrap()
                .status(),
            401
        );
        server.stop().await;
    }
}

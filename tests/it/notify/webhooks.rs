//! Webhooks: Standard Webhooks signatures, Slack and Teams payloads.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_per_standard_webhooks() {
    if !python_has("standardwebhooks") {
        return;
    }
    let receiver = Receiver::start().await;
    let (store, _dir) = sqlite().await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let config = config(&format!(
        r#"
public_url: https://siren.example.org
channels:
  - {{ name: hook, type: webhook, url: "{}", secret: "{SECRET}", headers: {{ X-Team: soc }} }}
policies:
  - {{ channels: [hook] }}
"#,
        receiver.url("hook")
    ));
    open(
        &store,
        &clock,
        &[alert(
            "lsass-access",
            "ws7",
            Severity::Critical,
            start_time(),
        )],
    )
    .await;
    let report = Dispatcher::new(store.clone(), config, clock.clone())
        .unwrap()
        .tick(None)
        .await
        .unwrap();
    assert_eq!(report.sent, 1);
    let hooks = receiver.hooks();
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert_eq!(hook.headers["content-type"], "application/json");
    assert_eq!(hook.headers["x-team"], "soc");
    assert!(hook.headers["webhook-signature"].starts_with("v1,"));
    assert!(hook.headers["webhook-id"].starts_with("msg_"));
    python_verifies(SECRET, hook).expect("the reference implementation accepts the signature");

    // The verifier is real: a changed body, or another secret, fails.
    let mut tampered = hook.clone();
    tampered.body = tampered.body.replace("critical", "low");
    assert!(python_verifies(SECRET, &tampered).is_err());
    assert!(python_verifies("whsec_c2VjcmV0LWJ1dC1ub3QtdGhlLW9uZQ==", hook).is_err());

    let body = hook.json();
    assert_eq!(body["type"], "incident.new");
    assert_eq!(body["tenant"], "acme");
    assert_eq!(body["incident"]["id"], 1);
    assert_eq!(body["incident"]["severity"], "critical");
    assert_eq!(
        body["incident"]["url"],
        "https://siren.example.org/#/incidents/1"
    );
    assert_eq!(body["incidents"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_teams_payloads_have_the_documented_shape() {
    let receiver = Receiver::start().await;
    let (store, _dir) = sqlite().await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let config = config(&format!(
        r#"
public_url: https://siren.example.org
channels:
  - {{ name: slack, type: webhook, preset: slack, url: "{}" }}
  - {{ name: teams, type: webhook, preset: teams, url: "{}" }}
policies:
  - {{ channels: [slack, teams], min_severity: medium }}
"#,
        receiver.url("slack"),
        receiver.url("teams")
    ));
    let mut a = alert("rule<&>", "dc01", Severity::High, start_time());
    a.rule_title = "Escape <me> & *bold*".to_owned();
    open(&store, &clock, &[a]).await;
    let report = Dispatcher::new(store.clone(), config, clock.clone())
        .unwrap()
        .tick(None)
        .await
        .unwrap();
    assert_eq!(report.sent, 2, "{report:?}");

    // Slack incoming webhooks: `text` (the notification fallback) and Block Kit `blocks`.
    let slack = receiver.on("slack")[0].json();
    let text = slack["text"].as_str().unwrap();
    assert!(text.starts_with("New high incident: "), "{text}");
    let blocks = slack["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50);
    for block in blocks {
        let kind = block["type"].as_str().unwrap();
        assert!(
            ["header", "section", "actions", "context", "divider"].contains(&kind),
            "{kind}"
        );
    }
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
    let section = &blocks[1];
    assert_eq!(section["text"]["type"], "mrkdwn");
    let mrkdwn = section["text"]["text"].as_str().unwrap();
    assert!(
        mrkdwn.contains("Escape &lt;me&gt; &amp; *bold*"),
        "{mrkdwn}"
    );
    assert!(
        mrkdwn.contains("<https://siren.example.org/#/incidents/1|#1 "),
        "{mrkdwn}"
    );
    let fields = section["fields"].as_array().unwrap();
    assert!(fields.len() <= 10);
    assert!(
        fields
            .iter()
            .all(|f| f["type"] == "mrkdwn" && f["text"].as_str().unwrap().len() <= 2000)
    );
    let actions = blocks.iter().find(|b| b["type"] == "actions").unwrap();
    assert_eq!(actions["elements"][0]["type"], "button");
    assert_eq!(
        actions["elements"][0]["url"],
        "https://siren.example.org/#/incidents/1"
    );

    // Teams Workflows: a `message` whose attachment is an Adaptive Card.
    let teams = receiver.on("teams")[0].json();
    assert_eq!(teams["type"], "message");
    let attachment = &teams["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert!(card["version"].as_str().unwrap().starts_with("1."));
    for element in card["body"].as_array().unwrap() {
        let kind = element["type"].as_str().unwrap();
        assert!(["TextBlock", "FactSet"].contains(&kind), "{kind}");
        if kind == "FactSet" {
            for fact in element["facts"].as_array().unwrap() {
                assert!(
                    fact["title"].is_string() && fact["value"].is_string(),
                    "{fact}"
                );
            }
        }
    }
    assert!(
        card["body"][1]["text"]
            .as_str()
            .unwrap()
            .contains("Escape <me> & *bold*")
    );
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(
        card["actions"][0]["url"],
        "https://siren.example.org/#/incidents/1"
    );
}

// ---------------------------------------------------------------------------------------------
// Policies, with an injected clock
// ---------------------------------------------------------------------------------------------

//! Email through a real SMTP server.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_reaches_a_real_smtp_server_with_both_bodies_and_the_incident_link() {
    if !python_has("aiosmtpd") {
        return;
    }
    let smtp = SmtpServer::start(free_port(), Some(("siren", "s3cret-smtp")));
    let (store, _dir) = sqlite().await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let config = config(&format!(
        r#"
public_url: https://siren.example.org/
channels:
  - {{ name: soc-mail, type: email, smtp: "smtp://127.0.0.1:{}", tls: none, username: siren, password: s3cret-smtp,
      from: "SIREN <siren@example.org>", to: [soc@example.org, "Lead <lead@example.org>"] }}
policies:
  - {{ channels: [soc-mail], min_severity: high }}
"#,
        smtp.port
    ));
    open(
        &store,
        &clock,
        &[alert("brute-force", "dc01", Severity::High, start_time())],
    )
    .await;
    let dispatcher = Dispatcher::new(store.clone(), config, clock.clone()).unwrap();
    let report = dispatcher.tick(None).await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let raw = &messages[0];
    let text = String::from_utf8_lossy(raw);
    assert!(
        text.contains("X-Test-Auth-User: siren"),
        "authenticated: {text}"
    );
    assert!(
        text.contains("X-Test-Rcpt-To: soc@example.org, lead@example.org"),
        "{text}"
    );
    let mail = mail_parser::MessageParser::default().parse(raw).unwrap();
    assert_eq!(
        mail.subject().unwrap(),
        "[SIREN] New high incident: Rule brute-force — dc01 (#1)"
    );
    let to: Vec<&str> = mail
        .to()
        .unwrap()
        .iter()
        .filter_map(|a| a.address())
        .collect();
    assert_eq!(to, ["soc@example.org", "lead@example.org"]);
    assert_eq!(
        mail.from().unwrap().first().unwrap().address(),
        Some("siren@example.org")
    );
    assert!(mail.message_id().unwrap().ends_with("@example.org"));
    assert_eq!(mail.text_body_count(), 1);
    assert_eq!(mail.html_body_count(), 1);
    let plain = mail.body_text(0).unwrap();
    let html = mail.body_html(0).unwrap();
    assert!(
        plain.contains("https://siren.example.org/#/incidents/1"),
        "{plain}"
    );
    assert!(plain.contains("Hosts:       dc01"), "{plain}");
    assert!(
        html.contains(r#"<a href="https://siren.example.org/#/incidents/1""#),
        "{html}"
    );
    assert!(html.contains("<b>high</b>"), "{html}");

    // The incident's timeline tells it.
    let timeline = store
        .incident_timeline(&acme(), IncidentId(1))
        .await
        .unwrap();
    let sent: Vec<_> = timeline
        .iter()
        .filter(|e| e.kind == "notification_sent")
        .collect();
    assert_eq!(sent.len(), 1, "{timeline:?}");
    assert!(sent[0].detail.contains("soc-mail"), "{sent:?}");

    // A wrong password is refused by the server: a failure the outbox keeps (and tells).
    let wrong = config_with_password(smtp.port, "wrong");
    open(
        &store,
        &clock,
        &[alert("brute-force", "dc02", Severity::High, start_time())],
    )
    .await;
    let dispatcher = Dispatcher::new(store.clone(), wrong, clock.clone()).unwrap();
    let report = dispatcher.tick(None).await.unwrap();
    assert_eq!(
        report.sent + report.retried + report.failed,
        1,
        "{report:?}"
    );
    assert_eq!(report.sent, 0);
    let failed = store
        .list_deliveries(
            &acme(),
            &DeliveryFilter {
                incident: Some(IncidentId(2)),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        failed[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("SMTP"),
        "{failed:?}"
    );
    let timeline = store
        .incident_timeline(&acme(), IncidentId(2))
        .await
        .unwrap();
    assert!(
        timeline.iter().any(|e| e.kind == "notification_failed"),
        "{timeline:?}"
    );
    assert_eq!(smtp.messages().len(), 1);
}

fn config_with_password(port: u16, password: &str) -> NotifyConfig {
    config(&format!(
        r#"
channels:
  - {{ name: soc-mail, type: email, smtp: "smtp://127.0.0.1:{port}", tls: none, username: siren, password: {password},
      from: siren@example.org, to: [soc@example.org] }}
policies:
  - {{ channels: [soc-mail], min_severity: high }}
"#
    ))
}

/// Mail over STARTTLS and over TLS from the first byte, to a real SMTP server with its own
/// certificate (trusted through the channel's `ca_file`): the server saw a TLS session and the
/// login inside it; a channel that does not trust the certificate sends nothing and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_over_starttls_and_implicit_tls() {
    if !python_has("aiosmtpd") {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert_path, key_path) = (certs.path().join("smtp.pem"), certs.path().join("smtp.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    for (scheme, tls, implicit) in [("smtp", "starttls", false), ("smtps", "tls", true)] {
        let smtp = SmtpServer::start_with(
            free_port(),
            Some(("siren", "s3cret-smtp")),
            Some((&cert_path, &key_path, implicit)),
        );
        let channel = |name: &str, ca: &str| {
            format!(
                "  - {{ name: {name}, type: email, smtp: \"{scheme}://127.0.0.1:{}\", tls: {tls}, \
                 username: siren, password: s3cret-smtp, from: siren@example.org, \
                 to: [soc@example.org], timeout: 5s{ca} }}\n",
                smtp.port
            )
        };
        let (store, _dir) = sqlite().await;
        let clock = Arc::new(ManualClock::new(start_time()));
        let config = config(&format!(
            "public_url: https://siren.example.org/\nchannels:\n{}{}policies:\n  - {{ channels: [trusting, untrusting], min_severity: high }}\n",
            channel(
                "trusting",
                &format!(", ca_file: \"{}\"", cert_path.display())
            ),
            channel("untrusting", ""),
        ));
        open(
            &store,
            &clock,
            &[alert("brute-force", "dc01", Severity::High, start_time())],
        )
        .await;
        let dispatcher = Dispatcher::new(store.clone(), config, clock.clone()).unwrap();
        let report = dispatcher.tick(None).await.unwrap();
        assert_eq!(report.sent, 1, "{tls}: {report:?}");
        let messages = smtp.messages();
        assert_eq!(messages.len(), 1, "{tls}");
        let text = String::from_utf8_lossy(&messages[0]);
        assert!(text.contains("X-Test-Tls: yes"), "{tls}: {text}");
        assert!(text.contains("X-Test-Auth-User: siren"), "{tls}: {text}");
        let failed = store
            .list_deliveries(
                &acme(),
                &DeliveryFilter {
                    channel: Some("untrusting".to_owned()),
                    limit: 10,
                    ..DeliveryFilter::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(failed.len(), 1, "{tls}");
        assert_ne!(failed[0].state, DeliveryState::Sent, "{tls}");
        let error = failed[0].last_error.clone().unwrap_or_default();
        assert!(error.contains("certificate"), "{tls}: {error}");
    }
}

//! Email over SMTP with lettre: STARTTLS, implicit TLS, or plain for a local relay; optional
//! authentication; HTML and plain-text bodies from the templates.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::config::{EmailConfig, SmtpTls};
use super::message::{Message, Templates};
use super::{NotifyError, SendError};

/// A configured email channel.
pub(super) struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    domain: String,
    pub(super) timeout: Duration,
}

impl EmailChannel {
    pub(super) fn new(config: &EmailConfig) -> Result<Self, NotifyError> {
        let invalid =
            |what: String| NotifyError::Config(format!("channel '{}': {what}", config.name));
        // The URL may hold a password: messages name the channel, never the URL.
        let url = url::Url::parse(config.smtp.expose())
            .map_err(|e| invalid(format!("invalid smtp URL: {e}")))?;
        let (implied, default_port) = match url.scheme() {
            "smtp" => (SmtpTls::Starttls, 587),
            "smtps" => (SmtpTls::Tls, 465),
            other => {
                return Err(invalid(format!(
                    "smtp URL scheme '{other}': use smtp:// (STARTTLS) or smtps:// (TLS)"
                )));
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("the smtp URL has no host".to_owned()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port().unwrap_or(default_port);
        let mode = config.tls.unwrap_or(implied);
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .timeout(Some(config.timeout));
        if mode != SmtpTls::None {
            let mut params = TlsParameters::builder(host.clone());
            if let Some(path) = &config.ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| invalid(format!("cannot read ca_file {}: {e}", path.display())))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| invalid(format!("ca_file {}: {e}", path.display())))?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| invalid(format!("TLS setup: {e}")))?;
            builder = builder.tls(match mode {
                SmtpTls::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        } else {
            builder = builder.tls(Tls::None);
        }
        let user = config
            .username
            .as_ref()
            .map(|u| u.expose().to_owned())
            .or_else(|| (!url.username().is_empty()).then(|| url.username().to_owned()));
        let password = config
            .password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .or_else(|| url.password().map(str::to_owned));
        match (user, password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(user, password));
            }
            (None, None) => {}
            _ => {
                return Err(invalid(
                    "SMTP authentication needs both a username and a password".to_owned(),
                ));
            }
        }
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| invalid(format!("invalid sender '{}': {e}", config.from)))?;
        let to = config
            .to
            .iter()
            .map(|t| {
                t.parse::<Mailbox>()
                    .map_err(|e| invalid(format!("invalid recipient '{t}': {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let domain = from.email.domain().to_owned();
        Ok(Self {
            transport: builder.build(),
            from,
            to,
            domain,
            timeout: config.timeout,
        })
    }

    pub(super) async fn send(
        &self,
        templates: &Templates,
        message: &Message,
    ) -> Result<(), SendError> {
        let subject = templates
            .render("email.subject.j2", message)
            .map_err(SendError::permanent)?;
        // One line, whatever a template made of it.
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = templates
            .render_with_subject("email.txt.j2", message, &subject)
            .map_err(SendError::permanent)?;
        let html = templates
            .render_with_subject("email.html.j2", message, &subject)
            .map_err(SendError::permanent)?;
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(format!("<{}@{}>", message.id, self.domain)))
            .date(message.now.into());
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let email = builder
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| SendError::permanent(format!("cannot build the message: {e}")))?;
        match self.transport.send(email).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::permanent(format!(
                "SMTP server refused the message: {e}"
            ))),
            Err(e) => Err(SendError::transient(format!("SMTP: {e}"))),
        }
    }
}

//! Webhooks with reqwest: a JSON body from a template (generic, Slack or Teams preset, or the
//! channel's own), signed per Standard Webhooks when the channel has a secret.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use super::config::WebhookConfig;
use super::message::{Message, Templates};
use super::{NotifyError, SendError};

/// A configured webhook channel.
pub(super) struct WebhookChannel {
    client: reqwest::Client,
    url: reqwest::Url,
    template: String,
    signer: Option<standardwebhooks::Webhook>,
    headers: HeaderMap,
    pub(super) timeout: Duration,
}

impl WebhookChannel {
    pub(super) fn new(config: &WebhookConfig) -> Result<Self, NotifyError> {
        let invalid =
            |what: String| NotifyError::Config(format!("channel '{}': {what}", config.name));
        // The URL is a secret for Slack and Teams: messages never show it.
        let url = reqwest::Url::parse(config.url.expose())
            .map_err(|e| invalid(format!("invalid url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the url must be http:// or https://".to_owned()));
        }
        let signer = config
            .secret
            .as_ref()
            .map(|s| standardwebhooks::Webhook::new(s.expose()))
            .transpose()
            .map_err(|_| {
                invalid(
                    "the secret must be base64 (whsec_… as Standard Webhooks writes it)".to_owned(),
                )
            })?;
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("invalid header name '{name}'")))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| invalid(format!("invalid value for header '{name}'")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("SIREN/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.timeout)
            .timeout(config.timeout)
            .build()
            .map_err(|e| invalid(format!("HTTP client: {e}")))?;
        let template = if config.template.is_some() {
            format!("channel:{}", config.name)
        } else {
            config.preset.template().to_owned()
        };
        Ok(Self {
            client,
            url,
            template,
            signer,
            headers,
            timeout: config.timeout,
        })
    }

    /// Renders the body for `message` (JSON, checked).
    pub(super) fn body(
        &self,
        templates: &Templates,
        message: &Message,
    ) -> Result<String, SendError> {
        let body = templates
            .render(&self.template, message)
            .map_err(SendError::permanent)?;
        serde_json::from_str::<serde::de::IgnoredAny>(&body).map_err(|e| {
            SendError::permanent(format!(
                "template {} did not render JSON: {e}",
                self.template
            ))
        })?;
        Ok(body)
    }

    pub(super) async fn send(
        &self,
        templates: &Templates,
        message: &Message,
    ) -> Result<(), SendError> {
        let body = self.body(templates, message)?;
        let mut request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json");
        if let Some(signer) = &self.signer {
            // The signature's time is the wall clock's: receivers check it against theirs.
            let timestamp = chrono::Utc::now().timestamp();
            let signature = signer
                .sign(&message.id, timestamp, body.as_bytes())
                .map_err(|e| SendError::permanent(format!("cannot sign: {e}")))?;
            request = request
                .header("webhook-id", &message.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::transient(format!("webhook: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        let error = format!("webhook answered {status}: {}", text.trim());
        // Throttled, timed out or broken for now: retry. Anything else the endpoint refuses.
        if status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error() {
            Err(SendError::transient(error))
        } else {
            Err(SendError::permanent(error))
        }
    }
}

//! Delivers alert messages by e-mail over SMTP (`SMTP_URL`, `ALERT_EMAIL_FROM`,
//! `ALERT_EMAIL_TO`) with `lettre`: STARTTLS (required) or TLS through rustls, or plain for a
//! local relay. One connection per message (alerts are rare). The password is only handed to
//! the SMTP client: it is never logged, and errors say what failed without it.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Email, Tokio1Executor};

use super::message::Message;
use crate::config::{EmailAlerts, SmtpTls};

const SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// Why an e-mail was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("authentication failed: the SMTP server {server} refused the user name or password in SMTP_URL ({cause})")]
    Authentication { server: String, cause: String },
    #[error("TLS with the SMTP server {server} failed ({cause})")]
    Tls { server: String, cause: String },
    #[error("the SMTP server {server} could not be reached ({cause})")]
    Connection { server: String, cause: String },
    #[error("the SMTP server {server} did not answer in time")]
    Timeout { server: String },
    #[error("the SMTP server {server} refused the message ({cause})")]
    Refused { server: String, cause: String },
    #[error("the alert e-mail could not be built: {0}")]
    Build(String),
}

/// Sends alert e-mails.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// `host:port`, for messages.
    server: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mailer {{ server: {}, to: {} addresses }}", self.server, self.to.len())
    }
}

impl Mailer {
    pub fn new(settings: &EmailAlerts) -> Result<Self, MailError> {
        let smtp = &settings.smtp;
        let server = format!("{}:{}", smtp.host, smtp.port);
        let tls = |host: &str| TlsParameters::new(host.to_owned()).map_err(|e| MailError::Build(e.to_string()));
        let tls = match smtp.tls {
            SmtpTls::StartTls => Tls::Required(tls(&smtp.host)?),
            SmtpTls::Tls => Tls::Wrapper(tls(&smtp.host)?),
            SmtpTls::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(SEND_TIMEOUT));
        if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Self {
            transport: builder.build(),
            from: Mailbox::new(Some("hubspot-sync".to_owned()), settings.from.clone()),
            to: settings.to.iter().cloned().map(|a| Mailbox::new(None, a)).collect(),
            server,
        })
    }

    /// The e-mail of one message: its subject, and its line as a plain-text body.
    pub fn email(&self, message: &Message) -> Result<Email, MailError> {
        let mut builder = Email::builder().from(self.from.clone()).subject(message.subject());
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let body = format!(
            "{}\n\n-- \nSent by hubspot-sync. The status page and `hubspot-sync status` show the current state.\n",
            message.line()
        );
        builder.header(ContentType::TEXT_PLAIN).body(body).map_err(|e| MailError::Build(e.to_string()))
    }

    /// Sends one message to every recipient.
    pub async fn send(&self, message: &Message) -> Result<(), MailError> {
        let email = self.email(message)?;
        self.transport.send(email).await.map(drop).map_err(|e| self.classify(&e))
    }

    fn classify(&self, error: &lettre::transport::smtp::Error) -> MailError {
        let server = self.server.clone();
        let cause = error.to_string();
        let code = error.status().map(|c| c.to_string());
        // 535 credentials invalid, 534 mechanism too weak, 530 authentication required, 454
        // temporary authentication failure.
        if let Some("535" | "534" | "530" | "454") = code.as_deref() {
            return MailError::Authentication { server, cause };
        }
        if error.is_client() && cause.contains("authentication") {
            MailError::Authentication { server, cause }
        } else if error.is_tls() {
            MailError::Tls { server, cause }
        } else if error.is_timeout() {
            MailError::Timeout { server }
        } else if error.is_response() || error.is_permanent() || error.is_transient() {
            MailError::Refused { server, cause }
        } else {
            MailError::Connection { server, cause }
        }
    }
}

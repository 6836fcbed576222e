//! `hubspot-sync alert-test`: sends a test message through every configured alert channel
//! (`ALERT_WEBHOOK_URL`, e-mail through `SMTP_URL`) and prints, per channel, `delivered` or
//! `failed` with the reason. Exit 0 when every channel delivered; 1 when one failed or when no
//! channel is configured (an alert would reach no one).

use std::process::ExitCode;

use crate::alerts::channels::Channels;
use crate::alerts::message::Message;
use crate::config::AlertSettings;
use crate::telemetry::ErrorChain;

use super::error::CliError;

#[derive(clap::Args, Debug)]
pub struct AlertTestArgs {
    #[command(flatten)]
    pub alerts: AlertSettings,
}

pub async fn run(args: AlertTestArgs) -> Result<ExitCode, CliError> {
    let channels = Channels::from_settings(&args.alerts)?;
    if channels.is_empty() {
        eprintln!(
            "no alert channel is configured: set ALERT_WEBHOOK_URL, or ALERT_EMAIL_TO, ALERT_EMAIL_FROM and SMTP_URL"
        );
        return Ok(ExitCode::from(1));
    }
    let message = Message::test(chrono::Utc::now());
    let mut failed = 0;
    for channel in channels.iter() {
        match channel.send(&message).await {
            Ok(()) => println!("{}: delivered", channel.name()),
            Err(error) => {
                failed += 1;
                println!("{}: failed: {}", channel.name(), ErrorChain(&error));
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} alert channels failed", channels.0.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

//! A small SMTP server for the e-mail alert tests: plain TCP on 127.0.0.1, `EHLO`/`HELO`,
//! `AUTH PLAIN` and `AUTH LOGIN` against one known user and password (anything else answers
//! 535), `MAIL`/`RCPT`/`DATA` (refused with 530 before a successful `AUTH`), `RSET`, `NOOP`,
//! `QUIT`. Each accepted message is handed to the test.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// The user and password the server accepts.
pub const USER: &str = "alerts@example.com";
pub const PASSWORD: &str = "smtp-right-password";

/// One accepted message.
#[derive(Clone, Debug)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The raw `DATA` (headers and body), dot-unstuffed.
    pub data: String,
}

impl Mail {
    /// The data with folded header lines unfolded and quoted-printable soft breaks and `=3D`
    /// undone: what a reader sees, for `contains` checks.
    pub fn text(&self) -> String {
        self.data.replace("\r\n ", " ").replace("\r\n\t", " ").replace("=\r\n", "").replace("=3D", "=")
    }

    /// The `Subject:` header, unfolded.
    pub fn subject(&self) -> String {
        self.text().lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap_or_default().to_owned()
    }
}

/// A running server.
pub struct SmtpServer {
    pub port: u16,
    pub mails: mpsc::UnboundedReceiver<Mail>,
    /// Failed `AUTH` attempts.
    pub auth_failures: mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mail_tx, mails) = mpsc::unbounded_channel();
        let (fail_tx, auth_failures) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, mail_tx.clone(), fail_tx.clone()));
            }
        });
        SmtpServer { port, mails, auth_failures, task }
    }
}

/// `SMTP_URL` for the server on `port` with `password` (plain: `tls=none`).
pub fn url(port: u16, password: &str) -> String {
    let user = USER.replace('@', "%40");
    format!("smtp://{user}:{password}@127.0.0.1:{port}?tls=none")
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn plain_ok(b64: &str) -> bool {
    let Ok(raw) = B64.decode(b64.trim()) else { return false };
    let parts: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
    parts.len() == 3 && parts[1] == USER.as_bytes() && parts[2] == PASSWORD.as_bytes()
}

fn decoded(b64: &str) -> String {
    B64.decode(b64.trim()).map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default()
}

async fn session(stream: TcpStream, mails: mpsc::UnboundedSender<Mail>, failures: mpsc::UnboundedSender<()>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let say = async |write: &mut tokio::net::tcp::OwnedWriteHalf, text: &str| {
        write.write_all(format!("{text}\r\n").as_bytes()).await.is_ok()
    };
    if !say(&mut write, "220 localhost ESMTP test server").await {
        return;
    }
    let (mut authed, mut from, mut to) = (false, String::new(), Vec::new());
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-localhost\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME".into()
        } else if upper.starts_with("HELO") {
            "250 localhost".into()
        } else if upper.starts_with("AUTH PLAIN") {
            let initial = line[10..].trim().to_owned();
            let response = if initial.is_empty() {
                say(&mut write, "334 ").await;
                lines.next_line().await.ok().flatten().unwrap_or_default()
            } else {
                initial
            };
            authed = plain_ok(&response);
            auth_reply(authed, &failures)
        } else if upper.starts_with("AUTH LOGIN") {
            let initial = line[10..].trim().to_owned();
            let user = if initial.is_empty() {
                say(&mut write, "334 VXNlcm5hbWU6").await;
                lines.next_line().await.ok().flatten().unwrap_or_default()
            } else {
                initial
            };
            say(&mut write, "334 UGFzc3dvcmQ6").await;
            let password = lines.next_line().await.ok().flatten().unwrap_or_default();
            authed = decoded(&user) == USER && decoded(&password) == PASSWORD;
            auth_reply(authed, &failures)
        } else if upper.starts_with("MAIL FROM:") {
            if authed {
                from = line[10..].trim().to_owned();
                to.clear();
                "250 2.1.0 OK".into()
            } else {
                "530 5.7.0 Authentication required".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            if authed {
                to.push(line[8..].trim().to_owned());
                "250 2.1.5 OK".into()
            } else {
                "530 5.7.0 Authentication required".into()
            }
        } else if upper == "DATA" {
            if !authed || to.is_empty() {
                "503 5.5.1 MAIL and RCPT first".into()
            } else {
                say(&mut write, "354 End data with <CR><LF>.<CR><LF>").await;
                let mut data = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == "." {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    data.push_str("\r\n");
                }
                let _ = mails.send(Mail { from: from.clone(), to: std::mem::take(&mut to), data });
                "250 2.0.0 OK queued".into()
            }
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 OK".into()
        } else if upper == "QUIT" {
            say(&mut write, "221 2.0.0 Bye").await;
            return;
        } else {
            "502 5.5.2 Command not recognized".into()
        };
        if !say(&mut write, &reply).await {
            return;
        }
    }
}

fn auth_reply(ok: bool, failures: &mpsc::UnboundedSender<()>) -> String {
    if ok {
        "235 2.7.0 Authentication successful".into()
    } else {
        let _ = failures.send(());
        "535 5.7.8 Authentication credentials invalid".into()
    }
}

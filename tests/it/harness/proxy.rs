//! A TCP proxy the test controls, to cut a service (PostgreSQL) off and bring it back without
//! touching the service itself. Cut ([`Proxy::cut`]): open connections are closed and new ones
//! are accepted and closed at once, as a network partition that resets connections looks.
//! Frozen ([`Proxy::freeze`]): nothing is closed and nothing gets through, as a network that
//! silently drops packets looks (half-open connections).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    frozen: watch::Sender<bool>,
    generation: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let (frozen, _) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, upstream, cut.clone(), frozen.clone(), generation.clone()));
        Proxy { addr, cut, frozen, generation, task }
    }

    /// Closes every open connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Stops every byte, closing nothing, until [`Proxy::restore`]: what a client sends on an open
    /// connection is read and dropped, what the server sends is left unread, and new connections
    /// are accepted and never forwarded. Once a client closes its end of a frozen connection, the
    /// proxy closes the server's end: on a real network PostgreSQL's TCP keepalives find the dead
    /// peer and end the session; through a proxy on loopback (which answers them) they cannot.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Lets new connections through again (cut or frozen ones stay dead).
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.frozen.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.generation.send_modify(|g| *g += 1);
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    cut: Arc<AtomicBool>,
    frozen: watch::Sender<bool>,
    generation: watch::Sender<u64>,
) {
    while let Ok((client, _)) = listener.accept().await {
        if cut.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let (cancelled, mut frozen) = (generation.subscribe(), frozen.subscribe());
        tokio::spawn(async move {
            if *frozen.borrow_and_update() {
                return swallow(client, cancelled).await;
            }
            let Ok(server) = TcpStream::connect(upstream).await else { return };
            forward(client, server, cancelled, frozen).await;
        });
    }
}

/// Forwards both ways until either end closes, the proxy cuts or drops, or it freezes.
async fn forward(
    mut client: TcpStream,
    mut server: TcpStream,
    mut cancelled: watch::Receiver<u64>,
    mut frozen: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
        _ = cancelled.changed() => return,
        _ = frozen.wait_for(|f| *f) => {}
    }
    // Frozen: the server's end stays open and unread until the client closes its own.
    swallow(client, cancelled).await;
    drop(server);
}

/// Reads and drops what the client sends until it closes its end (or the proxy cuts or drops).
async fn swallow(mut client: TcpStream, mut cancelled: watch::Receiver<u64>) {
    let mut sink = tokio::io::sink();
    tokio::select! {
        _ = tokio::io::copy(&mut client, &mut sink) => {}
        _ = cancelled.changed() => {}
    }
}

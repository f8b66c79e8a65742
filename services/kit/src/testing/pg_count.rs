//! A counting proxy in front of PostgreSQL, for tests that guard how many round trips the loop costs. Each
//! connection is passed through byte for byte; on the way in, the frontend messages that make the server answer
//! (`Sync`, which ends an extended-protocol exchange, and `Query`, a simple-protocol one) are counted, so the
//! count is the round trips the services made, whichever statements they were. The proxy declines TLS (it
//! answers `N` to an SSLRequest or a GSSENCRequest, as a server without TLS does), so the client speaks in clear
//! and the messages can be read; test databases are on the loopback.
//! Protocol: <https://www.postgresql.org/docs/current/protocol-message-formats.html>.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

/// The proxy: connect to [`PgCounter::url`] instead of the server.
#[derive(Debug)]
pub struct PgCounter {
    pub addr: SocketAddr,
    /// The server's host:port, from the first URL given to [`PgCounter::url`].
    upstream: Arc<std::sync::OnceLock<String>>,
    trips: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PgCounter {
    /// Listens on a free loopback port; each connection goes on to the server [`PgCounter::url`] was given.
    pub async fn start() -> Self {
        let upstream = Arc::new(std::sync::OnceLock::<String>::new());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the counting proxy");
        let addr = listener.local_addr().expect("proxy address");
        let trips = Arc::new(AtomicU64::new(0));
        let counted = trips.clone();
        let server = upstream.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, trips) = (server.get().cloned().unwrap_or_default(), counted.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let _ = pass(client, server, trips).await;
                    }
                });
            }
        });
        Self { addr, upstream, trips, task }
    }

    /// `url` (postgres://user@host:port/db) with the proxy in place of the server's host and port; the
    /// first URL given names the server the proxy passes connections to.
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
        let (auth, rest) = rest.rsplit_once('@').map_or(("", rest), |(a, r)| (a, r));
        let (server, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        let _ = self.upstream.set(server.to_owned());
        let at = if auth.is_empty() { String::new() } else { format!("{auth}@") };
        format!("{scheme}://{at}{}{path}", self.addr)
    }

    /// Round trips so far, on every connection through the proxy.
    pub fn round_trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }
}

impl Drop for PgCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection: the startup exchange (TLS declined), then frames client → server counted, and the
/// server's bytes copied back as they come.
async fn pass(mut client: TcpStream, server: TcpStream, trips: Arc<AtomicU64>) -> std::io::Result<()> {
    // Frames are written one at a time: with Nagle's algorithm each small write after the first would wait for
    // the peer's delayed ACK (some 40 ms a round trip), which a direct connection never does.
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let startup = loop {
        let len = client.read_u32().await?;
        let mut body = vec![0; (len as usize).saturating_sub(4)];
        client.read_exact(&mut body).await?;
        let code = body.get(..4).map_or(0, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        if code == SSL_REQUEST || code == GSSENC_REQUEST {
            client.write_all(b"N").await?;
            continue;
        }
        let mut frame = len.to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        break frame;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    server_write.write_all(&startup).await?;
    let back = tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
    let result = forward(&mut client_read, &mut server_write, &trips).await;
    back.abort();
    result
}

/// Client → server, a frame at a time (type byte, length, body), counting the ones the server answers.
async fn forward(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    trips: &AtomicU64,
) -> std::io::Result<()> {
    loop {
        let kind = from.read_u8().await?;
        let len = from.read_u32().await?;
        if len < 4 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a frame shorter than its length"));
        }
        let mut frame = Vec::with_capacity(len as usize + 1);
        frame.push(kind);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.resize(len as usize + 1, 0);
        from.read_exact(&mut frame[5..]).await?;
        if kind == b'S' || kind == b'Q' {
            trips.fetch_add(1, Ordering::Relaxed);
        }
        to.write_all(&frame).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_url_names_the_proxy() {
        let counter = PgCounter::start().await;
        let url = counter.url("postgres://postgres@127.0.0.1:5432/zz_test_1");
        assert_eq!(url, format!("postgres://postgres@{}/zz_test_1", counter.addr));
        assert_eq!(counter.url("postgres://h:5/db"), format!("postgres://{}/db", counter.addr));
    }
}

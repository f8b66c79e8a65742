//! A counting proxy in front of PostgreSQL, for tests that guard how many round trips the loop costs. Each
//! connection is passed through byte for byte; on the way in, the frontend messages that make the server answer
//! (`Sync`, which ends an extended-protocol exchange, and `Query`, a simple-protocol one) are counted, so the
//! count is the round trips the services made, whichever statements they were. The proxy declines TLS (it
//! answers `N` to an SSLRequest or a GSSENCRequest, as a server without TLS does), so the client speaks in clear
//! and the messages can be read; test databases are on the loopback.
//!
//! Each round trip is also told against the statement that made it (the text a `Parse` or `Query` carried, the
//! statement a `Bind` named) and the schema its connection searches first (the service), so a test can print
//! where the round trips go.
//! Protocol: <https://www.postgresql.org/docs/current/protocol-message-formats.html>.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
    by_statement: Statements,
    task: tokio::task::JoinHandle<()>,
}

/// Round trips by "schema: statement".
type Statements = Arc<Mutex<HashMap<String, u64>>>;

impl PgCounter {
    /// Listens on a free loopback port; each connection goes on to the server [`PgCounter::url`] was given.
    pub async fn start() -> Self {
        let upstream = Arc::new(std::sync::OnceLock::<String>::new());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the counting proxy");
        let addr = listener.local_addr().expect("proxy address");
        let trips = Arc::new(AtomicU64::new(0));
        let by_statement = Statements::default();
        let (counted, told) = (trips.clone(), by_statement.clone());
        let server = upstream.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = server.get().cloned().unwrap_or_default();
                let count = Count { trips: counted.clone(), by_statement: told.clone(), ..Count::default() };
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let _ = pass(client, server, count).await;
                    }
                });
            }
        });
        Self { addr, upstream, trips, by_statement, task }
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

    /// Round trips so far by "schema: statement" (the statement's text shortened to its first line's start).
    pub fn by_statement(&self) -> HashMap<String, u64> {
        self.by_statement.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// One connection's counting: the shared totals, and what tells its round trips apart.
#[derive(Default)]
struct Count {
    trips: Arc<AtomicU64>,
    by_statement: Statements,
    schema: String,
    /// Prepared statements by name ("" the unnamed one), as their `Parse` gave them.
    prepared: HashMap<String, String>,
    /// The statement of the exchange in progress.
    current: String,
}

impl Count {
    /// Reads one frontend message (type byte and body); counts it when it makes the server answer.
    fn frame(&mut self, kind: u8, body: &[u8]) {
        let strings = |n: usize| body.split(|b| *b == 0).take(n).map(String::from_utf8_lossy).collect::<Vec<_>>();
        match kind {
            b'P' => {
                let [name, text] = <[_; 2]>::try_from(strings(2)).unwrap_or_default();
                let text = short(&text);
                self.prepared.insert(name.into_owned(), text.clone());
                self.current = text;
            }
            b'B' => {
                let name = strings(2).get(1).map(|n| n.to_string()).unwrap_or_default();
                if let Some(text) = self.prepared.get(&name) {
                    self.current.clone_from(text);
                }
            }
            b'Q' => self.current = short(&strings(1).concat()),
            _ => {}
        }
        if kind == b'S' || kind == b'Q' {
            self.trips.fetch_add(1, Ordering::Relaxed);
            let what = if self.current.is_empty() { "(sync)".to_owned() } else { std::mem::take(&mut self.current) };
            if let Ok(mut m) = self.by_statement.lock() {
                *m.entry(format!("{}: {what}", self.schema)).or_default() += 1;
            }
        }
    }
}

/// A statement's text on one line, cut to its first 90 characters.
fn short(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(90).collect()
}

impl Drop for PgCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection: the startup exchange (TLS declined), then frames client → server counted, and the
/// server's bytes copied back as they come.
async fn pass(mut client: TcpStream, server: TcpStream, mut count: Count) -> std::io::Result<()> {
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
        // The parameters are NUL-separated; the service's schema is the first on its search path.
        let params = String::from_utf8_lossy(&body);
        count.schema = params
            .split_once("search_path=")
            .map(|(_, rest)| rest.split([' ', ',', '\0']).next().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let mut frame = len.to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        break frame;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    server_write.write_all(&startup).await?;
    let back = tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
    let result = forward(&mut client_read, &mut server_write, &mut count).await;
    back.abort();
    result
}

/// Client → server, a frame at a time (type byte, length, body), counting the ones the server answers.
async fn forward(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    count: &mut Count,
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
        count.frame(kind, &frame[5..]);
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

    #[test]
    fn round_trips_are_told_by_statement_and_schema() {
        let mut count = Count { schema: "intake".into(), ..Count::default() };
        let parse = b"s1\0SELECT 1\n  FROM t\0\0\0";
        count.frame(b'P', parse);
        count.frame(b'D', b"Ss1\0");
        count.frame(b'S', b"");
        for _ in 0..2 {
            count.frame(b'B', b"\0s1\0\0\0");
            count.frame(b'E', b"\0\0\0\0\0");
            count.frame(b'S', b"");
        }
        count.frame(b'S', b"");
        count.frame(b'Q', b"BEGIN\0");
        let seen = count.by_statement.lock().unwrap().clone();
        let expected = [("intake: SELECT 1 FROM t", 3), ("intake: (sync)", 1), ("intake: BEGIN", 1)];
        assert_eq!(seen, expected.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        assert_eq!(count.trips.load(Ordering::Relaxed), 5);
    }
}

//! Fetching a JWKS document over plain HTTP (an in-cluster identity provider or proxy). A TLS provider's keys
//! go in AUTH_JWKS_FILE, mounted from a ConfigMap: the suite carries no TLS stack for one GET.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::token::JwkSet;

/// The largest JWKS document read; a provider publishes a handful of keys.
const MAX_BYTES: u64 = 256 * 1024;

pub async fn fetch(url: &str) -> anyhow::Result<JwkSet> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        anyhow::anyhow!("AUTH_JWKS_URL must be http:// (put a TLS provider's JWKS in AUTH_JWKS_FILE)")
    })?;
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let host = authority.split(':').next().unwrap_or(authority);
    let address = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.take(MAX_BYTES).read_to_end(&mut raw).await?;
        anyhow::Ok(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| anyhow::anyhow!("JWKS at {url}: no answer within 10 s"))??;
    let text = String::from_utf8(raw).map_err(|_| anyhow::anyhow!("JWKS at {url}: not UTF-8"))?;
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| anyhow::anyhow!("JWKS at {url}: not an HTTP response"))?;
    let status = head.split(' ').nth(1).unwrap_or_default();
    if status != "200" {
        anyhow::bail!("JWKS at {url}: HTTP {status}");
    }
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        anyhow::bail!("JWKS at {url}: chunked answers are not read (HTTP/1.0 was asked)");
    }
    serde_json::from_str(body).map_err(|e| anyhow::anyhow!("JWKS at {url} does not parse: {e}"))
}

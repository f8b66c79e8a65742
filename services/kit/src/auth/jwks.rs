//! Fetching an identity provider's JWKS document, over HTTPS only: keys fetched in clear could be replaced on the
//! way, and a key is what every token is believed on. The server is checked against AUTH_JWKS_CA (a PEM file of
//! the CAs to trust, e.g. a province's own) or, without it, the platform's roots. rustls with ring, the TLS stack
//! the NATS client already brings. Which of the fetched keys are then trusted is [`super::Verifier::refresh`]'s
//! decision.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::token::Jwk;

/// The largest JWKS document read; a provider publishes a handful of keys.
const MAX_BYTES: u64 = 256 * 1024;

/// The keys of the JWKS document at `url`. Each key is read on its own: one this library cannot read (an
/// algorithm it does not know) is left out with a warning instead of refusing the whole set.
pub async fn fetch(url: &str, ca: Option<&Path>) -> anyhow::Result<Vec<Jwk>> {
    let rest = url.strip_prefix("https://").ok_or_else(|| {
        anyhow::anyhow!("AUTH_JWKS_URL must be https:// (keys fetched in clear could be replaced on the way)")
    })?;
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let (host, address) = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (host, authority.to_owned()),
        _ => (authority, format!("{authority}:443")),
    };
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|_| anyhow::anyhow!("AUTH_JWKS_URL: {host:?} is not a host name or address"))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca)?));
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(&address).await?;
        let mut tls = connector.connect(name, tcp).await?;
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        match (&mut tls).take(MAX_BYTES).read_to_end(&mut raw).await {
            Ok(_) => {}
            // A server that closes without TLS's close_notify: the HTTP/1.0 answer ends at the close anyway, and a
            // cut body fails to parse below.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(e.into()),
        }
        anyhow::Ok(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| anyhow::anyhow!("JWKS at {url}: no answer within 10 s"))?
        .map_err(|e| anyhow::anyhow!("JWKS at {url}: {e}"))?;
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
    let document: serde_json::Value =
        serde_json::from_str(body).map_err(|e| anyhow::anyhow!("JWKS at {url} does not parse: {e}"))?;
    let keys = document["keys"].as_array().ok_or_else(|| anyhow::anyhow!("JWKS at {url} has no keys array"))?;
    Ok(keys
        .iter()
        .filter_map(|key| match serde_json::from_value::<Jwk>(key.clone()) {
            Ok(jwk) => Some(jwk),
            Err(e) => {
                tracing::warn!(%url, kid = %key["kid"], error = %e, "a key of the fetched JWKS cannot be read; left out");
                None
            }
        })
        .collect())
}

/// TLS 1.2/1.3 with ring, trusting `ca`'s certificates, else the platform's roots.
fn client_config(ca: Option<&Path>) -> anyhow::Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| anyhow::anyhow!("AUTH_JWKS_CA {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| anyhow::anyhow!("AUTH_JWKS_CA {}: {e}", path.display()))?;
                roots.add(cert).map_err(|e| anyhow::anyhow!("AUTH_JWKS_CA {}: {e}", path.display()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A platform root rustls cannot use is one root fewer, not a failure.
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        anyhow::bail!("no CA to check the JWKS server against: set AUTH_JWKS_CA to a PEM file of CA certificates");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

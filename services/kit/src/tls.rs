//! TLS on the gRPC connections between the services and into the gateway, so bearer tokens and personal data
//! never cross the network in clear: a server with GRPC_TLS_CERT and GRPC_TLS_KEY (PEM files) serves only
//! TLS; a client dialing an `https://` peer URL checks the peer's certificate against GRPC_TLS_CA (a PEM file of
//! the deployment's CA). rustls with ring, as the NATS client and the JWKS fetch already use.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// A server's certificate chain and key, read from their files at start-up.
#[derive(Clone)]
pub struct ServerTls {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls(..)")
    }
}

impl ServerTls {
    pub fn from_files(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let read = |p: &Path, var: &str| {
            std::fs::read(p).map_err(|e| anyhow::anyhow!("{var}: cannot read {}: {e}", p.display()))
        };
        Ok(Self { cert: read(cert, "GRPC_TLS_CERT")?, key: read(key, "GRPC_TLS_KEY")? })
    }

    /// From GRPC_TLS_CERT and GRPC_TLS_KEY, both or neither; None: plaintext (the demo, tests, a mesh that
    /// encrypts for the pods).
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let var = |n: &str| Some(crate::env::string_or(n, "")).filter(|v| !v.is_empty()).map(PathBuf::from);
        match (var("GRPC_TLS_CERT"), var("GRPC_TLS_KEY")) {
            (Some(cert), Some(key)) => Ok(Some(Self::from_files(&cert, &key)?)),
            (None, None) => Ok(None),
            _ => anyhow::bail!("GRPC_TLS_CERT and GRPC_TLS_KEY go together: set both or neither"),
        }
    }

    pub fn config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(Identity::from_pem(&self.cert, &self.key))
    }
}

/// The CA every `https://` peer is checked against, process-wide: channels are built in many places from a
/// URL alone, and one process trusts one deployment's CA. Set from GRPC_TLS_CA by
/// `kit::auth::AuthConfig::from_env`.
static CLIENT_CA: std::sync::RwLock<Option<PathBuf>> = std::sync::RwLock::new(None);

pub fn trust_ca(ca: Option<PathBuf>) {
    *CLIENT_CA.write().unwrap_or_else(std::sync::PoisonError::into_inner) = ca;
}

/// How a client checks an `https://` peer: against the trusted CA, read when a channel is built (at start-up).
pub fn client_config() -> anyhow::Result<ClientTlsConfig> {
    let ca = CLIENT_CA.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let Some(ca) = ca else {
        anyhow::bail!("an https:// peer needs GRPC_TLS_CA: the PEM file of the CA that signed the peers' certificates");
    };
    let pem = std::fs::read(&ca).map_err(|e| anyhow::anyhow!("GRPC_TLS_CA: cannot read {}: {e}", ca.display()))?;
    Ok(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
}

/// The TCP peer of a call, over TLS or not.
pub fn remote_addr(extensions: &http::Extensions) -> Option<std::net::SocketAddr> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| extensions.get::<TlsConnectInfo<TcpConnectInfo>>().and_then(|i| i.get_ref().remote_addr()))
}

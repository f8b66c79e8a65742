//! The gRPC face of the gateway: every client-facing operation, forwarded to the service that owns it. The
//! gateway checks the caller's token and role before forwarding (so a bad token goes no further), and forwards
//! the token itself: each service verifies it again and decides on the object's place in the tree, which only
//! it knows.

use proto::gateway::v1::desk_server::Desk;
use std::net::IpAddr;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::Backends;

/// The Desk's state: a client of every service with a routed RPC (the list is generated from the protos, see
/// [`proto::desk_backends`]), and what admits a call. Cloning a tonic client is cheap (it shares the channel).
macro_rules! desk_service {
    ($($field:ident $client:ty, $backend:ident;)*) => {
        #[derive(Clone)]
        pub struct DeskService {
            $($field: $client,)*
            verifier: Arc<kit::auth::Verifier>,
            edge: Arc<crate::limit::Edge>,
            /// Proxies (an ingress) whose X-Forwarded-For is believed (GATEWAY_TRUSTED_PROXIES).
            trusted_proxies: kit::proxies::Proxies,
            /// Where the calls refused here are recorded (none in a test of the limits alone).
            trail: Option<Arc<crate::trail::Trail>>,
        }

        impl DeskService {
            pub fn connect(
                b: &Backends,
                verifier: Arc<kit::auth::Verifier>,
                edge: Arc<crate::limit::Edge>,
                trusted_proxies: &kit::proxies::Proxies,
                trail: Option<Arc<crate::trail::Trail>>,
            ) -> anyhow::Result<Self> {
                Ok(Self {
                    $($field: <$client>::new(kit::grpc::channel(&b.$backend)?),)*
                    verifier,
                    edge,
                    trusted_proxies: trusted_proxies.clone(),
                    trail,
                })
            }
        }
    };
}

proto::desk_backends!(desk_service, kit::grpc::Channel);

/// The metadata key the JSON face puts its TCP peer in, for the Desk; never read on the gRPC face.
pub const PEER: &str = "x-zongzhi-peer";

impl DeskService {
    /// Admits a call to `method` (a Desk method name) as the backend would, takes its place in flight (the
    /// message is decoded by now), and builds the request that carries the caller's token (and address, for
    /// the backend's audit record) on. The place is held until the returned [`Admitted`] drops. A refusal
    /// here reaches no backend, so it is recorded in the gateway's own trail ([`crate::trail`]).
    async fn admit<T>(
        &self,
        method: &str,
        request: Request<T>,
    ) -> Result<(Request<T>, crate::limit::Admitted), Status> {
        let (metadata, extensions, message) = request.into_parts();
        let headers = metadata.into_headers();
        let path = format!("/zongzhi.gateway.v1.Desk/{method}");
        // The client: the TCP peer (the gRPC face's socket; the JSON face's, carried in PEER), or behind a
        // trusted proxy the address X-Forwarded-For gives. It is what the limits count and what the audit
        // records name; a header a client chose counts for nothing.
        use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
        let socket = extensions
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .or_else(|| extensions.get::<TlsConnectInfo<TcpConnectInfo>>().and_then(|i| i.get_ref().remote_addr()));
        let peer = match socket {
            Some(addr) => Some(addr.ip()),
            None => headers.get(PEER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()),
        };
        let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        let client = peer.map(|p| self.trusted_proxies.client(p, forwarded));
        // A gRPC call was admitted by the server's auth layer already (its principal is attached, its refusals
        // recorded there); a call from the JSON face arrives in process and is admitted here.
        let principal = match extensions.get::<Arc<kit::auth::Principal>>() {
            Some(principal) => Some(principal.clone()),
            None => match kit::auth::layer::decide(&self.verifier, &path, &headers) {
                Ok(principal) => principal,
                Err(r) => return Err(self.refused(&path, r.principal.as_deref(), peer, client, r.status).await),
            },
        };
        let public = kit::auth::policy::access(&path) == Some(kit::auth::policy::Access::Public);
        let admitted = match self.edge.admit(client, public) {
            Ok(admitted) => admitted,
            Err(status) => return Err(self.refused(&path, principal.as_deref(), peer, client, status).await),
        };
        let mut out = Request::new(message);
        if let Some(token) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            out.metadata_mut()
                .insert("authorization", token.parse().map_err(|_| Status::unauthenticated("malformed token"))?);
        }
        if let Some(addr) = client.and_then(|a| a.to_string().parse().ok()) {
            out.metadata_mut().insert("x-forwarded-for", addr);
        }
        Ok((out, admitted))
    }

    /// Records a call refused here (with who made it, when the token was good) and gives back its status.
    async fn refused(
        &self,
        path: &str,
        principal: Option<&kit::auth::Principal>,
        peer: Option<IpAddr>,
        client: Option<IpAddr>,
        status: Status,
    ) -> Status {
        if let Some(trail) = &self.trail {
            trail.refused(kit::auth::layer::entry(path, principal, peer, client), client, &status).await;
        }
        status
    }
}

/// Each line forwards one method to one backend; the backend validates, so its statuses (and their field
/// violations) reach the client unchanged. The lines are the protos' routed RPCs ([`proto::desk_methods`]).
macro_rules! forward {
    ($($backend:ident $method:ident $name:literal ($req:ty) -> ($resp:ty);)*) => {
        #[tonic::async_trait]
        impl Desk for DeskService {
            $(
                async fn $method(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let (request, _in_flight) = self.admit($name, request).await?;
                    let mut client = self.$backend.clone();
                    Ok(Response::new(client.$method(request).await?.into_inner()))
                }
            )*
        }
    };
}

proto::desk_methods!(forward);

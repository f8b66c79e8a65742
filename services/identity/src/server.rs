//! The Auth gRPC service: each method hands its request to one function of `grpc.rs` and wraps the answer.

use proto::registry::v1 as pb;
use tonic::{Request, Response, Status};

use crate::grpc;
use crate::service::Issuer;

/// The Auth service: sign-in and account administration.
pub struct AuthService(pub Issuer);

/// Implements Auth by delegating each listed method to `grpc::method(&self.0, request)`; the trailing items
/// are the methods of another shape. (The whole impl is generated: `async_trait` must see every `async fn`.)
macro_rules! delegate {
    ([$($method:ident: $req:ident -> $resp:ident;)*] $($extra:tt)*) => {
        #[tonic::async_trait]
        impl pb::auth_server::Auth for AuthService {
            $(
                async fn $method(&self, request: Request<pb::$req>) -> Result<Response<pb::$resp>, Status> {
                    Ok(Response::new(grpc::$method(&self.0, request).await?))
                }
            )*
            $($extra)*
        }
    };
}

delegate! {
    [
        sign_in: SignInRequest -> TokenResponse;
        refresh: RefreshRequest -> TokenResponse;
        sign_out: SignOutRequest -> SignOutResponse;
        client_token: ClientTokenRequest -> TokenResponse;
        change_password: ChangePasswordRequest -> ChangePasswordResponse;
        create_account: CreateAccountRequest -> CreateAccountResponse;
        activate_account: ActivateAccountRequest -> ActivateAccountResponse;
        approve_account: ApproveAccountRequest -> ApproveAccountResponse;
        disable_account: DisableAccountRequest -> DisableAccountResponse;
        create_client: CreateClientRequest -> CreateClientResponse;
        activate_client: ActivateClientRequest -> ActivateClientResponse;
        revoke_client: RevokeClientRequest -> RevokeClientResponse;
        rotate_client_secret: RotateClientSecretRequest -> RotateClientSecretResponse;
        list_revocations: ListRevocationsRequest -> ListRevocationsResponse;
        set_grant: SetGrantRequest -> SetGrantResponse;
        revoke_grant: RevokeGrantRequest -> RevokeGrantResponse;
        list_grants: ListGrantsRequest -> ListGrantsResponse;
    ]

    async fn get_jwks(&self, _: Request<pb::GetJwksRequest>) -> Result<Response<pb::GetJwksResponse>, Status> {
        Ok(Response::new(grpc::get_jwks(&self.0)))
    }

    async fn who_am_i(&self, request: Request<pb::WhoAmIRequest>) -> Result<Response<pb::WhoAmIResponse>, Status> {
        Ok(Response::new(grpc::who_am_i(&request)?))
    }
}

//! The gRPC face of sign-in and of account and grant administration.

use kit::auth::Role;
use kit::{FieldError, field};
use proto::registry::v1 as pb;
use tonic::{Request, Response, Status};

use crate::auth::Issuer;
use crate::auth::admin::{GrantRow, NewGrant};

pub struct AuthService(pub Issuer);

fn invalid(e: &FieldError) -> Status {
    kit::grpc::invalid(e)
}

fn tokens(t: crate::auth::Tokens) -> pb::TokenResponse {
    pb::TokenResponse {
        access_token: t.access_token,
        token_type: "Bearer".into(),
        expires_in: u32::try_from(t.expires_in).unwrap_or(u32::MAX),
        refresh_token: t.refresh_token,
        grants: t
            .grants
            .into_iter()
            .map(|g| pb::GrantInfo { role: g.role, scope: g.scope, unit: g.unit, ..Default::default() })
            .collect(),
    }
}

fn grant_info(g: GrantRow) -> pb::GrantInfo {
    pb::GrantInfo {
        id: g.id.to_string(),
        role: g.role,
        scope: g.scope,
        unit: g.unit,
        valid_from: kit::time::local(g.valid_from),
        valid_to: g.valid_to.map(kit::time::local).unwrap_or_default(),
    }
}

/// A secret field: bounded, never trimmed (spaces may be part of a password), never echoed.
fn secret<'a>(name: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.is_empty() {
        return Err(invalid(&FieldError::new(name, "is required")));
    }
    if value.len() > 256 || value.contains('\0') {
        return Err(invalid(&FieldError::new(name, "must be at most 256 bytes without NUL")));
    }
    Ok(value)
}

fn username(value: &str) -> Result<&str, Status> {
    let v = field::text("username", value, 64).map_err(|e| invalid(&e))?;
    if !v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b)) {
        return Err(invalid(&FieldError::new("username", "letters, digits and . _ - @ only")));
    }
    Ok(v)
}

/// A scope node: `*`, a 12-digit division code, or a grid code (15 or 18 digits).
fn scope(name: &str, value: &str) -> Result<String, Status> {
    let v = field::required(name, value).map_err(|e| invalid(&e))?;
    let ok = v == "*" || ([12, 15, 18].contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()));
    if !ok {
        return Err(invalid(&FieldError::new(name, "must be *, a 12-digit division code or a grid code")));
    }
    Ok(v.to_owned())
}

#[tonic::async_trait]
impl pb::auth_server::Auth for AuthService {
    async fn sign_in(&self, request: Request<pb::SignInRequest>) -> Result<Response<pb::TokenResponse>, Status> {
        let r = request.into_inner();
        let user = username(&r.username)?;
        let password = secret("password", &r.password)?;
        let otp = field::bounded("otp", &r.otp, 8).map_err(|e| invalid(&e))?;
        Ok(Response::new(tokens(self.0.sign_in(user, password, otp).await?)))
    }

    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> Result<Response<pb::TokenResponse>, Status> {
        let token = secret("refresh_token", &request.get_ref().refresh_token)?;
        Ok(Response::new(tokens(self.0.refresh(token).await?)))
    }

    async fn sign_out(&self, request: Request<pb::SignOutRequest>) -> Result<Response<pb::SignOutResponse>, Status> {
        let token = secret("refresh_token", &request.get_ref().refresh_token)?;
        self.0.sign_out(token).await?;
        Ok(Response::new(pb::SignOutResponse {}))
    }

    async fn client_token(
        &self,
        request: Request<pb::ClientTokenRequest>,
    ) -> Result<Response<pb::TokenResponse>, Status> {
        let r = request.into_inner();
        let id = username(&r.client_id).map_err(|_| invalid(&FieldError::new("client_id", "is not a client id")))?;
        let secret = secret("client_secret", &r.client_secret)?;
        Ok(Response::new(tokens(self.0.client_token(id, secret).await?)))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let r = request.into_inner();
        let user = username(&r.username)?;
        let old = secret("old_password", &r.old_password)?;
        let new = secret("new_password", &r.new_password)?;
        let otp = field::bounded("otp", &r.otp, 8).map_err(|e| invalid(&e))?;
        self.0.change_password(user, old, new, otp).await?;
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }

    async fn get_jwks(&self, _: Request<pb::GetJwksRequest>) -> Result<Response<pb::GetJwksResponse>, Status> {
        Ok(Response::new(pb::GetJwksResponse { jwks_json: self.0.jwks_json.clone() }))
    }

    async fn who_am_i(&self, request: Request<pb::WhoAmIRequest>) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        Ok(Response::new(pb::WhoAmIResponse {
            subject: p.subject.clone(),
            person_id: p.person_id.clone(),
            name: p.name.clone(),
            grants: p
                .grants
                .iter()
                .map(|g| pb::GrantInfo {
                    role: g.role.as_str().into(),
                    scope: g.scope.clone(),
                    unit: g.unit.clone(),
                    ..Default::default()
                })
                .collect(),
        }))
    }

    async fn create_account(
        &self,
        request: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::CreateAccountResponse>, Status> {
        let r = request.into_inner();
        let user = username(&r.username)?;
        let person = field::uuid("person_id", &r.person_id).map_err(|e| invalid(&e))?;
        let name = field::text("display_name", &r.display_name, 64).map_err(|e| invalid(&e))?;
        let password = secret("initial_password", &r.initial_password)?;
        let (id, totp) = self.0.create_account(user, person, name, password).await?;
        Ok(Response::new(pb::CreateAccountResponse { account_id: id.to_string(), totp_secret: totp }))
    }

    async fn disable_account(
        &self,
        request: Request<pb::DisableAccountRequest>,
    ) -> Result<Response<pb::DisableAccountResponse>, Status> {
        self.0.disable_account(username(&request.get_ref().username)?).await?;
        Ok(Response::new(pb::DisableAccountResponse {}))
    }

    async fn create_client(
        &self,
        request: Request<pb::CreateClientRequest>,
    ) -> Result<Response<pb::CreateClientResponse>, Status> {
        let by = kit::auth::principal(&request)?;
        let r = request.into_inner();
        let id = username(&r.client_id).map_err(|_| invalid(&FieldError::new("client_id", "is not a client id")))?;
        let name = field::text("name", &r.name, 100).map_err(|e| invalid(&e))?;
        let scope = scope("scope", &r.scope)?;
        let client_secret = self.0.create_client(&by, id, name, &scope).await?;
        Ok(Response::new(pb::CreateClientResponse { client_secret }))
    }

    async fn set_grant(&self, request: Request<pb::SetGrantRequest>) -> Result<Response<pb::SetGrantResponse>, Status> {
        let by = kit::auth::principal(&request)?;
        let r = request.into_inner();
        let role = Role::parse("role", &r.role).map_err(|e| invalid(&e))?;
        if role == Role::Service {
            return Err(invalid(&FieldError::new("role", "the service role is never granted to an account")));
        }
        let unit = field::bounded("unit", &r.unit, 64).map_err(|e| invalid(&e))?.to_owned();
        if matches!(role, Role::Handler | Role::UnitLead) && unit.is_empty() {
            return Err(invalid(&FieldError::new("unit", "is required for a handler or unit lead")));
        }
        let valid_to = match r.valid_to.trim() {
            "" => None,
            t => Some(
                chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|_| invalid(&FieldError::new("valid_to", "must be an RFC 3339 time")))?
                    .to_utc(),
            ),
        };
        let grant = NewGrant {
            username: username(&r.username)?.to_owned(),
            role,
            scope: scope("scope", &r.scope)?,
            unit,
            valid_to,
        };
        let row = self.0.set_grant(&by, &grant).await?;
        Ok(Response::new(pb::SetGrantResponse { grant: Some(grant_info(row)) }))
    }

    async fn revoke_grant(
        &self,
        request: Request<pb::RevokeGrantRequest>,
    ) -> Result<Response<pb::RevokeGrantResponse>, Status> {
        let by = kit::auth::principal(&request)?;
        let id = field::uuid("grant_id", &request.get_ref().grant_id).map_err(|e| invalid(&e))?;
        self.0.revoke_grant(&by, id).await?;
        Ok(Response::new(pb::RevokeGrantResponse {}))
    }

    async fn list_grants(
        &self,
        request: Request<pb::ListGrantsRequest>,
    ) -> Result<Response<pb::ListGrantsResponse>, Status> {
        let rows = self.0.list_grants(username(&request.get_ref().username)?).await?;
        Ok(Response::new(pb::ListGrantsResponse { grants: rows.into_iter().map(grant_info).collect() }))
    }
}

//! The identity provider's RPCs (the Auth service: sign-in, tokens, and account and grant administration): request →
//! parsed values → one call → response.

use kit::error::{Result, principal};
use kit::field;
use proto::registry::v1 as pb;
use tonic::Request;

use crate::admin::GrantRow;
use crate::domain::{NewGrant, client_id, otp, scope, secret, username};
use crate::service::{Issuer, Tokens};

impl From<Tokens> for pb::TokenResponse {
    fn from(t: Tokens) -> Self {
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
}

impl From<GrantRow> for pb::GrantInfo {
    fn from(g: GrantRow) -> Self {
        pb::GrantInfo {
            id: g.id.to_string(),
            role: g.role.as_str().to_owned(),
            scope: g.scope,
            unit: g.unit,
            valid_from: kit::time::local(g.valid_from),
            valid_to: g.valid_to.map(kit::time::local).unwrap_or_default(),
        }
    }
}

pub async fn sign_in(issuer: &Issuer, request: Request<pb::SignInRequest>) -> Result<pb::TokenResponse> {
    let r = request.into_inner();
    let user = username(&r.username)?;
    let password = secret("password", &r.password)?;
    let otp = otp(&r.otp)?;
    Ok(issuer.sign_in(user, password, otp).await?.into())
}

pub async fn refresh(issuer: &Issuer, request: Request<pb::RefreshRequest>) -> Result<pb::TokenResponse> {
    let token = secret("refresh_token", &request.get_ref().refresh_token)?;
    Ok(issuer.refresh(token).await?.into())
}

pub async fn sign_out(issuer: &Issuer, request: Request<pb::SignOutRequest>) -> Result<pb::SignOutResponse> {
    let token = secret("refresh_token", &request.get_ref().refresh_token)?;
    issuer.sign_out(token).await?;
    Ok(pb::SignOutResponse {})
}

pub async fn client_token(issuer: &Issuer, request: Request<pb::ClientTokenRequest>) -> Result<pb::TokenResponse> {
    let r = request.into_inner();
    let id = client_id(&r.client_id)?;
    let secret = secret("client_secret", &r.client_secret)?;
    Ok(issuer.client_token(id, secret).await?.into())
}

pub async fn change_password(
    issuer: &Issuer,
    request: Request<pb::ChangePasswordRequest>,
) -> Result<pb::ChangePasswordResponse> {
    let r = request.into_inner();
    let user = username(&r.username)?;
    let old = secret("old_password", &r.old_password)?;
    let new = secret("new_password", &r.new_password)?;
    let otp = otp(&r.otp)?;
    issuer.change_password(user, old, new, otp).await?;
    Ok(pb::ChangePasswordResponse {})
}

pub fn get_jwks(issuer: &Issuer) -> pb::GetJwksResponse {
    pb::GetJwksResponse { jwks_json: issuer.jwks_json.clone() }
}

pub fn who_am_i(request: &Request<pb::WhoAmIRequest>) -> Result<pb::WhoAmIResponse> {
    let p = principal(request)?;
    Ok(pb::WhoAmIResponse {
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
    })
}

pub async fn create_account(
    issuer: &Issuer,
    request: Request<pb::CreateAccountRequest>,
) -> Result<pb::CreateAccountResponse> {
    let r = request.into_inner();
    let user = username(&r.username)?;
    let person = field::uuid("person_id", &r.person_id)?;
    let name = field::text("display_name", &r.display_name, 64)?;
    if !r.initial_password.is_empty() {
        return Err(kit::FieldError::new(
            "initial_password",
            "is not accepted: the holder chooses the password with the activation code (ActivateAccount)",
        )
        .into());
    }
    let (id, code, expires) = issuer.create_account(user, person, name).await?;
    Ok(pb::CreateAccountResponse {
        account_id: id.to_string(),
        activation_code: code,
        activation_expires_at: kit::time::local(expires),
    })
}

pub async fn activate_account(
    issuer: &Issuer,
    request: Request<pb::ActivateAccountRequest>,
) -> Result<pb::ActivateAccountResponse> {
    let r = request.into_inner();
    let user = username(&r.username)?;
    let code = secret("activation_code", &r.activation_code)?;
    let password = secret("new_password", &r.new_password)?;
    let totp_secret = issuer.activate_account(user, code, password).await?;
    Ok(pb::ActivateAccountResponse { totp_secret })
}

pub async fn approve_account(
    issuer: &Issuer,
    request: Request<pb::ApproveAccountRequest>,
) -> Result<pb::ApproveAccountResponse> {
    let by = principal(&request)?;
    issuer.approve_account(&by, username(&request.get_ref().username)?).await?;
    Ok(pb::ApproveAccountResponse {})
}

pub async fn disable_account(
    issuer: &Issuer,
    request: Request<pb::DisableAccountRequest>,
) -> Result<pb::DisableAccountResponse> {
    issuer.disable_account(username(&request.get_ref().username)?).await?;
    Ok(pb::DisableAccountResponse {})
}

pub async fn create_client(
    issuer: &Issuer,
    request: Request<pb::CreateClientRequest>,
) -> Result<pb::CreateClientResponse> {
    let by = principal(&request)?;
    let r = request.into_inner();
    let id = client_id(&r.client_id)?;
    let name = field::text("name", &r.name, 100)?;
    let scope = scope("scope", &r.scope)?;
    let (code, expires) = issuer.create_client(&by, id, name, &scope).await?;
    Ok(pb::CreateClientResponse { activation_code: code, activation_expires_at: kit::time::local(expires) })
}

pub async fn activate_client(
    issuer: &Issuer,
    request: Request<pb::ActivateClientRequest>,
) -> Result<pb::ActivateClientResponse> {
    let r = request.into_inner();
    let id = client_id(&r.client_id)?;
    let code = secret("activation_code", &r.activation_code)?;
    let client_secret = issuer.activate_client(id, code).await?;
    Ok(pb::ActivateClientResponse { client_secret })
}

pub async fn set_grant(issuer: &Issuer, request: Request<pb::SetGrantRequest>) -> Result<pb::SetGrantResponse> {
    let by = principal(&request)?;
    let r = request.into_inner();
    let grant = NewGrant::parse(&r.username, &r.role, &r.scope, &r.unit, &r.valid_to)?;

    let row = issuer.set_grant(&by, &grant).await?;
    Ok(pb::SetGrantResponse { grant: Some(row.into()) })
}

pub async fn revoke_grant(
    issuer: &Issuer,
    request: Request<pb::RevokeGrantRequest>,
) -> Result<pb::RevokeGrantResponse> {
    let by = principal(&request)?;
    let id = field::uuid("grant_id", &request.get_ref().grant_id)?;
    issuer.revoke_grant(&by, id).await?;
    Ok(pb::RevokeGrantResponse {})
}

pub async fn list_grants(issuer: &Issuer, request: Request<pb::ListGrantsRequest>) -> Result<pb::ListGrantsResponse> {
    let rows = issuer.list_grants(username(&request.get_ref().username)?).await?;
    Ok(pb::ListGrantsResponse { grants: rows.into_iter().map(Into::into).collect() })
}

pub async fn revoke_client(
    issuer: &Issuer,
    request: Request<pb::RevokeClientRequest>,
) -> Result<pb::RevokeClientResponse> {
    issuer.revoke_client(client_id(&request.get_ref().client_id)?).await?;
    Ok(pb::RevokeClientResponse {})
}

pub async fn rotate_client_secret(
    issuer: &Issuer,
    request: Request<pb::RotateClientSecretRequest>,
) -> Result<pb::RotateClientSecretResponse> {
    let (code, expires) = issuer.rotate_client_secret(client_id(&request.get_ref().client_id)?).await?;
    Ok(pb::RotateClientSecretResponse { activation_code: code, activation_expires_at: kit::time::local(expires) })
}

pub async fn list_revocations(
    issuer: &Issuer,
    request: Request<pb::ListRevocationsRequest>,
) -> Result<pb::ListRevocationsResponse> {
    let after = request.get_ref().after_seq;
    if after < 0 {
        return Err(kit::FieldError::new("after_seq", "must be 0 or a sequence number served before").into());
    }
    let rows = issuer.list_revocations(after).await?;
    let revocations =
        rows.into_iter().map(|r| pb::Revocation { seq: r.seq, subject: r.subject, not_before: r.not_before }).collect();
    Ok(pb::ListRevocationsResponse { revocations })
}

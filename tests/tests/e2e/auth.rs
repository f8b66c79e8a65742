//! Sign-in from outside: every bad token refused at the gateway (gRPC and HTTP) and at a service port; the
//! embedded issuer's lockout, refresh rotation with reuse detection, sign-out, and second factor; roles that
//! do not give a method refused.

#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kit::auth::Claims;
use proto::gateway::v1::desk_client::DeskClient;
use proto::registry::v1::registry_client::RegistryClient;
use proto::registry::v1::{GetNodeRequest, RefreshRequest, SignInRequest, SignOutRequest, WhoAmIRequest};
use tests::World;
use tonic::Code;

const COUNTY: &str = "532901000000";

fn claims(exp_offset: i64) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        iss: "zongzhi".into(),
        aud: "zongzhi".into(),
        sub: "person:jwt-table".into(),
        exp: u64::try_from(now + exp_offset).unwrap(),
        nbf: u64::try_from(now - 5).unwrap(),
        iat: u64::try_from(now).unwrap(),
        jti: "j".into(),
        person: "jwt-table".into(),
        name: "t".into(),
        grants: vec![kit::auth::Grant { role: "dispatcher".into(), scope: COUNTY.into(), unit: String::new() }],
        amr: vec!["pwd".into()],
        sid: String::new(),
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The test issuer's signer with its issuer and audience replaced (it fills them in itself).
fn signed_as(iss: &str, aud: &str, c: Claims) -> String {
    let keys = &kit::testing::keys().set;
    let signer = kit::auth::Signer::from_seed(&keys.issuer_kid, &keys.issuer_seed, iss, aud);
    signer.sign(c).unwrap()
}

/// Every malformed or forged token, named.
fn bad_tokens() -> Vec<(&'static str, String)> {
    let good = kit::testing::keys().token("jwt-table", &[("dispatcher", COUNTY)]);
    let mut future = claims(600);
    future.nbf = future.iat + 3600;
    let mut tampered = good.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let body = b64(serde_json::to_string(&claims(600)).unwrap().as_bytes());
    let none = format!("{}.{body}.", b64(br#"{"alg":"none","typ":"JWT","kid":"test-issuer"}"#));
    // HMAC keyed with the issuer's public key: the classic confusion attack on verifiers that trust the header.
    let public_x = kit::testing::keys().issuer.jwk().unwrap();
    let public_bytes = match &public_x.algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&p.x).unwrap()
        }
        _ => unreachable!(),
    };
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("test-issuer".into());
    let hmac = jsonwebtoken::encode(&hs, &claims(600), &EncodingKey::from_secret(&public_bytes)).unwrap();
    let stranger = kit::auth::Signer::from_seed("stranger", &[7u8; 32], "zongzhi", "zongzhi");
    // A service's own key speaking for a person.
    let intake_seed = kit::testing::keys().set.services["intake"];
    let misuse = kit::auth::Signer::from_seed("service:intake", &intake_seed, "zongzhi", "zongzhi");
    let keys = kit::testing::keys();
    let every_unit = kit::auth::Grant { role: "handler".into(), scope: COUNTY.into(), unit: "*".into() };
    vec![
        ("expired", signed_as("zongzhi", "zongzhi", claims(-120))),
        ("not yet valid", signed_as("zongzhi", "zongzhi", future)),
        ("wrong issuer", signed_as("someone-else", "zongzhi", claims(600))),
        ("wrong audience", signed_as("zongzhi", "another-app", claims(600))),
        ("bad signature", String::from_utf8(tampered).unwrap()),
        ("alg none", none),
        ("HMAC with the public key", hmac),
        ("unknown kid", stranger.sign(claims(600)).unwrap()),
        ("service key for a person", misuse.sign(claims(600)).unwrap()),
        // Signed by a trusted issuer, and still refused: 三权分立 holds whoever issued the grants.
        (
            "an administrator role beside a business role",
            keys.token("jwt-table", &[("system_admin", "*"), ("dispatcher", COUNTY)]),
        ),
        ("two administrator roles", keys.token("jwt-table", &[("security_admin", "*"), ("audit_admin", "*")])),
        ("a handler over every unit the policy does not name", keys.token_with("jwt-table", vec![every_unit])),
        ("malformed", "not.a.jwt".into()),
        ("garbage", "!!".into()),
    ]
}

#[tokio::test]
async fn bad_tokens_are_refused_at_the_gateway_and_at_a_service() {
    let world = World::start().await;
    let gateway = format!("http://{}", world.suite.gateway_grpc);
    let registry = format!("http://{}", world.suite.registry);
    for (case, token) in bad_tokens() {
        let mut desk = DeskClient::new(kit::testing::connect_as(&gateway, &token).await);
        let s = desk.get_node(GetNodeRequest { code: COUNTY.into() }).await.unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated, "gateway gRPC, {case}: {s:?}");
        let mut direct = RegistryClient::new(kit::testing::connect_as(&registry, &token).await);
        let s = direct.get_node(GetNodeRequest { code: COUNTY.into() }).await.unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated, "registry port, {case}: {s:?}");
        let (status, body) = world.http_as(Some(&token), "GET", &format!("/v1/nodes/{COUNTY}"), "").await;
        assert_eq!(status, 401, "gateway HTTP, {case}: {body}");
        assert_eq!(body["code"], "UNAUTHENTICATED", "{case}");
    }
    // No token at all: refused everywhere but health.
    let (status, _) = world.http_as(None, "GET", &format!("/v1/cases?center_code={COUNTY}"), "").await;
    assert_eq!(status, 401);
    let mut plain = RegistryClient::connect(registry.clone()).await.unwrap();
    assert_eq!(plain.get_node(GetNodeRequest { code: COUNTY.into() }).await.unwrap_err().code(), Code::Unauthenticated);
    // The good token of the table passes, so the refusals above are about the tokens.
    let good = kit::testing::keys().token("jwt-table", &[("dispatcher", COUNTY)]);
    let mut desk = DeskClient::new(kit::testing::connect_as(&gateway, &good).await);
    assert_eq!(
        desk.get_node(GetNodeRequest { code: COUNTY.into() }).await.unwrap().into_inner().node.unwrap().code,
        COUNTY
    );
    world.stop().await;
}

#[tokio::test]
async fn roles_that_do_not_give_a_method_are_refused() {
    let world = World::start().await;
    let gateway = format!("http://{}", world.suite.gateway_grpc);
    let worker = kit::testing::keys().token("w", &[("grid_worker", &world.demo.grids[0])]);
    let mut desk = DeskClient::new(kit::testing::connect_as(&gateway, &worker).await);
    let s = desk
        .issue_directive(proto::registry::v1::IssueDirectiveRequest {
            target_code: COUNTY.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    // An administrator's grant counts only with a second factor.
    let mut c = claims(600);
    c.grants = vec![kit::auth::Grant { role: "audit_admin".into(), scope: "*".into(), unit: String::new() }];
    let token = signed_as("zongzhi", "zongzhi", c);
    let mut desk = DeskClient::new(kit::testing::connect_as(&gateway, &token).await);
    assert_eq!(desk.who_am_i(WhoAmIRequest {}).await.unwrap_err().code(), Code::PermissionDenied);
    world.stop().await;
}

#[tokio::test]
async fn password_sign_in_locks_rotates_detects_reuse_and_signs_out() {
    let world = World::start().await;
    let mut desk = DeskClient::connect(format!("http://{}", world.suite.gateway_grpc)).await.unwrap();
    let sign_in = |user: &str, password: &str, otp: &str| SignInRequest {
        username: user.into(),
        password: password.into(),
        otp: otp.into(),
    };
    let password = suite::seed::DEMO_PASSWORD;
    let first = desk.sign_in(sign_in("xg-dispatcher", password, "")).await.unwrap().into_inner();
    assert_eq!(first.grants[0].role, "dispatcher");
    let (me, _) = world.sign_in("xg-dispatcher").await;
    let who = me.clone().who_am_i(WhoAmIRequest {}).await.unwrap().into_inner();
    assert_eq!((who.grants[0].role.as_str(), who.grants[0].scope.as_str()), ("dispatcher", "532901003000"));

    // Rotation: a refresh spends the token; spending it again ends the whole session.
    let second =
        desk.refresh(RefreshRequest { refresh_token: first.refresh_token.clone() }).await.unwrap().into_inner();
    assert_ne!(second.refresh_token, first.refresh_token);
    let reuse = desk.refresh(RefreshRequest { refresh_token: first.refresh_token.clone() }).await.unwrap_err();
    assert_eq!(reuse.code(), Code::Unauthenticated);
    let after = desk.refresh(RefreshRequest { refresh_token: second.refresh_token }).await.unwrap_err();
    assert_eq!(after.code(), Code::Unauthenticated, "the family is revoked after reuse");

    // Sign-out ends a session.
    let third = desk.sign_in(sign_in("xg-dispatcher", password, "")).await.unwrap().into_inner();
    desk.sign_out(SignOutRequest { refresh_token: third.refresh_token.clone() }).await.unwrap();
    let s = desk.refresh(RefreshRequest { refresh_token: third.refresh_token }).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);

    // An administrator needs the second factor.
    let s = desk.sign_in(sign_in("auditor", password, "")).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    let (mut auditor, _) = world.sign_in("auditor").await;
    let who = auditor.who_am_i(WhoAmIRequest {}).await.unwrap().into_inner();
    assert_eq!(who.grants[0].role, "audit_admin");

    // Five wrong passwords lock the account: then even the right one fails.
    for _ in 0..5 {
        let s = desk.sign_in(sign_in("xg-clerk", "Wrong-password-1", "")).await.unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated);
    }
    let s = desk.sign_in(sign_in("xg-clerk", password, "")).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated, "locked");
    // An unknown user is refused with the same message as a wrong password.
    let unknown = desk.sign_in(sign_in("nobody", password, "")).await.unwrap_err();
    assert_eq!(unknown.message(), s.message());

    // An account unused for 90 days is disabled at its next sign-in.
    let registry = world.infra.pool("registry").await;
    sqlx::query("UPDATE accounts SET last_sign_in_at = now() - interval '91 days' WHERE username = 'xg-leader'")
        .execute(&registry)
        .await
        .unwrap();
    let s = desk.sign_in(sign_in("xg-leader", password, "")).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated, "dormant");
    let disabled: bool =
        sqlx::query_scalar("SELECT disabled_at IS NOT NULL FROM accounts WHERE username = 'xg-leader'")
            .fetch_one(&registry)
            .await
            .unwrap();
    assert!(disabled);
    world.stop().await;
}

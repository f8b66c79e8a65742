//! Ended tokens end everywhere: a disabled account's token, already verified and cached by a service, is
//! refused within seconds at the gateway, at intake and at the registry; a changed password ends the other
//! sessions; a client's rotated secret ends the old secret and the tokens it got, while a token from the new
//! secret, issued in the very same second, works; a revoked client signs in no more.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use proto::gateway::v1::desk_client::DeskClient;
use proto::intake::v1::ListCategoriesRequest;
use proto::intake::v1::intake_client::IntakeClient;
use proto::registry::v1::auth_client::AuthClient;
use proto::registry::v1::{
    ActivateClientRequest, ChangePasswordRequest, ClientTokenRequest, CreateClientRequest, DisableAccountRequest,
    RefreshRequest, RevokeClientRequest, RotateClientSecretRequest, SignInRequest, WhoAmIRequest,
};
use tests::World;
use tonic::Code;

/// Every door a token opens: the gateway, intake's own port and the registry's.
struct Doors {
    gateway: DeskClient<kit::testing::AuthedChannel>,
    intake: IntakeClient<kit::testing::AuthedChannel>,
    registry: AuthClient<kit::testing::AuthedChannel>,
}

impl Doors {
    async fn with(world: &World, token: &str) -> Self {
        let at = |addr| format!("http://{addr}");
        Self {
            gateway: DeskClient::new(kit::testing::connect_as(&at(world.suite.gateway_grpc), token).await),
            intake: IntakeClient::new(kit::testing::connect_as(&at(world.suite.intake), token).await),
            registry: AuthClient::new(kit::testing::connect_as(&at(world.suite.registry), token).await),
        }
    }

    /// Each door's answer code, in the order gateway, intake, registry.
    async fn codes(&mut self) -> [Code; 3] {
        fn code<T>(r: Result<T, tonic::Status>) -> Code {
            r.map_or_else(|s| s.code(), |_| Code::Ok)
        }
        [
            code(self.gateway.who_am_i(WhoAmIRequest {}).await),
            code(self.intake.list_categories(ListCategoriesRequest::default()).await),
            code(self.registry.who_am_i(WhoAmIRequest {}).await),
        ]
    }

    /// Waits until every door refuses the token, returning how long it took; fails after 15 s.
    async fn until_refused(&mut self, what: &str) -> Duration {
        let start = Instant::now();
        loop {
            let codes = self.codes().await;
            if codes.iter().all(|c| *c == Code::Unauthenticated) {
                return start.elapsed();
            }
            assert!(start.elapsed() < Duration::from_secs(15), "{what}: still answered {codes:?} after 15 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_disabled_accounts_cached_token_is_refused_within_seconds() {
    let world = World::start().await;
    let (_, token) = world.sign_in("dl-dispatcher").await;
    let mut doors = Doors::with(&world, &token).await;
    // Verified once at each door, and so cached there.
    assert_eq!(doors.codes().await, [Code::Ok; 3]);
    let (mut sysadmin, _) = world.sign_in("sysadmin").await;
    sysadmin.disable_account(DisableAccountRequest { username: "dl-dispatcher".into() }).await.unwrap();
    let took = doors.until_refused("a disabled account's token").await;
    eprintln!("disabled account's token refused at every door after {took:?}");
    let status = doors.intake.list_categories(ListCategoriesRequest::default()).await.unwrap_err();
    assert!(status.message().contains("revoked"), "says why: {status:?}");
    // The followers' polls (every service, every 2 s) leave no record each in the registry's trail.
    let registry = world.infra.pool("registry").await;
    let polls: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action LIKE '%/ListRevocations'")
        .fetch_one(&registry)
        .await
        .unwrap();
    assert_eq!(polls, 0);
    world.stop().await;
}

#[tokio::test]
async fn a_changed_password_ends_the_other_sessions() {
    let world = World::start().await;
    let user = "dl-leader";
    let mut anonymous = DeskClient::connect(format!("http://{}", world.suite.gateway_grpc)).await.unwrap();
    let sign_in =
        SignInRequest { username: user.into(), password: suite::seed::DEMO_PASSWORD.into(), otp: String::new() };
    // A thief's session (token and refresh token), then the holder changes the password elsewhere.
    let thief = anonymous.sign_in(sign_in.clone()).await.unwrap().into_inner();
    let mut doors = Doors::with(&world, &thief.access_token).await;
    assert_eq!(doors.codes().await, [Code::Ok; 3]);
    let change = ChangePasswordRequest {
        username: user.into(),
        old_password: suite::seed::DEMO_PASSWORD.into(),
        new_password: "Another-pass-2026".into(),
        otp: String::new(),
    };
    anonymous.change_password(change).await.unwrap();
    doors.until_refused("the old session's token after a password change").await;
    let refresh = anonymous.refresh(RefreshRequest { refresh_token: thief.refresh_token }).await.unwrap_err();
    assert_eq!(refresh.code(), Code::Unauthenticated, "the old session cannot be refreshed: {refresh:?}");
    // The holder signs in with the new password at once and is served.
    let fresh = SignInRequest { password: "Another-pass-2026".into(), ..sign_in };
    let mine = anonymous.sign_in(fresh).await.unwrap().into_inner();
    assert_eq!(Doors::with(&world, &mine.access_token).await.codes().await, [Code::Ok; 3]);
    world.stop().await;
}

#[tokio::test]
async fn a_rotated_or_revoked_client_secret_ends_its_tokens() {
    let world = World::start().await;
    let (mut sysadmin, _) = world.sign_in("sysadmin").await;
    let client_id = "hotline-12345";
    let create = CreateClientRequest {
        client_id: client_id.into(),
        name: "12345 热线".into(),
        scope: suite::seed::DEMO_COUNTY.into(),
    };
    let created = sysadmin.create_client(create).await.unwrap().into_inner();
    let mut anonymous = DeskClient::connect(format!("http://{}", world.suite.gateway_grpc)).await.unwrap();
    // The administrator got an activation code, not the secret: the client's operator collects it, once.
    let activate = |code: &str| ActivateClientRequest { client_id: client_id.into(), activation_code: code.into() };
    let wrong = anonymous.activate_client(activate("not-the-code")).await.unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong:?}");
    let old_secret =
        anonymous.activate_client(activate(&created.activation_code)).await.unwrap().into_inner().client_secret;
    let twice = anonymous.activate_client(activate(&created.activation_code)).await.unwrap_err();
    assert_eq!(twice.code(), Code::Unauthenticated, "an activation code works once: {twice:?}");
    let token_for = |secret: &str| ClientTokenRequest { client_id: client_id.into(), client_secret: secret.into() };
    let old_token = anonymous.client_token(token_for(&old_secret)).await.unwrap().into_inner().access_token;
    let mut doors = Doors::with(&world, &old_token).await;
    assert_eq!(doors.codes().await, [Code::Ok; 3]);

    let rotate = RotateClientSecretRequest { client_id: client_id.into() };
    let rotated = sysadmin.rotate_client_secret(rotate).await.unwrap().into_inner();
    let old = anonymous.client_token(token_for(&old_secret)).await.unwrap_err();
    assert_eq!(old.code(), Code::Unauthenticated, "the old secret ends with the rotation: {old:?}");
    let new_secret =
        anonymous.activate_client(activate(&rotated.activation_code)).await.unwrap().into_inner().client_secret;
    assert_ne!(new_secret, old_secret);
    // The new secret works at once, in the same second as the rotation: its token is dated after it.
    let new_token = anonymous.client_token(token_for(&new_secret)).await.unwrap().into_inner().access_token;
    let old = anonymous.client_token(token_for(&old_secret)).await.unwrap_err();
    assert_eq!(old.code(), Code::Unauthenticated, "the old secret signs in no more: {old:?}");
    doors.until_refused("a token from the rotated secret").await;
    let mut renewed = Doors::with(&world, &new_token).await;
    assert_eq!(renewed.codes().await, [Code::Ok; 3], "the new secret's token outlives the rotation");

    sysadmin.revoke_client(RevokeClientRequest { client_id: client_id.into() }).await.unwrap();
    let gone = anonymous.client_token(token_for(&new_secret)).await.unwrap_err();
    assert_eq!(gone.code(), Code::Unauthenticated, "a revoked client signs in no more: {gone:?}");
    renewed.until_refused("a revoked client's token").await;
    let again = sysadmin.revoke_client(RevokeClientRequest { client_id: client_id.into() }).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound, "{again:?}");
    world.stop().await;
}

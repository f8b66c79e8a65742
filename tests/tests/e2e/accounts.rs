//! Accounts under 三权分立: the system administrator who creates a grid worker's account chooses no password and
//! sees no second-factor secret; the holder activates it with a one-time code (once, and only with it); the
//! grid grants that follow the worker's assignment count only after the security administrator approves the
//! account, and never on one's own approval.

#![allow(clippy::unwrap_used)]

use proto::gateway::v1::desk_client::DeskClient;
use proto::registry::v1::{
    ActivateAccountRequest, ApproveAccountRequest, AssignGridWorkerRequest, CreateAccountRequest, CreateGridRequest,
    CreatePersonRequest, SignInRequest, WhoAmIRequest,
};
use tests::World;
use tonic::Code;

const VILLAGE: &str = "532901003002"; // a community of 下关街道, 大理市

#[tokio::test]
async fn an_administrator_cannot_become_a_grid_worker() {
    let world = World::start().await;
    // A new grid and its worker, by the county's business administrator.
    let (mut bizadmin, _) = world.sign_in("dl-bizadmin").await;
    let grid = CreateGridRequest {
        village_code: VILLAGE.into(),
        name: "五网格".into(),
        kind: proto::registry::v1::GridKind::Grid.into(),
        ..Default::default()
    };
    let grid = bizadmin.create_grid(grid).await.unwrap().into_inner().grid.unwrap();
    let person = CreatePersonRequest {
        name: "孙七".into(),
        role: proto::vocab::v1::PersonRole::GridWorker.into(),
        phone: "13912340000".into(),
        home_code: VILLAGE.into(),
        ..Default::default()
    };
    let person = bizadmin.create_person(person).await.unwrap().into_inner().person.unwrap();
    let assign = AssignGridWorkerRequest { grid_code: grid.code.clone(), person_id: person.id.clone() };
    bizadmin.assign_grid_worker(assign).await.unwrap();

    // The system administrator makes the account: no password to choose, no secret back, only a code.
    let (mut sysadmin, _) = world.sign_in("sysadmin").await;
    let with_password = CreateAccountRequest {
        username: "gw-sun".into(),
        person_id: person.id.clone(),
        display_name: "网格员 孙七".into(),
        initial_password: "Chosen-by-admin-1".into(),
    };
    let refused = sysadmin.create_account(with_password.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(kit::grpc::violated_fields(&refused).contains(&"initial_password".to_owned()), "{refused:?}");
    let created = CreateAccountRequest { initial_password: String::new(), ..with_password };
    let created = sysadmin.create_account(created).await.unwrap().into_inner();
    assert!(created.activation_code.len() >= 32 && created.activation_expires_at.ends_with("+08:00"), "{created:?}");
    let url = format!("http://{}", world.suite.gateway_grpc);
    let mut anonymous = DeskClient::connect(url.clone()).await.unwrap();
    // Nobody signs in before activation, whatever password they try.
    let before = SignInRequest { username: "gw-sun".into(), password: "Chosen-by-admin-1".into(), otp: String::new() };
    assert_eq!(anonymous.sign_in(before).await.unwrap_err().code(), Code::Unauthenticated);

    // The holder activates with the code (a wrong code first), choosing the password and getting the secret.
    let activate = |code: &str| ActivateAccountRequest {
        username: "gw-sun".into(),
        activation_code: code.into(),
        new_password: "Sun-qi-2026!".into(),
    };
    let wrong = anonymous.activate_account(activate("not-the-code")).await.unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong:?}");
    let enrolled = anonymous.activate_account(activate(&created.activation_code)).await.unwrap().into_inner();
    assert_eq!(enrolled.totp_secret.len(), 32, "{enrolled:?}");
    let again = anonymous.activate_account(activate(&created.activation_code)).await.unwrap_err();
    assert_eq!(again.code(), Code::Unauthenticated, "a code works once: {again:?}");

    // Signed in, but no grid grant until the security administrator approves the account.
    let sign_in = SignInRequest { username: "gw-sun".into(), password: "Sun-qi-2026!".into(), otp: String::new() };
    let tokens = anonymous.sign_in(sign_in.clone()).await.unwrap().into_inner();
    assert!(tokens.grants.is_empty(), "unapproved: {:?}", tokens.grants);
    let mut holder = DeskClient::new(kit::testing::connect_as(&url, &tokens.access_token).await);
    assert_eq!(holder.who_am_i(WhoAmIRequest {}).await.unwrap_err().code(), Code::PermissionDenied);
    // The system administrator cannot approve; the security administrator can.
    let approve = ApproveAccountRequest { username: "gw-sun".into() };
    assert_eq!(sysadmin.approve_account(approve.clone()).await.unwrap_err().code(), Code::PermissionDenied);
    let (mut secadmin, _) = world.sign_in("secadmin").await;
    secadmin.approve_account(approve).await.unwrap();
    let tokens = anonymous.sign_in(sign_in).await.unwrap().into_inner();
    let grants: Vec<(String, String)> = tokens.grants.iter().map(|g| (g.role.clone(), g.scope.clone())).collect();
    assert_eq!(grants, [("grid_worker".to_owned(), grid.code.clone())]);
    // Nor does the security administrator approve their own account.
    let own = secadmin.approve_account(ApproveAccountRequest { username: "secadmin".into() }).await.unwrap_err();
    assert_eq!(own.code(), Code::PermissionDenied, "{own:?}");
    world.stop().await;
}

//! Keys from a JWKS URL: trusted once fetched, followed when the provider rotates, and a withdrawn key stops
//! counting at the next refresh.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use kit::auth::{Signer, Trust, Verifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A one-route HTTP server that answers with whatever JWKS the test puts in `served`.
async fn provider(served: Arc<Mutex<String>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/realms/yunnan/protocol/openid-connect/certs", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let body = served.lock().unwrap().clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    url
}

fn token(signer: &Signer) -> String {
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    let claims = kit::auth::Claims {
        iss: String::new(),
        aud: String::new(),
        sub: "person:p-1".into(),
        exp: now + 300,
        nbf: now,
        iat: now,
        jti: "j".into(),
        person: "p-1".into(),
        name: "p".into(),
        grants: vec![kit::auth::Grant { role: "dispatcher".into(), scope: "532901000000".into(), unit: String::new() }],
        amr: vec![],
        sid: String::new(),
    };
    signer.sign(claims).unwrap()
}

fn set(signers: &[&Signer]) -> String {
    serde_json::to_string(&kit::auth::token::JwkSet { keys: signers.iter().map(|s| s.jwk().unwrap()).collect() })
        .unwrap()
}

#[tokio::test]
async fn keys_are_fetched_and_rotations_followed() {
    let idp = "https://idp.yn.gov.cn/realms/yunnan";
    let first = Signer::from_seed("yn-2026-1", &[1u8; 32], idp, "zongzhi");
    let second = Signer::from_seed("yn-2026-2", &[2u8; 32], idp, "zongzhi");
    let served = Arc::new(Mutex::new(set(&[&first])));
    let url = provider(served.clone()).await;
    let trust = Trust {
        jwks: kit::auth::token::JwkSet { keys: vec![] },
        jwks_url: Some(url),
        refresh_secs: 300,
        issuers: vec![idp.into()],
        audience: "zongzhi".into(),
        leeway_secs: 5,
    };
    let verifier = Verifier::load(&trust).await.unwrap();
    assert_eq!(verifier.verify(&token(&first)).unwrap().person_id, "p-1");
    assert_eq!(verifier.verify(&token(&second)).unwrap_err(), kit::auth::AuthError::UnknownKey);

    // The provider rotates: the new key is trusted and the withdrawn one no longer is.
    *served.lock().unwrap() = set(&[&second]);
    verifier.refresh().await.unwrap();
    assert!(verifier.verify(&token(&second)).is_ok());
    assert_eq!(verifier.verify(&token(&first)).unwrap_err(), kit::auth::AuthError::UnknownKey);

    // https is refused with a pointer to the file option; an unreachable URL stops the start.
    let mut tls = trust.clone();
    tls.jwks_url = Some("https://idp.yn.gov.cn/certs".into());
    assert!(Verifier::load(&tls).await.unwrap_err().to_string().contains("AUTH_JWKS_FILE"));
}

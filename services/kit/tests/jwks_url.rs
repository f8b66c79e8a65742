//! Keys from a JWKS URL, over HTTPS from a real TLS server: trusted once fetched, followed when the provider
//! rotates, a withdrawn key stops counting at the next refresh; and what a fetched set may not do (issue 19):
//! replace a configured kid or a service's, vouch for another issuer, or be read at all over plain HTTP or from
//! a server the configured CA did not certify. A stock provider's encryption key is left out, not fatal.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use kit::auth::{AuthError, Signer, Trust, Verifier};
use kit::testing::TestCerts;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

const IDP: &str = "https://idp.yn.gov.cn/realms/yunnan";

/// A one-route HTTPS server that answers with whatever JWKS the test puts in `served`.
async fn provider(certs: &TestCerts, served: Arc<Mutex<String>>) -> String {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(certs.path("leaf.pem")).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(certs.path("leaf.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/realms/yunnan/protocol/openid-connect/certs", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, body) = (acceptor.clone(), served.lock().unwrap().clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    url
}

fn token(signer: &Signer) -> String {
    token_of(signer, "person:p-1")
}

fn token_of(signer: &Signer, sub: &str) -> String {
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    let claims = kit::auth::Claims {
        iss: String::new(),
        aud: String::new(),
        sub: sub.into(),
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

fn keys(signers: &[&Signer]) -> Vec<serde_json::Value> {
    signers.iter().map(|s| serde_json::to_value(s.jwk().unwrap()).unwrap()).collect()
}

fn document(keys: Vec<serde_json::Value>) -> String {
    serde_json::json!({ "keys": keys }).to_string()
}

fn trust(url: String, ca: &Path) -> Trust {
    Trust {
        jwks: kit::auth::token::JwkSet { keys: vec![] },
        jwks_url: Some(url),
        refresh_secs: 300,
        jwks_issuer: IDP.into(),
        jwks_ca: Some(ca.to_owned()),
        issuers: vec!["zongzhi".into(), IDP.into()],
        audience: "zongzhi".into(),
        leeway_secs: 5,
        wide_grant_subjects: vec![],
    }
}

#[tokio::test]
async fn keys_are_fetched_over_https_and_rotations_followed() {
    let certs = TestCerts::make();
    let first = Signer::from_seed("yn-2026-1", &[1u8; 32], IDP, "zongzhi");
    let second = Signer::from_seed("yn-2026-2", &[2u8; 32], IDP, "zongzhi");
    let served = Arc::new(Mutex::new(document(keys(&[&first]))));
    let url = provider(&certs, served.clone()).await;
    let trust = trust(url.clone(), &certs.path("ca.pem"));
    let verifier = Verifier::load(&trust).await.unwrap();
    assert_eq!(verifier.verify(&token(&first)).unwrap().person_id, "p-1");
    assert_eq!(verifier.verify(&token(&second)).unwrap_err(), AuthError::UnknownKey);

    // The provider rotates: the new key is trusted and the withdrawn one no longer is.
    *served.lock().unwrap() = document(keys(&[&second]));
    verifier.refresh().await.unwrap();
    assert!(verifier.verify(&token(&second)).is_ok());
    assert_eq!(verifier.verify(&token(&first)).unwrap_err(), AuthError::UnknownKey);

    // Plain HTTP is refused; a server the configured CA did not certify is refused.
    let mut clear = trust.clone();
    clear.jwks_url = Some(url.replace("https://", "http://"));
    assert!(Verifier::load(&clear).await.unwrap_err().to_string().contains("https://"));
    let mut stranger = trust.clone();
    stranger.jwks_ca = Some(certs.path("other.pem"));
    let refused = Verifier::load(&stranger).await.unwrap_err().to_string();
    assert!(refused.contains("certificate") || refused.contains("Certificate"), "{refused}");
}

#[tokio::test]
async fn a_fetched_set_cannot_replace_configured_or_service_keys_nor_vouch_for_another_issuer() {
    let certs = TestCerts::make();
    // The deployment's own keys: the embedded issuer's and a service's, from the configured file.
    let ours = Signer::from_seed("zongzhi-1", &[7u8; 32], "zongzhi", "zongzhi");
    let intake = Signer::from_seed("service:intake", &[8u8; 32], "zongzhi", "zongzhi");
    // What the fetched set carries: keys under those same kids (an attacker's), the provider's own signing key,
    // a copy of it that claims our issuer, and an RSA-OAEP encryption key as a stock Keycloak publishes.
    let forged = Signer::from_seed("zongzhi-1", &[9u8; 32], "zongzhi", "zongzhi");
    let forged_service = Signer::from_seed("service:intake", &[10u8; 32], "zongzhi", "zongzhi");
    let provider_key = Signer::from_seed("yn-2026-1", &[1u8; 32], IDP, "zongzhi");
    let as_ours = Signer::from_seed("yn-2026-1", &[1u8; 32], "zongzhi", "zongzhi");
    let encryption = serde_json::json!({
        "kid": "yn-enc-1", "kty": "RSA", "use": "enc", "alg": "RSA-OAEP",
        "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
        "e": "AQAB"
    });
    let mut served_keys = keys(&[&forged, &forged_service, &provider_key]);
    served_keys.push(encryption);
    let served = Arc::new(Mutex::new(document(served_keys)));
    let url = provider(&certs, served).await;
    let mut trust = trust(url, &certs.path("ca.pem"));
    trust.jwks = kit::auth::token::JwkSet { keys: vec![ours.jwk().unwrap(), intake.jwk().unwrap()] };

    // The set loads (the encryption key is left out, not fatal).
    let verifier = Verifier::load(&trust).await.unwrap();
    assert!(verifier.verify(&token(&ours)).is_ok(), "the configured key still verifies");
    assert!(verifier.verify(&token_of(&intake, "service:intake")).is_ok(), "the service's key still verifies");
    assert_eq!(verifier.verify(&token(&forged)).unwrap_err(), AuthError::Signature, "not replaced");
    let forged_service = token_of(&forged_service, "service:intake");
    assert_eq!(verifier.verify(&forged_service).unwrap_err(), AuthError::Signature, "not replaced");
    assert!(verifier.verify(&token(&provider_key)).is_ok(), "the provider's key vouches for its issuer");
    assert_eq!(verifier.verify(&token(&as_ours)).unwrap_err(), AuthError::Issuer, "and for no other");
}

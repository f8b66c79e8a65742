//! The tree's bounds from outside: page tokens that were never issued, NUL in a search, and a gzip division file
//! that inflates without end — each refused by name, nothing written.

#![allow(clippy::unwrap_used)]

use crate::common;

use kit::testing::TestInfra;
use proto::registry::v1::tree_client::TreeClient;
use proto::registry::v1::*;
use tonic::Code;
use tonic::codegen::tokio_stream;

const DALI: &str = "532900000000";

async fn scalar(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn page_tokens_are_checked_and_nul_is_refused_by_name() {
    use proto::registry::v1::ledger_client::LedgerClient;
    use proto::registry::v1::registry_client::RegistryClient;
    let infra = TestInfra::new().await;
    let r = common::start(&infra, true).await;
    let (mut tree, mut registry) = (TreeClient::new(r.channel.clone()), RegistryClient::new(r.channel.clone()));
    let mut ledger = LedgerClient::new(r.channel);
    let garbage = ["!!garbage!!", "530100000000", "5329", "53290100000\0", &"9".repeat(10_000)];
    for token in garbage {
        let case = format!("token {:?}", &token[..token.len().min(16)]);
        let children = ListChildrenRequest { code: DALI.into(), page_size: 5, page_token: token.into() };
        let status = registry.list_children(children).await.unwrap_err();
        kit::testing::assert_refused(&format!("ListChildren {case}"), &status, Code::InvalidArgument, "page_token");
        let below = ListLedgerRequest { code: DALI.into(), page_size: 5, page_token: token.into() };
        let status = ledger.list_ledger(below).await.unwrap_err();
        kit::testing::assert_refused(&format!("ListLedger {case}"), &status, Code::InvalidArgument, "page_token");
        let descendants =
            ListDescendantsRequest { code: DALI.into(), level: 4, page_size: 5, page_token: token.into() };
        let status = tree.list_descendants(descendants).await.unwrap_err();
        kit::testing::assert_refused(&format!("ListDescendants {case}"), &status, Code::InvalidArgument, "page_token");
    }
    // A token the service issued still pages.
    let first = registry
        .list_children(ListChildrenRequest { code: DALI.into(), page_size: 5, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let next = ListChildrenRequest { code: DALI.into(), page_size: 100, page_token: first.next_page_token };
    assert_eq!(registry.list_children(next).await.unwrap().into_inner().children.len(), 7);

    let status = tree
        .search_names(SearchNamesRequest { code: DALI.into(), query: "下关\0".into(), page_size: 5 })
        .await
        .unwrap_err();
    kit::testing::assert_refused("NUL in query", &status, Code::InvalidArgument, "query");
    let status = tree
        .search_names(SearchNamesRequest { code: DALI.into(), query: "🚰".into(), page_size: 5 })
        .await
        .unwrap()
        .into_inner();
    assert!(status.nodes.is_empty(), "an emoji is a query like any other");
    r.stop.stop();
}

#[tokio::test]
async fn a_gzip_line_that_inflates_without_end_is_refused_naming_its_line() {
    use std::io::Write;
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, false).await;
    // 64 MiB of zeros on line 3 compress to about 64 KiB; the parser stops at 4 KiB into the line.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"code,name,level,parent_code\n530000000000,\xe4\xba\x91\xe5\x8d\x97\xe7\x9c\x81,1,\n").unwrap();
    let zeros = vec![b'0'; 1 << 20];
    for _ in 0..64 {
        gz.write_all(&zeros).unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 256 << 10, "{} bytes", bomb.len());
    let chunks: Vec<ImportDivisionsChunk> = bomb
        .chunks(64 << 10)
        .enumerate()
        .map(|(i, data)| ImportDivisionsChunk {
            edition: if i == 0 { "2023".into() } else { String::new() },
            data: data.to_vec(),
            ..Default::default()
        })
        .collect();
    let mut answers = s.tree.import_divisions(tokio_stream::iter(chunks)).await.unwrap().into_inner();
    let err = loop {
        match answers.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the bomb was imported"),
            Err(status) => break status,
        }
    };
    kit::testing::assert_refused("gzip bomb", &err, Code::InvalidArgument, "data");
    assert!(err.message().contains("line 3") && err.message().contains("longer than"), "{}", err.message());
    assert_eq!(scalar(&s.pool, "SELECT count(*) FROM divisions").await, 0, "nothing written");
    s.stop.stop();
}

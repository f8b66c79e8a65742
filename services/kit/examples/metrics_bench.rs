//! What a metric costs where the services pay for it: a counter looked up by name and labels on every call (as
//! the gRPC and HTTP layers do), a kept handle, a histogram observation, and a scrape of 2,000 series.
//!
//! `cargo run --release -p kit --features testing --example metrics_bench [ROUNDS]` prints nanoseconds per
//! operation and milliseconds per scrape.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use kit::metrics::{counter, histogram};

fn per_op(n: u32, f: impl FnMut(u32)) -> f64 {
    let start = Instant::now();
    (0..n).for_each(f);
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let n: u32 = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(1_000_000);
    let methods = ["RegisterCase", "GetCase", "ListCaseBoard", "AcceptTask"];
    let lookup = per_op(n, |i| {
        let method = methods[i as usize % methods.len()];
        counter("bench_calls_total", &[("grpc_service", "zongzhi.intake.v1.Intake"), ("grpc_method", method)]).inc();
    });
    let held = counter("bench_held_total", &[("grpc_method", "RegisterCase")]);
    let kept = per_op(n, |_| held.inc());
    let h = histogram("bench_seconds", &[("grpc_method", "RegisterCase")]);
    let observe = per_op(n, |i| h.observe(f64::from(i % 1000) / 10_000.0));
    for i in 0..2000 {
        let (route, status) = (format!("/v1/route/{}", i % 200), (i / 200).to_string());
        counter("bench_series_total", &[("route", &route), ("status", &status)]).inc();
    }
    let (_trigger, shutdown) = kit::shutdown::channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(kit::metrics::serve(listener, shutdown));
    let bytes = kit::testing::scrape(addr).await.len();
    let scrapes = 50;
    let start = Instant::now();
    for _ in 0..scrapes {
        kit::testing::scrape(addr).await;
    }
    let scrape_ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(scrapes);
    println!("rounds {n}");
    println!("counter looked up and incremented: {lookup:.0} ns");
    println!("kept counter incremented:          {kept:.1} ns");
    println!("histogram observed:                {observe:.1} ns");
    println!("scrape of 2,000+ series:           {scrape_ms:.2} ms ({bytes} bytes)");
    Ok(())
}

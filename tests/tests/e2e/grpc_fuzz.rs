//! A fuzz of the gRPC face: every Desk method called with random bytes and with mutated valid messages. A
//! valid message is built for each method's request type from the descriptor set (every field filled with a
//! value a client might send: the demo's real ids and codes, empty, NUL, emoji, 10 KiB of text, extreme
//! numbers), then its bytes are flipped, cut, repeated or truncated. No answer may be INTERNAL, UNKNOWN,
//! DATA_LOSS, UNAVAILABLE or UNIMPLEMENTED, and the suite must serve an ordinary call afterwards.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};

use prost::Message;
use prost::bytes::{Buf, BufMut};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use tests::{Rng, World};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Message types by full name (`.zongzhi.intake.v1.Case`), nested ones included.
struct Schema(HashMap<String, DescriptorProto>);

impl Schema {
    /// The message types and every Desk method with its request type.
    fn load() -> (Self, Vec<(String, String)>) {
        let set = FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET).unwrap();
        let (mut types, mut methods) = (HashMap::new(), Vec::new());
        fn add(types: &mut HashMap<String, DescriptorProto>, prefix: &str, m: &DescriptorProto) {
            let name = format!("{prefix}.{}", m.name());
            for nested in &m.nested_type {
                add(types, &name, nested);
            }
            types.insert(name, m.clone());
        }
        for file in &set.file {
            let prefix = format!(".{}", file.package());
            for m in &file.message_type {
                add(&mut types, &prefix, m);
            }
            for service in file.service.iter().filter(|s| file.package() == "zongzhi.gateway.v1" && s.name() == "Desk")
            {
                for m in &service.method {
                    methods.push((m.name().to_owned(), m.input_type().to_owned()));
                }
            }
        }
        (Self(types), methods)
    }

    /// A well-formed encoding of `type_name` with most fields set (some left out, repeated ones 0–2 times).
    fn message(&self, type_name: &str, rng: &mut Rng, strings: &[String], depth: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let Some(m) = self.0.get(type_name) else { return out };
        for f in &m.field {
            if rng.below(5) == 0 {
                continue;
            }
            let times = if f.label() == Label::Repeated { rng.below(3) } else { 1 };
            let number = u64::try_from(f.number()).unwrap();
            for _ in 0..times {
                match f.r#type() {
                    Type::String | Type::Bytes => {
                        let v = rng.pick(strings).as_bytes().to_vec();
                        delimited(&mut out, number, &v);
                    }
                    Type::Message if depth < 3 => {
                        let inner = self.message(f.type_name(), rng, strings, depth + 1);
                        delimited(&mut out, number, &inner);
                    }
                    Type::Message | Type::Group => {}
                    Type::Double | Type::Fixed64 | Type::Sfixed64 => {
                        varint(&mut out, number << 3 | 1);
                        let v = *rng.pick(&[0f64, -1.0, 25.59, 1e308, f64::NAN, f64::INFINITY]);
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                    Type::Float | Type::Fixed32 | Type::Sfixed32 => {
                        varint(&mut out, number << 3 | 5);
                        out.extend_from_slice(&rng.pick(&[0f32, -1.0, 100.23, f32::NAN]).to_le_bytes());
                    }
                    // Integers, booleans and enums: small, boundary and negative (ten-byte) values.
                    _ => {
                        varint(&mut out, number << 3);
                        varint(&mut out, *rng.pick(&[0, 1, 2, 3, 7, 100, u64::from(u32::MAX), u64::MAX, 1 << 40]));
                    }
                }
            }
        }
        out
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn delimited(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    varint(out, number << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(out.len() + 1);
        match rng.below(5) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(out.len());
                out.drain(at.min(end)..end);
            }
            2 => {
                let end = (at + rng.below(16)).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
            3 => out.truncate(at),
            _ => {
                let noise: Vec<u8> = (0..rng.below(8) + 1).map(|_| rng.next() as u8).collect();
                out.splice(at..at, noise);
            }
        }
    }
    out
}

/// Sends and receives messages as raw bytes, so a request can be anything at all.
#[derive(Clone, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

async fn call(channel: tonic::transport::Channel, token: &str, method: &str, body: Vec<u8>) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    if grpc.ready().await.is_err() {
        return Code::Unavailable;
    }
    let mut request = tonic::Request::new(body);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let path = format!("/zongzhi.gateway.v1.Desk/{method}").parse().unwrap();
    grpc.unary(request, path, Raw).await.map_or_else(|s| s.code(), |_| Code::Ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_and_mutated_messages_to_every_desk_method_never_fault_the_suite() {
    let world = World::start().await;
    let mut desk = world.desk.clone();
    let case = desk.register_case(world.dispute("grpc-fuzz-0")).await.unwrap().into_inner().case.unwrap();
    let (schema, methods) = Schema::load();
    assert!(methods.len() > 60, "the Desk's methods from the descriptor set: {}", methods.len());
    let d = &world.demo;
    let mut strings: Vec<String> = vec![
        case.id.clone(),
        case.case_no.clone(),
        d.center_code.clone(),
        d.grids[0].clone(),
        d.grid_workers[0].clone(),
        "532900000000".into(),
        "532901003-SFS".into(),
        "0102".into(),
        "dispute".into(),
        "2026-12-07T10:00:00+08:00".into(),
        String::new(),
        "\0".into(),
        "a\0b".into(),
        "🚰💧".into(),
        "x".repeat(10 * 1024),
        "界".repeat(3000),
        "*".into(),
        "-1".into(),
        "not-a-uuid".into(),
        "00000000-0000-0000-0000-000000000000".into(),
    ];
    strings.push(uuid_like(&mut Rng(7)));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", world.suite.gateway_grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let methods = std::sync::Arc::new(methods);
    let (schema, strings) = (std::sync::Arc::new(schema), std::sync::Arc::new(strings));
    const SEED: u64 = 0x5eed_2026_1207;
    const PER_WORKER: usize = 500;
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let (methods, schema, strings) = (methods.clone(), schema.clone(), strings.clone());
        let (channel, token) = (channel.clone(), world.root_token.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = Rng(SEED + w);
            let (mut faults, mut codes) = (Vec::new(), BTreeMap::<String, usize>::new());
            for i in 0..PER_WORKER {
                let (method, input) = rng.pick(&methods).clone();
                let valid = schema.message(&input, &mut rng, &strings, 0);
                let body = match rng.below(4) {
                    0 => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
                    1 => valid,
                    _ => mutate(&mut rng, &valid),
                };
                let code = call(channel.clone(), &token, &method, body.clone()).await;
                *codes.entry(format!("{code:?}")).or_default() += 1;
                if matches!(
                    code,
                    Code::Internal | Code::Unknown | Code::DataLoss | Code::Unavailable | Code::Unimplemented
                ) {
                    let shown: String = body.iter().take(64).map(|b| format!("{b:02x}")).collect();
                    faults.push(format!("worker {w} call {i}: {method} answered {code:?} to {shown}"));
                }
            }
            (faults, codes)
        }));
    }
    let (mut faults, mut codes) = (Vec::new(), BTreeMap::<String, usize>::new());
    for w in workers {
        let (f, c) = w.await.unwrap();
        faults.extend(f);
        for (code, n) in c {
            *codes.entry(code).or_default() += n;
        }
    }
    eprintln!("gRPC fuzz codes: {codes:?}");
    assert!(faults.is_empty(), "{} faults:\n{}", faults.len(), faults.join("\n"));
    // The messages must reach the services' own checks, not only the decoder: some are served, some refused
    // by a service's validation or state checks.
    let served = codes.get("Ok").copied().unwrap_or(0);
    let refused = codes.get("InvalidArgument").copied().unwrap_or(0);
    assert!(served > 20 && refused > 200, "codes: {codes:?}");
    // And the suite still serves an ordinary call.
    let again = desk.get_case(proto::intake::v1::GetCaseRequest { case_ref: case.id.clone() }).await.unwrap();
    assert_eq!(again.into_inner().case.unwrap().id, case.id);
    world.stop().await;
}

fn uuid_like(rng: &mut Rng) -> String {
    let hex: String = (0..32).map(|_| format!("{:x}", rng.below(16))).collect();
    format!("{}-{}-4{}-8{}-{}", &hex[..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
}

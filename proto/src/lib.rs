//! Generated protobuf types and gRPC stubs for every Zongzhi package, and the descriptor set for reflection.

#![allow(clippy::all, clippy::unwrap_used)]

pub mod codec;

/// What a message names, for the audit record of a call carrying it (generated from the descriptors by
/// `build.rs`: its identifier fields as `name=value`; empty for a message naming nothing).
pub trait Targeted {
    fn audit_target(&self) -> String {
        String::new()
    }
}

include!(concat!(env!("OUT_DIR"), "/targets.rs"));

/// The encoded `FileDescriptorSet` of every Zongzhi proto, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

pub mod intake {
    pub mod v1 {
        tonic::include_proto!("zongzhi.intake.v1");
    }
}
pub mod routing {
    pub mod v1 {
        tonic::include_proto!("zongzhi.routing.v1");
    }
}
pub mod registry {
    pub mod v1 {
        tonic::include_proto!("zongzhi.registry.v1");
    }
}
pub mod supervision {
    pub mod v1 {
        tonic::include_proto!("zongzhi.supervision.v1");
    }
}
pub mod subsidy {
    pub mod v1 {
        tonic::include_proto!("zongzhi.subsidy.v1");
    }
}
pub mod audit {
    pub mod v1 {
        tonic::include_proto!("zongzhi.audit.v1");
    }
}
pub mod events {
    pub mod v1 {
        tonic::include_proto!("zongzhi.events.v1");
    }
}
pub mod gateway {
    pub mod v1 {
        tonic::include_proto!("zongzhi.gateway.v1");
    }
}

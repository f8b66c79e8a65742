//! The codec every generated client and server uses: prost's, and on decoding a message it notes what the
//! message names ([`crate::Targeted`]) in the call's [`DECODED`] slot, where the server's audit layer reads it.
//! So every audit record names its object (a case, a task, an account, a grant) whether or not the handler
//! says so, and a handler that knows better (the case a registration created) still sets its own.

use std::sync::{Arc, Mutex};

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

tokio::task_local! {
    /// What the call's request named: the first message decoded in the call (the request; answers the
    /// handler gets from other services come later and are not its object). Set by the audit layer around
    /// each call it records.
    pub static DECODED: Arc<Mutex<Option<String>>>;
}

/// The most of one value kept in a target: ids are short, and a made-up one must not grow the record.
const VALUE_MAX: usize = 64;

/// `name=value` pairs of the non-empty values, each cut at 64 characters.
pub fn target_of(fields: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (name, value) in fields.iter().filter(|(_, v)| !v.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        let cut = value.char_indices().nth(VALUE_MAX).map_or(value.as_str(), |(i, _)| &value[..i]);
        out.push_str(name);
        out.push('=');
        out.push_str(cut);
    }
    out
}

#[derive(Debug, Clone)]
pub struct Codec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + crate::Targeted + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = Noting<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic::codec::Codec::encoder(&mut self.0)
    }

    fn decoder(&mut self) -> Self::Decoder {
        Noting(tonic::codec::Codec::decoder(&mut self.0))
    }
}

/// prost's decoder, noting each decoded message's target.
#[derive(Debug)]
pub struct Noting<U>(ProstDecoder<U>);

impl<U: Message + Default + crate::Targeted> Decoder for Noting<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // The first message a recorded call decodes is its request (see DECODED).
        let request = DECODED.try_with(|slot| slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_none());
        let item = match self.0.decode(buf) {
            // prost's codec answers a message that does not decode (cut short, a string that is not UTF-8) with
            // INTERNAL, the gRPC library convention. A request that does not decode is bad input, not a server
            // fault: INVALID_ARGUMENT, keeping prost's message, which names the field. An answer from another
            // service that does not decode stays INTERNAL. Found by tests/tests/e2e/grpc_fuzz.rs.
            Err(status) if request == Ok(true) => return Err(Status::invalid_argument(status.message())),
            decoded => decoded?,
        };
        if let Some(message) = &item {
            // Outside a recorded call (a client decoding an answer, an unaudited server) there is no slot.
            let _ = DECODED.try_with(|slot| {
                let mut slot = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if slot.is_none() {
                    *slot = Some(message.audit_target());
                }
            });
        }
        Ok(item)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

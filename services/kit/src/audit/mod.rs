//! The tamper-evident audit trail (全过程留痕).
//!
//! Every audited action becomes one record in the service's `audit_log`, chained to the record before it by an
//! HMAC-SM3 over the previous hash and every field. The database refuses updates, truncation and deletion of
//! records younger than 180 days (triggers, see `migrations/2_audit.sql`); the chain catches what a superuser
//! does around the triggers. A mutating call's record is staged in the action's own transaction
//! ([`staged`]); any other record that cannot be written makes `append` fail, and so must the call it guards.
//!
//! - [`AuditLog`]: the writer handle; appends are group-committed, many records per transaction.
//! - [`begin`]: a handler's transaction with its call's record staged in it, so an action and its record
//!   commit together or not at all ([`staged`]).
//! - [`verify`]: walks the chain and names the first broken link; [`verify_anchored`] also checks it against
//!   the signed anchors kept outside the database ([`anchor`]).
//! - [`grpc::AuditService`]: `zongzhi.audit.v1.Audit`, listing and verifying over gRPC.

pub mod anchor;
mod chain;
pub mod grpc;
pub mod staged;
mod store;
mod verify;
mod writer;

pub use chain::{AuditKey, DEV_KEY, GENESIS, HASH_LEN};
pub use staged::{begin, stage, sweep, unchanged};
pub use verify::{Break, BreakKind, PROGRESS_EVERY, RETENTION_DAYS, VerifyReport, verify, verify_anchored};
pub use writer::AuditLog;

/// One audited action, as the caller knows it. The writer adds the sequence number, the server time and the
/// chain hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditEntry {
    /// The principal's subject.
    pub actor: String,
    /// The role of the grant used.
    pub role: String,
    /// The scope of the grant used (a division code or the like).
    pub scope: String,
    /// The full gRPC method path, e.g. `/zongzhi.intake.v1.Intake/GetCase`.
    pub action: String,
    /// The ids of the objects acted on.
    pub target: String,
    /// `ok`, `denied`, or a gRPC code name.
    pub outcome: String,
    /// Why it was denied or failed; empty when ok.
    pub reason: String,
    pub client_addr: String,
    pub trace_id: String,
    /// Anything else worth keeping, e.g. for an unmask the field and purpose (JSON by convention).
    pub detail: String,
}

/// The object a call acted on (and anything else worth keeping, such as an unmask's purpose), set by the
/// handler on its response so the audit record names it.
#[derive(Debug, Clone)]
pub struct AuditTarget {
    pub target: String,
    pub detail: String,
}

/// Names the object of a response for the audit record (`case:…`, `task:…`).
pub fn target<T>(response: tonic::Response<T>, target: impl Into<String>) -> tonic::Response<T> {
    target_with_detail(response, target, String::new())
}

pub fn target_with_detail<T>(
    mut response: tonic::Response<T>,
    target: impl Into<String>,
    detail: impl Into<String>,
) -> tonic::Response<T> {
    response.extensions_mut().insert(AuditTarget { target: target.into(), detail: detail.into() });
    response
}

impl AuditEntry {
    /// PostgreSQL text cannot hold NUL, and a record names what the caller sent (a target `center_code=5329\0`
    /// from a request full of NULs): each NUL is written as the two characters `\0`, so the record is kept,
    /// still shows the byte was there, and the call is not refused for want of a record.
    pub fn make_storable(&mut self) {
        for field in [
            &mut self.actor,
            &mut self.role,
            &mut self.scope,
            &mut self.action,
            &mut self.target,
            &mut self.outcome,
            &mut self.reason,
            &mut self.client_addr,
            &mut self.trace_id,
            &mut self.detail,
        ] {
            if field.contains('\0') {
                *field = field.replace('\0', "\\0");
            }
        }
    }

    /// The text fields in their one canonical order (hashed, stored and listed in it).
    pub fn fields(&self) -> [&str; 10] {
        [
            &self.actor,
            &self.role,
            &self.scope,
            &self.action,
            &self.target,
            &self.outcome,
            &self.reason,
            &self.client_addr,
            &self.trace_id,
            &self.detail,
        ]
    }
}

/// Why an entry was not recorded. Cloneable because one failed group commit answers every waiter in it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("the audit writer has stopped")]
    Closed,
    #[error("the audit record could not be written: {0}")]
    Write(std::sync::Arc<sqlx::Error>),
}

impl From<AuditError> for tonic::Status {
    /// UNAVAILABLE: the action was refused because it could not be recorded, which may succeed on retry. The
    /// cause is logged, never sent.
    fn from(err: AuditError) -> Self {
        tracing::error!(error = %err, "audit write failed; refusing the action");
        tonic::Status::unavailable("the audit trail cannot be written, so the action is refused; retry")
    }
}

#[cfg(test)]
mod tests {
    use super::AuditEntry;

    #[test]
    fn a_nul_in_what_the_caller_sent_is_kept_as_text() {
        let mut e = AuditEntry { target: "center_code=5329\0".into(), reason: "a\0b\0".into(), ..Default::default() };
        e.make_storable();
        assert_eq!((e.target.as_str(), e.reason.as_str()), ("center_code=5329\\0", "a\\0b\\0"));
        assert!(e.fields().iter().all(|f| !f.contains('\0')));
    }
}

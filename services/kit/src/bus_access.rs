//! Who may do what on the bus, in one place: the event kinds each service publishes, the consumers it reads
//! through, and the NATS permissions that follow from them. `deploy/nats/users.conf` is rendered from this
//! (a test fails when the two differ), so the server enforces exactly what the code does.
//!
//! Without it, anyone who reaches NATS could publish a forged `case.followed_up` and be credited.

use crate::nats::PARTITIONS;

/// The user with every permission: operator commands and the tests' event injection.
pub const OPS_USER: &str = "ops";

/// The event kinds (`subject_of`'s catalogue) each service publishes; a service absent here publishes none.
/// The registry only consumes.
pub const PUBLISHERS: &[(&str, &[&str])] = &[
    ("intake", &["case.registered", "case.merged", "case.unmerged"]),
    (
        "routing",
        &[
            "case.dispatched",
            "case.accepted",
            "case.returned",
            "case.return_rejected",
            "case.resolved",
            "case.escalated",
            "case.recalled",
            "case.joint",
        ],
    ),
    ("registry", &[]),
    ("supervision", &["case.closed", "case.followed_up", "case.reopened", "case.overdue", "case.supervised"]),
    ("subsidy", &["subsidy.credited"]),
];

/// The environment variable the NATS server reads a user's password from (`$NATS_PASSWORD_INTAKE` in the
/// configuration), so passwords live in secrets, never in the configuration file. NATS parses the value as
/// a configuration value: a password must be letters and digits starting with a letter (`p` + 64 hex
/// digits), or the server reads a number or fails to start.
pub fn password_var(user: &str) -> String {
    format!("NATS_PASSWORD_{}", user.to_ascii_uppercase())
}

/// Where a user's replies arrive. Each service gets its own inbox prefix so it may subscribe to its own
/// replies (JetStream API answers, publish acknowledgements, pulled messages) and to nothing else: one
/// service cannot read the messages pulled by another.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX_{user}")
}

/// The durable consumers a service may create and read: one per partition, `<service>-<pp>`, and the
/// single whole-stream consumer `<service>` that preceded them, so an upgrade can drain it.
pub fn consumer_names(service: &str) -> Vec<String> {
    std::iter::once(service.to_owned()).chain((0..PARTITIONS).map(|p| format!("{service}-{p:02}"))).collect()
}

/// The subjects a service may publish to. The first token (the deployment's prefix, `zongzhi`; tests use
/// `zzt_<tag>`) and the stream name are wildcards so one configuration serves production and every test's
/// private stream; what is pinned is the event kind, the consumer name and the JetStream operation.
pub fn publish_allow(service: &str, kinds: &[&str]) -> Vec<String> {
    let mut allow: Vec<String> = kinds.iter().map(|k| format!("*.{k}.*")).collect();
    // Each service creates the stream on connect (idempotently: INFO, then CREATE if missing). Neither
    // lets it publish into the stream, delete it or change it.
    allow.push("$JS.API.STREAM.INFO.*".into());
    allow.push("$JS.API.STREAM.CREATE.*".into());
    // The whole-stream consumer `<service>` of earlier releases is deleted by the service when it moves to
    // per-partition consumers; it may delete that one and no other.
    allow.push(format!("$JS.API.CONSUMER.DELETE.*.{service}"));
    for name in consumer_names(service) {
        // CONSUMER.CREATE.<stream>.<name>[.<filter>] is what async-nats sends (NATS 2.9 and later);
        // DURABLE.CREATE is the older form other clients still use. Then info, pulling and acknowledging,
        // only for its own consumers: taking another service's consumer would let it swallow that
        // service's events.
        allow.push(format!("$JS.API.CONSUMER.CREATE.*.{name}"));
        allow.push(format!("$JS.API.CONSUMER.CREATE.*.{name}.>"));
        allow.push(format!("$JS.API.CONSUMER.DURABLE.CREATE.*.{name}"));
        allow.push(format!("$JS.API.CONSUMER.INFO.*.{name}"));
        allow.push(format!("$JS.API.CONSUMER.MSG.NEXT.*.{name}"));
        allow.push(format!("$JS.ACK.*.{name}.>"));
    }
    allow
}

/// The authorization block of the NATS configuration, rendered from the tables above.
pub fn render_users_conf() -> String {
    let mut out = String::from(
        "# GENERATED from services/kit/src/bus_access.rs; do not edit. After changing that file, rewrite this one with\n\
         #   UPDATE_NATS_USERS=1 cargo test -p kit users_conf\n\
         #\n\
         # One user per service, passwords from the server's environment ($NATS_PASSWORD_<USER>, fed from Secrets):\n\
         # a missing one stops the server at start rather than leaving a user without a password. NATS parses the\n\
         # value, so a password is letters and digits starting with a letter (p + 64 hex digits). A service may\n\
         # publish its own event kinds and the JetStream requests for its own consumers, and subscribe to its own\n\
         # inbox only. Subjects are <prefix>.<kind>.<partition>; the prefix is a wildcard because tests run each on\n\
         # its own prefix (zzt_<tag>) against this same file.\n\
         authorization {\n  users = [\n",
    );
    out.push_str(&format!(
        "    # Operators and the tests' event injection: everything.\n    {{ user: {OPS_USER}, password: ${} }}\n",
        password_var(OPS_USER)
    ));
    for (service, kinds) in PUBLISHERS {
        out.push_str(&format!("    {{ user: {service}, password: ${}, permissions: {{\n", password_var(service)));
        out.push_str("      publish: { allow: [\n");
        for subject in publish_allow(service, kinds) {
            out.push_str(&format!("        \"{subject}\"\n"));
        }
        out.push_str("      ] }\n");
        out.push_str(&format!("      subscribe: {{ allow: [\"{}.>\"] }}\n", inbox_prefix(service)));
        out.push_str("    } }\n");
    }
    out.push_str("  ]\n}\n");
    out
}

#[cfg(test)]
mod tests {
    use proto::events::v1::envelope::Body;

    use super::*;

    /// Every event body, with a match that stops compiling when a kind is added: a new kind must be given a
    /// publisher here.
    fn every_kind() -> Vec<&'static str> {
        let all = [
            Body::CaseRegistered(Default::default()),
            Body::CaseDispatched(Default::default()),
            Body::CaseAccepted(Default::default()),
            Body::CaseReturned(Default::default()),
            Body::ReturnRejected(Default::default()),
            Body::CaseResolved(Default::default()),
            Body::CaseClosed(Default::default()),
            Body::CaseFollowedUp(Default::default()),
            Body::CaseReopened(Default::default()),
            Body::DeadlineMissed(Default::default()),
            Body::CaseSupervised(Default::default()),
            Body::CaseJoint(Default::default()),
            Body::SubsidyCredited(Default::default()),
            Body::CaseMerged(Default::default()),
            Body::CaseUnmerged(Default::default()),
            Body::CaseEscalated(Default::default()),
            Body::CaseRecalled(Default::default()),
        ];
        for b in &all {
            match b {
                Body::CaseRegistered(_)
                | Body::CaseDispatched(_)
                | Body::CaseAccepted(_)
                | Body::CaseReturned(_)
                | Body::ReturnRejected(_)
                | Body::CaseResolved(_)
                | Body::CaseClosed(_)
                | Body::CaseFollowedUp(_)
                | Body::CaseReopened(_)
                | Body::DeadlineMissed(_)
                | Body::CaseSupervised(_)
                | Body::CaseJoint(_)
                | Body::SubsidyCredited(_)
                | Body::CaseMerged(_)
                | Body::CaseUnmerged(_)
                | Body::CaseEscalated(_)
                | Body::CaseRecalled(_) => {}
            }
        }
        all.iter().map(crate::events::subject_of).collect()
    }

    #[test]
    fn every_event_kind_has_exactly_one_publisher() {
        for kind in every_kind() {
            let publishers: Vec<&str> =
                PUBLISHERS.iter().filter(|(_, kinds)| kinds.contains(&kind)).map(|(s, _)| *s).collect();
            assert_eq!(publishers.len(), 1, "{kind} is published by {publishers:?}");
        }
        let known = every_kind();
        for (service, kinds) in PUBLISHERS {
            for k in *kinds {
                assert!(known.contains(k), "{service} publishes {k}, which is no event kind");
            }
        }
    }

    #[test]
    fn a_service_may_publish_its_own_kinds_only() {
        let intake = publish_allow("intake", &["case.registered"]);
        assert!(intake.contains(&"*.case.registered.*".to_owned()));
        assert!(!intake.iter().any(|s| s.contains("followed_up")), "{intake:?}");
        assert!(intake.contains(&"$JS.API.CONSUMER.MSG.NEXT.*.intake-15".to_owned()));
        assert!(!intake.iter().any(|s| s.contains("subsidy")), "no other service's consumer");
        let deletes: Vec<&String> = intake.iter().filter(|s| s.contains("DELETE")).collect();
        assert_eq!(deletes, ["$JS.API.CONSUMER.DELETE.*.intake"], "only its own legacy consumer");
        assert!(!intake.iter().any(|s| s.contains("UPDATE") || s.contains("PURGE")));
    }

    /// deploy/nats/users.conf is what [`render_users_conf`] renders; `UPDATE_NATS_USERS=1` rewrites it.
    #[test]
    fn users_conf_is_rendered_from_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nats/users.conf");
        let want = render_users_conf();
        if std::env::var("UPDATE_NATS_USERS").is_ok_and(|v| v == "1") {
            std::fs::write(&path, &want).expect("write users.conf");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is stale: rewrite it with UPDATE_NATS_USERS=1 cargo test -p kit users_conf",
            path.display()
        );
    }
}

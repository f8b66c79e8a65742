//! Intake's use cases: registration (idempotent by key, replayed for a retry), reading and listing the case
//! file, unmasking a party. They orchestrate the domain, the database and the outbox; the protobuf they touch
//! is the registry client (where did the case happen) and the `case.registered` event they write.

use chrono::Utc;
use kit::FieldError;
use kit::auth::{Permission, Principal, ScopeSet};
use kit::events::Outbox;
use kit::ids::{CaseId, CaseNo, CaseRef, NodeCode};
use kit::pii::{Binding, Sealer, mask_id_number, mask_phone};
use proto::events::v1::{CaseRegistered, envelope::Body};
use proto::registry::v1::ResolveLocationRequest;
use proto::registry::v1::registry_client::RegistryClient;
use sqlx::PgPool;
use tonic::Code;

use crate::db::{self, NewStep, Registration, SealedParty};
use crate::domain::board::{Board, BoardPage};
use crate::domain::categories::{self, Category, NewCategory};
use crate::domain::{Case, CaseFile, CaseState, NewCase, Place};
use crate::error::{Error, Result};
use crate::inflight::{InFlight, Turn};

mod merges;
pub use merges::{Duplicate, likely_duplicates};

/// The answer to a registration whose idempotency key was used for another.
pub const KEY_REUSED: &str = "idempotency_key was already used for a different registration";

/// The page size of a case list when the request names none, and the most it may ask for.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

/// A registration's answer: the case file, whether it replayed an earlier one, and what it may duplicate.
pub struct Registered {
    pub file: CaseFile,
    pub replayed: bool,
    pub likely_duplicates: Vec<Duplicate>,
}

#[derive(Clone)]
pub struct Cases {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub registry: RegistryClient<kit::grpc::Channel>,
    pub sealer: Sealer,
    /// How many parties' fields one principal may unmask in an hour (UNMASK_PER_HOUR).
    pub unmask_per_hour: i64,
    /// Registrations under way here, by idempotency key.
    pub inflight: InFlight,
}

impl Cases {
    /// Registers the case, or returns the one first registered with the same idempotency key (`true`). The
    /// operator is the principal; the place must be within its registration scope.
    /// The likely duplicates come with it ([`Self::duplicates_of`]), among the cases the operator may read.
    pub async fn register(&self, new: NewCase, who: &Principal) -> Result<Registered> {
        let digest = fingerprint(&self.sealer, &new);
        let readable = who.scope(Permission::ReadCase);
        if let Some(existing) = self.replay(&new, &digest, &readable).await? {
            return self.replayed(existing, &readable).await;
        }
        let turn = self.inflight.enter(&new.idempotency_key);
        if matches!(turn, Turn::Follower(_)) {
            turn.wait().await;
            if let Some(existing) = self.replay(&new, &digest, &readable).await? {
                return self.replayed(existing, &readable).await;
            }
            // The other registration failed; this one tries for itself, and the database's unique key decides.
        }
        let place = self.resolve(&new).await?;
        if !who.scope(Permission::Register).covers_place(&place.area_path, &place.grid_code) {
            return Err(Error::denied("the case's place is outside your registration scope"));
        }
        self.insert(&new, &digest, &place, &readable).await
    }

    /// Numbers the case and writes it in one transaction: the case, its parties (sealed), the first step of its
    /// file and `case.registered` in the outbox; then the likely duplicates, on the same connection.
    async fn insert(&self, new: &NewCase, digest: &[u8], place: &Place, readable: &ScopeSet) -> Result<Registered> {
        let mut conn = self.pool.acquire().await?;
        // Category versions are only ever added, so the one read here is still current at commit.
        let (category_version, category_name) =
            db::category_version(&mut conn, &new.category_code, new.kind.category_kind())
                .await?
                .ok_or_else(|| FieldError::new("category_code", format!("is not an active {} category", new.kind)))?;
        let now = Utc::now();
        let prefix = kit::division::significant(&new.center_code);
        // The number is taken in a statement of its own, before the registering transaction: every registration
        // of a center's day updates the same counter row, and inside the transaction each held that row's lock
        // until its commit, so a center's registrations ran one at a time. A registration that fails after this
        // leaves a gap; numbers stay unique and are never reused, which is what DOMAIN asks of them.
        let seq = db::next_seq(&mut conn, prefix, &kit::time::local_date(now)).await?;
        let number = CaseNo::issue(prefix, &kit::time::local_date(now), seq);
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        kit::audit::stage(&mut tx).await?;
        let id = CaseId::random();
        let reg = Registration { id, digest, case_no: &number, category_version, at: now, new, place };
        let Some(case) = db::insert_case(&mut tx, &reg).await? else {
            // A concurrent registration with the same key won; this one writes nothing. The connection goes
            // back before `replay` takes one.
            drop(tx);
            drop(conn);
            let existing = self.replay(new, digest, readable).await?;
            return self.replayed(existing.ok_or_else(|| case_not_found(&new.idempotency_key))?, readable).await;
        };
        let (parties, phone_indexes) = self.insert_parties(&mut tx, id, new, now).await?;
        let detail = format!("受理登记 {number} via {} at center {}", new.channel, new.center_code);
        let step = NewStep {
            case_id: id,
            at: now,
            actor: &new.operator_id,
            action: "registered",
            from_state: None,
            to_state: CaseState::Registered,
            detail: &detail,
            source: "intake",
            event_id: None,
        };
        let registered = db::append_step(&mut tx, &step).await?;
        let event = registered_event(new, place, &number, category_name);
        self.outbox.add(&mut tx, id, &new.operator_id, Body::CaseRegistered(event)).await?;
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(case_id = %id, case_no = %number, "case registered");
        // The file is answered from what the transaction wrote (the rows as the database returned them), not
        // read back: five statements fewer on the busiest call. The duplicate search runs on the same
        // connection with the phone indexes just written (a checkout and a read fewer).
        let file = merges::new_file(case, parties, vec![registered]);
        let likely_duplicates = merges::likely_duplicates_on(&mut conn, &file.case, readable, phone_indexes).await?;
        Ok(Registered { file, replayed: false, likely_duplicates })
    }

    /// Writes the parties with their personal data sealed (bound to their row) and masked, and answers them as
    /// the file shows them, with the phone indexes the duplicate search reads.
    async fn insert_parties(
        &self,
        tx: &mut sqlx::PgConnection,
        id: CaseId,
        new: &NewCase,
        now: chrono::DateTime<Utc>,
    ) -> Result<(Vec<crate::domain::Party>, Vec<Vec<u8>>)> {
        let mut parties = Vec::with_capacity(new.parties.len());
        let mut phone_indexes = Vec::new();
        for (i, p) in new.parties.iter().enumerate() {
            let ordinal = i32::try_from(i).unwrap_or(i32::MAX);
            let row = party_row(id, ordinal);
            let at = |column| Binding { table: "case_parties", column, row: &row };
            let party = SealedParty {
                name: &p.name,
                role: p.role,
                phone_sealed: p.phone.as_deref().map(|v| self.sealer.seal(v, &at("phone"))),
                phone_masked: p.phone.as_deref().map(mask_phone).unwrap_or_default(),
                id_number_sealed: p.id_number.as_deref().map(|v| self.sealer.seal(v, &at("id_number"))),
                id_number_masked: p.id_number.as_deref().map(mask_id_number).unwrap_or_default(),
                phone_index: p.phone.as_deref().and_then(|v| crate::domain::duplicates::phone_index(&self.sealer, v)),
            };
            parties.push(db::insert_party(tx, id, ordinal, &party, now).await?);
            phone_indexes.extend(party.phone_index);
        }
        Ok((parties, phone_indexes))
    }

    /// The answer to a registration that replays an earlier one: its case, and the likely duplicates as they
    /// are now.
    async fn replayed(&self, file: CaseFile, readable: &ScopeSet) -> Result<Registered> {
        let likely_duplicates = self.duplicates_of(&file.case, readable).await?;
        Ok(Registered { file, replayed: true, likely_duplicates })
    }

    /// The case first registered under the key, if this registration is identical to it; ALREADY_EXISTS if it
    /// differs in anything.
    async fn replay(&self, new: &NewCase, digest: &[u8], readable: &ScopeSet) -> Result<Option<CaseFile>> {
        // The connection goes back before `file` takes one, so a burst of replays cannot exhaust the pool.
        let keyed = {
            let mut conn = self.pool.acquire().await?;
            db::keyed_case(&mut conn, &new.idempotency_key).await?
        };
        let Some(case) = keyed else {
            return Ok(None);
        };
        let same = match &case.registration_digest {
            Some(stored) => stored.as_slice() == digest,
            None => case.center_code == *new.center_code && case.category_code == new.category_code,
        };
        if !same {
            return Err(key_reused());
        }
        // The operator is part of the digest, so only the same principal replays; reading it back still takes
        // read scope (a client that may register but not read gets the case through its own-client scope).
        match self.file(&CaseRef::Id(case.id), readable).await {
            Err(Error::NotFound(_)) => Err(key_reused()),
            other => {
                kit::audit::unchanged();
                other.map(Some)
            }
        }
    }

    /// Asks the registry where the case happened and checks the registering center is over that place.
    async fn resolve(&self, new: &NewCase) -> Result<Place> {
        let request = ResolveLocationRequest { location_code: new.location_code.to_string() };
        let answer = match self.registry.clone().resolve_location(request).await {
            Ok(r) => r.into_inner(),
            Err(s) if matches!(s.code(), Code::NotFound | Code::InvalidArgument) => {
                return Err(FieldError::new("location_code", "is not a known grid or village").into());
            }
            Err(s) => {
                tracing::warn!(status = %s, "registry call failed");
                return Err(Error::Unavailable("the grid registry"));
            }
        };
        let place = Place {
            grid_code: answer.grid_code,
            // The registry answered it: the code of a village in its tree.
            village_code: NodeCode::from_stored(answer.village_code),
            area_path: answer.path.iter().map(|n| n.code.clone()).collect(),
            centers: answer.path.iter().filter(|n| n.has_center).map(|n| n.code.clone()).collect(),
            names: answer.path.iter().map(|n| n.name.clone()).collect(),
        };
        if !place.centers.iter().any(|c| new.center_code == c.as_str()) {
            return Err(FieldError::new("center_code", "is not a center over the case's location").into());
        }
        Ok(place)
    }

    /// The case file, if `scope` reaches it; a case outside scope is NOT_FOUND, exactly like a missing one.
    pub async fn file(&self, case_ref: &CaseRef, scope: &ScopeSet) -> Result<CaseFile> {
        let mut conn = self.pool.acquire().await?;
        let case = db::case_by_ref(&mut conn, case_ref)
            .await?
            .filter(|c| crate::scope::covers(scope, c))
            .ok_or_else(|| case_not_found(case_ref))?;
        let parties = db::parties(&mut conn, case.id).await?;
        let timeline = db::timeline(&mut conn, case.id).await?;
        let (merged_into_no, merged_cases, reporters) = merges::ties(&mut conn, &case, scope).await?;
        Ok(CaseFile { case, parties, timeline, merged_into_no, merged_cases, reporters })
    }

    pub async fn list(
        &self,
        center_code: &str,
        scope: &ScopeSet,
        page_size: u32,
        token: &str,
    ) -> Result<(Vec<Case>, String)> {
        let after = if token.is_empty() { None } else { Some(decode_token(token)?) };
        let limit = kit::page::size(page_size, DEFAULT_PAGE, MAX_PAGE);
        let mut conn = self.pool.acquire().await?;
        let rows = db::list_cases(&mut conn, center_code, scope, after, limit).await?;
        let next = match rows.last() {
            Some(last) if rows.len() as i64 == limit => {
                format!("{}|{}", last.registered_at.timestamp_micros(), last.id)
            }
            _ => String::new(),
        };
        Ok((rows, next))
    }

    /// One party's phone or ID number in full. The case must be within the caller's unmask scope (else it is
    /// NOT_FOUND, or PERMISSION_DENIED when the caller can read it); a follow-up clerk sees phones only.
    pub async fn unmask(&self, who: &Principal, case_id: CaseId, party: u32, id_number: bool) -> Result<String> {
        let case = self.file(&CaseRef::Id(case_id), &who.scope(Permission::ReadCase)).await?.case;
        if !crate::scope::covers(&who.scope(Permission::Unmask), &case) {
            return Err(Error::denied("unmasking this case's parties"));
        }
        let only_phone = who
            .grants
            .iter()
            .filter(|g| kit::auth::policy::scope_of(g.role, Permission::Unmask).is_some())
            .all(|g| g.role == kit::auth::Role::FollowUpClerk);
        if id_number && only_phone {
            return Err(Error::denied("a follow-up clerk sees phone numbers only"));
        }
        let ordinal = i32::try_from(party).unwrap_or(i32::MAX) - 1;
        // The count, the read and the record of it commit together: an unmask is never unrecorded.
        let mut conn = kit::audit::begin(&self.pool).await?;
        // Counted before the read, in one statement: parallel reads cannot all see the same count.
        let used = db::take_unmask(&mut conn, &who.subject).await?;
        if i64::from(used) > self.unmask_per_hour {
            return Err(Error::RateLimited("unmasking: the hourly limit is reached".into()));
        }
        let sealed = db::sealed_party_field(&mut conn, case_id, ordinal, id_number)
            .await?
            .ok_or_else(|| FieldError::new("party", "no such party in the case"))?
            .ok_or_else(|| FieldError::new("field", "the party gave none"))?;
        let row = party_row(case_id, ordinal);
        let column = if id_number { "id_number" } else { "phone" };
        let plain = self.sealer.open(&sealed, &Binding { table: "case_parties", column, row: &row })?;
        conn.commit().await?;
        Ok(plain)
    }

    /// The case board: a page of the cases within `scope` the board asks for, and its counts.
    pub async fn board(&self, scope: &ScopeSet, b: &Board) -> Result<BoardPage> {
        let after = b.after()?;
        let mut conn = self.pool.acquire().await?;
        let cases = db::board_page(&mut conn, scope, b, after.as_ref()).await?;
        let mut page = db::board_counts(&mut conn, scope, b).await?;
        page.next_page_token = b.next_token(&cases);
        page.cases = cases;
        Ok(page)
    }

    /// The current version of each code, by code; inactive ones only when asked for.
    pub async fn categories(&self, include_inactive: bool) -> Result<Vec<Category>> {
        let mut conn = self.pool.acquire().await?;
        Ok(db::current_categories(&mut conn, include_inactive).await?)
    }

    /// Adds the next version of the category (1 for a new code), recording the caller as its author.
    pub async fn put_category(&self, p: &Principal, new: NewCategory) -> Result<Category> {
        if !categories::may_write_code_table(p) {
            return Err(Error::denied(
                "the category table is deployment-wide: it needs a grant over the whole deployment or a prefecture",
            ));
        }
        let mut tx = kit::audit::begin(&self.pool).await?;
        let row = db::insert_next_version(&mut tx, &new, p.actor()).await?;
        tx.commit().await?;
        tracing::info!(code = %row.code, version = row.version, actor = p.actor(), "category version added");
        Ok(row)
    }
}

/// The one answer for a case that is not there or not the caller's to see.
fn case_not_found(case_ref: &impl std::fmt::Display) -> Error {
    Error::not_found(format!("case {case_ref}"))
}

fn key_reused() -> Error {
    Error::AlreadyExists(KEY_REUSED.into())
}

/// `case.registered` as the consumers read it: the case's words, its place with names (slips print names), and
/// the category's name at the version it was registered under.
fn registered_event(new: &NewCase, place: &Place, number: &str, category_name: String) -> CaseRegistered {
    CaseRegistered {
        case_no: number.to_owned(),
        channel: new.channel.into(),
        kind: new.kind.into(),
        category_code: new.category_code.clone(),
        urgency: new.urgency.into(),
        grid_code: place.grid_code.clone(),
        village_code: place.village_code.to_string(),
        area_path: place.area_path.clone(),
        center_code: new.center_code.to_string(),
        reporter_id: new.reporter_id.clone(),
        center_name: place.name_of(&new.center_code).to_owned(),
        area_names: place.names.clone(),
        category_name,
    }
}

/// A party's row as its sealed values are bound to it: the case and the party's position.
fn party_row(case_id: CaseId, ordinal: i32) -> String {
    format!("{case_id}/{ordinal}")
}

/// The registration as parsed (trimmed, normalized), every field but the key, as one keyed digest.
fn fingerprint(sealer: &Sealer, n: &NewCase) -> Vec<u8> {
    let count = n.parties.len().to_string();
    let mut parts = vec![
        n.center_code.as_str(),
        n.channel.as_str(),
        n.kind.as_str(),
        &n.category_code,
        n.urgency.as_str(),
        &n.title,
        &n.description,
        &n.location_code,
        &n.reporter_id,
        &n.operator_id,
        &count,
    ];
    for p in &n.parties {
        parts.extend([
            p.name.as_str(),
            p.role.as_str(),
            p.phone.as_deref().unwrap_or_default(),
            p.id_number.as_deref().unwrap_or_default(),
        ]);
    }
    sealer.fingerprint(&parts)
}

fn decode_token(token: &str) -> Result<(chrono::DateTime<Utc>, CaseId)> {
    let bad = kit::page::bad_token;
    let (micros, id) = token.split_once('|').ok_or_else(bad)?;
    let at = micros.parse::<i64>().ok().and_then(chrono::DateTime::from_timestamp_micros).ok_or_else(bad)?;
    let id = CaseId::from_stored(uuid::Uuid::parse_str(id).map_err(|_| bad())?);
    Ok((at, id))
}

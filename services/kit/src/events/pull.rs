//! A partition's pulls from JetStream, one at a time and answered on one subscription (see [`Puller`]).

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;

use super::consume::Stop;

type PullConsumer = jetstream::consumer::Consumer<pull::Config>;

/// The messages a pull brought, and the error that cut it short, if any.
pub(super) type Pulled = (Vec<jetstream::Message>, Option<String>);

/// One partition's pulls, answered on one wildcard subscription: pull k asks for its answers at `<inbox>.k`. A
/// subscription per pull (the client's `fetch` and `batch`) cost NATS a SUB and an UNSUB per pull, two pulls
/// per event when a partition is quiet.
///
/// Pulls run one at a time, and a pull ends when it brought all it asked for or the server ended it with a
/// status (404 nothing there, 408 expired). One the server never answers (NATS stalled or restarted between
/// the request and its answer, fault F4) is given up [`PULL_GRACE`] after it expired: the server no longer
/// delivers to an expired pull, so nothing is delivered to one that was given up, and a late status for it is
/// told apart by its subject (a status comes under the pull's reply subject) and dropped.
pub(super) struct Puller {
    consumer: PullConsumer,
    context: jetstream::Context,
    inbox: String,
    answers: async_nats::Subscriber,
    pulls: u64,
}

/// How long the server keeps a pull waiting.
const PULL_EXPIRES: Duration = Duration::from_secs(1);

/// How long after a pull expired the client still waits for its answer.
const PULL_GRACE: Duration = Duration::from_secs(5);

impl Puller {
    pub(super) async fn new(js: &jetstream::Context, consumer: PullConsumer) -> Result<Puller, Stop> {
        let client = js.client();
        let inbox = client.new_inbox();
        let answers = client.subscribe(format!("{inbox}.*")).await?;
        Ok(Puller { consumer, context: js.clone(), inbox, answers, pulls: 0 })
    }

    /// Up to `n` messages: those there now when `now`, else waiting up to [`PULL_EXPIRES`] for them.
    pub(super) async fn pull(&mut self, n: usize, now: bool) -> Result<Pulled, Stop> {
        use async_nats::StatusCode;
        self.pulls += 1;
        let reply = async_nats::Subject::from(format!("{}.{}", self.inbox, self.pulls));
        let request = pull::BatchConfig { batch: n, expires: Some(PULL_EXPIRES), no_wait: now, ..Default::default() };
        self.consumer.request_batch(request, reply.clone()).await?;
        let deadline = tokio::time::Instant::now() + PULL_EXPIRES + PULL_GRACE;
        let mut out = Vec::new();
        while out.len() < n {
            let answer = match tokio::time::timeout_at(deadline, self.answers.next()).await {
                Ok(Some(answer)) => answer,
                Ok(None) => return Ok((out, Some("the pulls' subscription closed".into()))),
                Err(_) => {
                    tracing::debug!(pull = self.pulls, "a pull was not answered; given up");
                    break;
                }
            };
            match answer.status {
                // A message comes under its own subject, a status under the pull's reply subject.
                None | Some(StatusCode::OK) => {
                    out.push(jetstream::Message { message: answer, context: self.context.clone() });
                }
                // The late status of a pull given up.
                Some(_) if answer.subject != reply => {}
                Some(StatusCode::NOT_FOUND | StatusCode::TIMEOUT) => break,
                Some(StatusCode::IDLE_HEARTBEAT) => {}
                Some(status) => {
                    let why = answer.description.unwrap_or_default();
                    return Ok((out, Some(format!("a pull ended with {status} {why}"))));
                }
            }
        }
        Ok((out, None))
    }
}

//! The operator's side: long-polls the change-event queues, maps each event to the pipeline
//! that manages the resource it names, and asks the controller to reconcile that pipeline.
//! While every queue answers, the periodic resync is only a backstop; a queue that fails
//! brings the short resync back until it answers again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use kube::runtime::reflector::ObjectRef;

use super::change::{principal, ChangeEvent};
use super::index::Index;
use crate::api::SalesPipeline;
use crate::aws::error::AwsResultExt;
use crate::aws::{AwsError, CallLog};
use crate::names::Names;

/// Longest wait of one ReceiveMessage (SQS's maximum long poll).
pub const LONG_POLL: Duration = Duration::from_secs(20);
/// Messages per ReceiveMessage (SQS's maximum).
const BATCH: i32 = 10;
/// Consecutive failed receives after which a queue counts as down (a permanent refusal, such
/// as AccessDenied or a queue that does not exist, at once).
const FAILURES_DOWN: u32 = 3;
/// Longest pause between receives of a queue that fails.
const RETRY_CAP: Duration = Duration::from_secs(30);
/// Change events kept per pipeline until its next pass reads them.
const PENDING_CAP: usize = 20;
/// The session names the operator gives the roles it assumes (AwsIdentities, `--assume-role`).
pub const OWN_SESSION_PREFIX: &str = "sales-operator.";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What became of the messages received, for the metrics.
#[derive(Debug, Default)]
pub struct Counts {
    /// Mapped to a pipeline and queued for a reconcile.
    pub matched: AtomicU64,
    /// Made by the operator itself: nothing to do.
    pub own: AtomicU64,
    /// About a resource no watched pipeline manages.
    pub unknown: AtomicU64,
    /// Not a change event the operator can read: logged and dropped.
    pub malformed: AtomicU64,
}

/// Where the pipelines to reconcile go: the namespace a controller watches (`None`: all) and
/// its stream.
type Trigger = (Option<String>, UnboundedSender<ObjectRef<SalesPipeline>>);

/// The change-event feed shared by the consumers and the controller.
#[derive(Debug)]
pub struct Feed {
    index: Mutex<Index>,
    /// The operator's own region, once known.
    own_region: OnceLock<String>,
    pending: Mutex<HashMap<ObjectRef<SalesPipeline>, Vec<ChangeEvent>>>,
    /// The events passes have read since the pipeline was last settled: a drift found a pass or
    /// two after its event (a resource AWS was still deleting) is still explained.
    recent: Mutex<HashMap<ObjectRef<SalesPipeline>, Vec<ChangeEvent>>>,
    /// The operator's own principals (account, resource of the ARN), as STS named them.
    own: Mutex<HashSet<(String, String)>>,
    /// Per queue: whether its last receive worked.
    up: Vec<AtomicBool>,
    queues: Vec<String>,
    triggers: Mutex<Vec<Trigger>>,
    pub counts: Counts,
}

/// Where a queue's messages go: the queue URL and what a change means.
pub enum Seen {
    /// Queued for a reconcile of this pipeline.
    Matched(ObjectRef<SalesPipeline>),
    Own,
    Unknown,
    /// A failed call: no change.
    NoChange,
}

impl Feed {
    /// A feed for `queues` (none: no events, the resync alone finds drift).
    pub fn new(queues: Vec<String>) -> Self {
        Self {
            index: Mutex::default(),
            own_region: OnceLock::new(),
            pending: Mutex::default(),
            recent: Mutex::default(),
            own: Mutex::default(),
            up: queues.iter().map(|_| AtomicBool::new(false)).collect(),
            queues,
            triggers: Mutex::default(),
            counts: Counts::default(),
        }
    }

    /// The queue URLs it reads.
    pub fn queues(&self) -> &[String] {
        &self.queues
    }

    /// A stream of pipelines to reconcile for the controller of `namespace` (`None`: all).
    pub fn subscribe(&self, namespace: Option<String>) -> UnboundedReceiver<ObjectRef<SalesPipeline>> {
        let (tx, rx) = unbounded();
        lock(&self.triggers).push((namespace, tx));
        rx
    }

    /// Whether every queue answers (and there is at least one): then events find drift and the
    /// resync is only a backstop.
    pub fn healthy(&self) -> bool {
        !self.up.is_empty() && self.up.iter().all(|u| u.load(Ordering::SeqCst))
    }

    /// Whether queue `i` answered its last receive.
    pub fn queue_up(&self, i: usize) -> bool {
        self.up.get(i).is_some_and(|u| u.load(Ordering::SeqCst))
    }

    /// Records that the operator's own calls are made as `arn` (STS GetCallerIdentity).
    pub fn own_principal(&self, arn: &str) {
        if let Some((account, resource)) = principal(arn) {
            lock(&self.own).insert((account.to_string(), resource.to_string()));
        }
    }

    /// Records `sp`'s resources (its names in `account` and `region`), as its pass resolved them.
    pub fn manages(&self, sp: &SalesPipeline, account: &str, region: &str, names: &Names) {
        lock(&self.index).set(sp, account, region, names);
    }

    /// The region of pipelines that name none and whose status records none: the operator's.
    pub fn own_region(&self, region: Option<&str>) {
        if let Some(region) = region {
            let _ = self.own_region.set(region.to_string());
        }
    }

    /// Records the names `sp` uses as its spec gives them, as soon as the watch sees it (in the
    /// region its status records, else its spec's, else the operator's).
    pub fn watched(&self, sp: &SalesPipeline) {
        let recorded = sp.status.as_ref().and_then(|s| s.region.as_deref());
        let region = recorded.or(sp.spec.region.as_deref()).or(self.own_region.get().map(String::as_str));
        if let Some(region) = region {
            lock(&self.index).watched(sp, region);
        }
    }

    /// A relist of `namespace` (`None`: all) saw only `seen`: the others were deleted meanwhile.
    pub fn relisted(&self, namespace: Option<&str>, seen: &HashSet<ObjectRef<SalesPipeline>>) {
        let gone = |p: &ObjectRef<SalesPipeline>| {
            namespace.is_none_or(|ns| p.namespace.as_deref() == Some(ns)) && !seen.contains(p)
        };
        lock(&self.index).remove_where(gone);
    }

    /// The pipelines older than `sp` that want one of its `names` in `region`, oldest first, each
    /// with the names they share and whether it acts in `account` (`None`: not known yet).
    pub fn older_claimants(
        &self,
        sp: &SalesPipeline,
        region: &str,
        names: &Names,
        account: Option<&str>,
    ) -> Vec<(ObjectRef<SalesPipeline>, Vec<String>, Option<bool>)> {
        let index = lock(&self.index);
        let claimants = index.older_claimants(sp, region, names);
        let in_account = |p: &ObjectRef<SalesPipeline>| account.and_then(|a| index.in_account(p, a));
        claimants.into_iter().map(|(p, shared)| (p.clone(), shared, in_account(&p))).collect()
    }

    /// Forgets `pipeline` (deleted).
    pub fn forget(&self, pipeline: &ObjectRef<SalesPipeline>) {
        lock(&self.index).remove(pipeline);
        lock(&self.pending).remove(pipeline);
        lock(&self.recent).remove(pipeline);
    }

    /// Every pipeline it knows the resources of.
    pub fn pipelines(&self) -> Vec<ObjectRef<SalesPipeline>> {
        lock(&self.index).pipelines()
    }

    /// The change events that came for `pipeline` since it was last settled, oldest first; those
    /// that came since its last pass are no longer pending.
    pub fn take_pending(&self, pipeline: &ObjectRef<SalesPipeline>) -> Vec<ChangeEvent> {
        let new = lock(&self.pending).remove(pipeline).unwrap_or_default();
        let mut recent = lock(&self.recent);
        let events = recent.entry(pipeline.clone()).or_default();
        events.extend(new);
        let extra = events.len().saturating_sub(PENDING_CAP);
        events.drain(..extra);
        events.clone()
    }

    /// `pipeline` is in sync again, or its drift was reported: the events read so far explain
    /// nothing more.
    pub fn settled(&self, pipeline: &ObjectRef<SalesPipeline>) {
        lock(&self.recent).remove(pipeline);
    }

    /// Whether change events wait for `pipeline`'s next pass.
    pub fn has_pending(&self, pipeline: &ObjectRef<SalesPipeline>) -> bool {
        lock(&self.pending).contains_key(pipeline)
    }

    /// Whether `event` is a call the operator made.
    fn own_call(&self, event: &ChangeEvent) -> bool {
        let Some((account, resource)) = principal(&event.actor) else { return false };
        let session = resource.strip_prefix("assumed-role/").and_then(|r| r.split_once('/')).map(|(_, s)| s);
        session.is_some_and(|s| s.starts_with(OWN_SESSION_PREFIX))
            || lock(&self.own).contains(&(account.to_string(), resource.to_string()))
    }

    /// Handles one message body: an own call or an unknown resource is dropped; a change to a
    /// managed resource is kept for the pipeline's next pass, which is asked for.
    pub fn handle(&self, body: &str) -> Result<Seen, super::change::Malformed> {
        let Some(event) = ChangeEvent::parse(body)? else { return Ok(Seen::NoChange) };
        if self.own_call(&event) {
            self.counts.own.fetch_add(1, Ordering::Relaxed);
            return Ok(Seen::Own);
        }
        let Some(pipeline) = lock(&self.index).find(&event) else {
            self.counts.unknown.fetch_add(1, Ordering::Relaxed);
            return Ok(Seen::Unknown);
        };
        {
            let mut pending = lock(&self.pending);
            let events = pending.entry(pipeline.clone()).or_default();
            events.push(event);
            if events.len() > PENDING_CAP {
                events.remove(0);
            }
        }
        self.trigger(pipeline.clone());
        self.counts.matched.fetch_add(1, Ordering::Relaxed);
        Ok(Seen::Matched(pipeline))
    }

    /// Asks the controller that watches `pipeline`'s namespace to reconcile it (requests for one
    /// pipeline that wait together are one reconcile).
    pub fn trigger(&self, pipeline: ObjectRef<SalesPipeline>) {
        let mut triggers = lock(&self.triggers);
        triggers.retain(|(_, tx)| !tx.is_closed());
        let namespace = pipeline.namespace.clone();
        if let Some((_, tx)) = triggers.iter().find(|(ns, _)| ns.is_none() || *ns == namespace) {
            let _ = tx.unbounded_send(pipeline);
        }
    }

    fn set_up(&self, i: usize, up: bool) -> bool {
        self.up.get(i).is_some_and(|u| u.swap(up, Ordering::SeqCst) != up)
    }
}

/// What a consumer tells the operator about its queue's health.
pub trait Watcher: Send + Sync {
    /// The queue stopped answering (`why`): the short resync is back.
    fn down(&self, queue: &str, why: &str);
    /// The queue answers again: events drive reconciles.
    fn up(&self, queue: &str);
}

/// The region of a queue URL (`https://sqs.eu-west-1.amazonaws.com/1/q`), if it names one.
pub fn queue_region(url: &str) -> Option<&str> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let mut labels = host.split('.');
    (labels.next()? == "sqs").then_some(())?;
    labels.next().filter(|r| !r.is_empty())
}

/// A queue as `--events-queue` names it: its URL, or its ARN (then its region and owner are
/// explicit, and its URL is asked of SQS: GetQueueUrl), for endpoints whose URLs name no region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Queue {
    Url(String),
    Arn { region: String, account: String, name: String },
}

impl Queue {
    /// `value` as a queue URL (`https://...`) or ARN (`arn:aws:sqs:REGION:ACCOUNT:NAME`).
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.starts_with("https://") || value.starts_with("http://") {
            return Ok(Self::Url(value.to_string()));
        }
        let parts: Vec<&str> = value.split(':').collect();
        match parts.as_slice() {
            ["arn", partition, "sqs", region, account, name]
                if partition.starts_with("aws") && !region.is_empty() && account.len() == 12 && !name.is_empty() =>
            {
                Ok(Self::Arn { region: region.to_string(), account: account.to_string(), name: name.to_string() })
            }
            _ => Err(format!(
                "{value} is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME) or ARN \
                 (arn:aws:sqs:REGION:ACCOUNT:NAME)"
            )),
        }
    }

    /// The region its calls go to, if it names one.
    pub fn region(&self) -> Option<&str> {
        match self {
            Self::Url(url) => queue_region(url),
            Self::Arn { region, .. } => Some(region),
        }
    }
}

/// Validates an `--events-queue` value (clap's value parser).
pub fn queue_arg(value: &str) -> Result<String, String> {
    Queue::parse(value).map(|_| value.to_string())
}

/// The URL of `queue`: as given, or asked of SQS by name and owner.
async fn queue_url(client: &aws_sdk_sqs::Client, queue: &Queue) -> Result<String, AwsError> {
    match queue {
        Queue::Url(url) => Ok(url.clone()),
        Queue::Arn { account, name, .. } => {
            let out = client.get_queue_url().queue_name(name).queue_owner_aws_account_id(account).send().await;
            let url = out.aws("GetQueueUrl")?.queue_url;
            url.ok_or_else(|| AwsError::permanent("GetQueueUrl", format!("SQS gave no URL for queue {name}")))
        }
    }
}

/// Reads queue `i` of `feed` until the process ends: long polls of [`BATCH`] messages, each
/// handled and then deleted (also a malformed one, once logged). A message whose delete fails
/// comes back after the queue's visibility timeout; handling it twice costs one reconcile.
pub async fn consume(feed: Arc<Feed>, i: usize, client: aws_sdk_sqs::Client, watcher: Arc<dyn Watcher>) {
    let Some(name) = feed.queues.get(i).cloned() else { return };
    let queue = match Queue::parse(&name) {
        Ok(queue) => queue,
        Err(e) => {
            watcher.down(&name, &e);
            return;
        }
    };
    let url = &name;
    let mut failures = 0u32;
    // Whether the queue answered its last receive; `None` until the first answer or refusal.
    let mut state: Option<bool> = None;
    let mut known: Option<String> = None;
    loop {
        let received = match &known {
            Some(url) => Ok(url.clone()),
            None => queue_url(&client, &queue).await,
        };
        let received = match received {
            Ok(at) => {
                known = Some(at.clone());
                client
                    .receive_message()
                    .queue_url(at)
                    .max_number_of_messages(BATCH)
                    // Not waiting until the queue is known to answer: up (or down) at once.
                    .wait_time_seconds(if state == Some(true) { LONG_POLL.as_secs() as i32 } else { 0 })
                    .send()
                    .await
                    .aws("ReceiveMessage")
            }
            Err(e) => Err(e),
        };
        let messages = match received {
            Ok(out) => {
                failures = 0;
                if state != Some(true) {
                    feed.set_up(i, true);
                    tracing::info!(queue = %url, "change events: reading the queue; the periodic resync is a backstop");
                    if state == Some(false) {
                        watcher.up(url);
                    }
                    state = Some(true);
                }
                out.messages.unwrap_or_default()
            }
            Err(e) => {
                if matches!(queue, Queue::Arn { .. }) {
                    // Asked again next time: a queue made again may have another URL.
                    known = None;
                }
                failures = failures.saturating_add(1);
                let down = e.is_permanent() || failures >= FAILURES_DOWN;
                if down && state != Some(false) {
                    feed.set_up(i, false);
                    state = Some(false);
                    tracing::warn!(queue = %url, error = %e, "change events: cannot read the queue; falling back to the periodic resync");
                    watcher.down(url, &e.to_string());
                } else {
                    tracing::debug!(queue = %url, error = %e, "change events: receive failed");
                }
                tokio::time::sleep(retry_delay(failures)).await;
                continue;
            }
        };
        let mut done = Vec::new();
        for (n, message) in messages.into_iter().enumerate() {
            match message.body.as_deref().map(|body| feed.handle(body)) {
                Some(Ok(Seen::Matched(pipeline))) => {
                    tracing::debug!(queue = %url, pipeline = %pipeline, "change event: reconcile requested");
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    feed.counts.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(queue = %url, error = %e, "change events: dropped a message that is not a change event");
                }
                None => {
                    feed.counts.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Some(handle) = message.receipt_handle {
                done.push((n, handle));
            }
        }
        let at = known.as_deref().unwrap_or(url);
        if let Err(e) = delete(&client, at, done).await {
            tracing::warn!(queue = %url, error = %e, "change events: cannot delete handled messages; they come back after the visibility timeout");
        }
    }
}

async fn delete(client: &aws_sdk_sqs::Client, url: &str, done: Vec<(usize, String)>) -> Result<(), AwsError> {
    if done.is_empty() {
        return Ok(());
    }
    let entries = done
        .into_iter()
        .map(|(n, handle)| {
            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id(n.to_string())
                .receipt_handle(handle)
                .build()
                .map_err(|e| AwsError::permanent("DeleteMessageBatch", e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out = client.delete_message_batch().queue_url(url).set_entries(Some(entries)).send().await;
    let out = out.aws("DeleteMessageBatch")?;
    match out.failed.first() {
        Some(f) => Err(AwsError::permanent("DeleteMessageBatch", f.message.clone().unwrap_or_else(|| f.code.clone()))),
        None => Ok(()),
    }
}

fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(5)).min(RETRY_CAP)
}

/// The SQS client of `queue` (a URL or ARN): its region from it (else the operator's), with the
/// operator's credentials and call counting.
pub fn client(sdk: &aws_config::SdkConfig, queue: &str, calls: CallLog) -> aws_sdk_sqs::Client {
    let mut conf = aws_sdk_sqs::config::Builder::from(sdk).interceptor(calls);
    if let Some(region) = Queue::parse(queue).ok().as_ref().and_then(Queue::region) {
        conf = conf.region(aws_config::Region::new(region.to_string()));
    }
    aws_sdk_sqs::Client::from_conf(conf.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SalesPipelineSpec;
    use futures::StreamExt;

    fn body(actor: &str, stream: &str) -> String {
        serde_json::json!({
            "detail-type": super::super::change::DETAIL_TYPE, "source": "aws.kinesis",
            "detail": {
                "eventName": "DecreaseStreamRetentionPeriod", "eventTime": "2026-12-06T08:00:00Z",
                "awsRegion": "eu-west-1", "recipientAccountId": "1",
                "userIdentity": {"arn": actor}, "requestParameters": {"streamName": stream},
            },
        })
        .to_string()
    }

    #[tokio::test]
    async fn an_outside_change_queues_its_pipeline_and_the_operators_own_calls_do_not() {
        let feed = Feed::new(vec!["q".into()]);
        let mut triggers = feed.subscribe(Some("shop".into()));
        let mut others = feed.subscribe(Some("other".into()));
        let mut sp = SalesPipeline::new("a", SalesPipelineSpec::default());
        sp.metadata.namespace = Some("shop".into());
        let a = ObjectRef::from(&sp);
        let names = Names::derive("shop", "a", &SalesPipelineSpec::default(), "eu-west-1");
        feed.manages(&sp, "1", "eu-west-1", &names);
        feed.own_principal("arn:aws:sts::1:user/operator");

        let alice = "arn:aws:sts::1:assumed-role/admin/alice";
        assert!(matches!(feed.handle(&body(alice, &names.stream)), Ok(Seen::Matched(p)) if p == a));
        assert_eq!(triggers.next().await, Some(a.clone()));
        assert!(others.try_recv().is_err(), "only the controller of the pipeline's namespace is asked");
        assert!(feed.has_pending(&a));
        let pending = feed.take_pending(&a);
        assert_eq!(pending.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(), [alice]);
        assert!(!feed.has_pending(&a));

        for own in ["arn:aws:iam::1:user/operator", "arn:aws:sts::1:assumed-role/team/sales-operator.team-a"] {
            assert!(matches!(feed.handle(&body(own, &names.stream)), Ok(Seen::Own)), "{own}");
        }
        assert!(matches!(feed.handle(&body(alice, "someone-elses")), Ok(Seen::Unknown)));
        assert!(feed.handle("{\"detail\": 1}").is_err());
        assert!(triggers.try_recv().is_err(), "nothing else was queued");
        assert_eq!(feed.counts.own.load(Ordering::Relaxed), 2);
        assert_eq!(feed.counts.unknown.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn health_needs_every_queue_and_at_least_one() {
        assert!(!Feed::new(vec![]).healthy());
        let feed = Feed::new(vec!["a".into(), "b".into()]);
        assert!(feed.set_up(0, true) && !feed.healthy());
        assert!(feed.set_up(1, true) && feed.healthy());
        assert!(!feed.set_up(1, true), "no change");
        assert!(feed.set_up(1, false) && !feed.healthy());
    }

    #[test]
    fn a_queue_url_names_its_region_unless_it_is_an_emulators() {
        assert_eq!(queue_region("https://sqs.eu-west-1.amazonaws.com/111122223333/q"), Some("eu-west-1"));
        assert_eq!(queue_region("http://127.0.0.1:5000/123456789012/q"), None);
        assert_eq!(queue_region("nonsense"), None);
        let arn = Queue::parse("arn:aws:sqs:us-east-1:111122223333:sales-operator-events").unwrap();
        assert_eq!(arn.region(), Some("us-east-1"));
        assert_eq!(Queue::parse("http://127.0.0.1:5000/123456789012/q").unwrap().region(), None);
        for bad in ["sales-operator-events", "arn:aws:sns:us-east-1:111122223333:t", "arn:aws:sqs:us-east-1:1:q"] {
            let e = Queue::parse(bad).unwrap_err();
            assert!(e.starts_with(bad) && e.contains("arn:aws:sqs:REGION:ACCOUNT:NAME"), "{e}");
        }
    }
}

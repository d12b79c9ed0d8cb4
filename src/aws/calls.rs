//! Every AWS call goes through [`CallLog`]: it counts calls by service,
//! operation and outcome (for metrics, benchmarks and the tests that prove a
//! steady state makes no mutating call) and can inject faults for tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeDeserializationInterceptorContextRef,
    BeforeTransmitInterceptorContextMut, BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;

tokio::task_local! {
    /// The pipeline the calls of the current task are made for.
    static SCOPE: Scope;
}

/// The pipeline (`namespace.name`) and account a task's calls are made for.
struct Scope {
    pipeline: String,
    account: String,
}

/// `work` with every AWS call it makes marked as made for pipeline `namespace/name` in
/// `account`: the User-Agent ends in `sales-operator-pipeline/<namespace>.<name>`, which
/// CloudTrail records as each call's `userAgent` (a session serves every pipeline of its
/// identity; this says which one made the call; SigV4 leaves the User-Agent unsigned), and the
/// calls are counted under the account (the `account` label of the AWS call metrics).
pub fn for_pipeline<F: std::future::Future>(
    namespace: &str,
    name: &str,
    account: Option<&str>,
    work: F,
) -> impl std::future::Future<Output = F::Output> {
    let scope = Scope { pipeline: format!("{namespace}.{name}"), account: account.unwrap_or_default().to_string() };
    SCOPE.scope(scope, work)
}

/// The User-Agent token of the pipeline the current task works for, if any.
pub fn pipeline_agent() -> Option<String> {
    SCOPE.try_with(|s| format!("sales-operator-pipeline/{}", s.pipeline)).ok()
}

/// The account the current task's calls are made in; empty when not known.
fn scope_account() -> String {
    SCOPE.try_with(|s| s.account.clone()).unwrap_or_default()
}

/// Whether an operation only reads.
pub fn is_read_operation(operation: &str) -> bool {
    ["Describe", "Get", "List", "Head", "BatchGet", "Query", "Scan", "Receive"].iter().any(|p| operation.starts_with(p))
}

/// Counts of one (service, operation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpCount {
    pub ok: u64,
    pub error: u64,
    /// Attempts beyond the first (SDK retries).
    pub retries: u64,
}

/// A fault to inject into matching attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400 with a `ThrottlingException` (JSON-protocol services).
    Throttle,
    /// HTTP 503.
    ServerError,
    /// HTTP 400 `AccessDeniedException` (JSON-protocol services): a permanent error.
    AccessDenied,
    /// HTTP 400 `ThrottlingException` for a request the service never applied
    /// (its body is emptied before sending), as AWS throttles. `Throttle`
    /// instead answers after the request was applied.
    ThrottleUnapplied,
    /// DynamoDB BatchWriteItem: only the first half of the items is sent; the
    /// response lists the rest as `UnprocessedItems`, as DynamoDB does when it
    /// cannot write them all.
    UnprocessedItems,
}

/// Which attempts get which fault.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    /// Fail every mutating call after this many have succeeded, before it is sent
    /// (simulates the operator crashing between two AWS calls).
    pub stop_after_mutations: Option<u64>,
    /// `(operation, fault, every_nth_attempt)`: inject `fault` into every n-th attempt of `operation` ("*" = any).
    pub faults: Vec<(String, Fault, u64)>,
}

#[derive(Debug, Default)]
struct State {
    /// Per (account, service, operation).
    counts: BTreeMap<(String, String, String), OpCount>,
    mutations_sent: u64,
    attempts_seen: BTreeMap<String, u64>,
    plan: FaultPlan,
    /// Time between sending a request and receiving its response, summed.
    waiting: std::time::Duration,
    /// The attempts sent and not answered yet: `service:Operation` and when it was sent.
    in_flight: BTreeMap<u64, (String, std::time::Instant)>,
    next_flight: u64,
}

/// The interceptor shared by every client of one [`super::Clients`].
#[derive(Clone, Debug, Default)]
pub struct CallLog {
    state: Arc<Mutex<State>>,
}

/// Marker left in the config bag when an attempt is about to be failed by the fault plan.
#[derive(Clone, Debug)]
struct InjectedFault(Fault);

impl aws_smithy_types::config_bag::Storable for InjectedFault {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// The items an [`Fault::UnprocessedItems`] attempt held back (`RequestItems` shape).
#[derive(Clone, Debug)]
struct Withheld {
    items: serde_json::Value,
    /// Nothing was left to send: the whole response is made up.
    all: bool,
}

impl aws_smithy_types::config_bag::Storable for Withheld {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// A new request or response body; keeps Content-Length true.
fn new_body(headers: &mut aws_smithy_runtime_api::http::Headers, bytes: Vec<u8>) -> SdkBody {
    if headers.contains_key("content-length") {
        headers.insert("content-length", bytes.len().to_string());
    }
    SdkBody::from(bytes)
}

/// Splits a BatchWriteItem request: keeps the first half of each table's items, returns the rest.
fn withhold_half(request: &mut serde_json::Value) -> Withheld {
    let mut withheld = serde_json::Map::new();
    if let Some(tables) = request.get_mut("RequestItems").and_then(|v| v.as_object_mut()) {
        for (table, items) in tables.iter_mut() {
            if let Some(list) = items.as_array_mut() {
                let rest = list.split_off(list.len() / 2);
                if !rest.is_empty() {
                    withheld.insert(table.clone(), serde_json::Value::Array(rest));
                }
            }
        }
        tables.retain(|_, v| v.as_array().is_some_and(|a| !a.is_empty()));
    }
    let all = request.get("RequestItems").and_then(|v| v.as_object()).is_none_or(|m| m.is_empty());
    Withheld { items: serde_json::Value::Object(withheld), all }
}

/// When the current attempt's request was handed to the HTTP client.
#[derive(Clone, Debug)]
struct SentAt(std::time::Instant);

impl aws_smithy_types::config_bag::Storable for SentAt {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// The current attempt's key in `State::in_flight`.
#[derive(Clone, Debug)]
struct Flight(u64);

impl aws_smithy_types::config_bag::Storable for Flight {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// Present in the config bag once an execution has made its first attempt.
#[derive(Clone, Debug)]
struct AttemptMarker;

impl aws_smithy_types::config_bag::Storable for AttemptMarker {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl CallLog {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters inconsistent in a harmful way.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces the fault plan (tests).
    pub fn set_faults(&self, plan: FaultPlan) {
        let mut s = self.lock();
        s.plan = plan;
        s.mutations_sent = 0;
        s.attempts_seen.clear();
    }

    /// Counts per `(service, operation)`, every account together.
    pub fn counts(&self) -> BTreeMap<(String, String), OpCount> {
        let mut all: BTreeMap<(String, String), OpCount> = BTreeMap::new();
        for ((_, service, operation), c) in &self.lock().counts {
            let sum = all.entry((service.clone(), operation.clone())).or_default();
            sum.ok += c.ok;
            sum.error += c.error;
            sum.retries += c.retries;
        }
        all
    }

    /// Counts per `(account, service, operation)`; the account is empty for calls made outside
    /// [`for_pipeline`] or before the operator's own account was known.
    pub fn counts_by_account(&self) -> BTreeMap<(String, String, String), OpCount> {
        self.lock().counts.clone()
    }

    /// Forgets every count.
    pub fn reset(&self) {
        let mut s = self.lock();
        s.counts.clear();
        s.waiting = std::time::Duration::ZERO;
    }

    /// Total time spent waiting on AWS responses.
    pub fn waiting(&self) -> std::time::Duration {
        self.lock().waiting
    }

    /// The call waiting longest for its answer (`service:Operation`), and for how long.
    pub fn slowest_in_flight(&self) -> Option<(String, std::time::Duration)> {
        self.lock().in_flight.values().min_by_key(|(_, at)| *at).map(|(op, at)| (op.clone(), at.elapsed()))
    }

    /// Total calls (executions, not attempts) that only read.
    pub fn reads(&self) -> u64 {
        self.sum(true)
    }

    /// Total calls that change something.
    pub fn mutations(&self) -> u64 {
        self.sum(false)
    }

    /// Names of the mutating operations called, `service:Operation`, sorted.
    pub fn mutating_operations(&self) -> Vec<String> {
        self.lock()
            .counts
            .keys()
            .filter(|(_, _, op)| !is_read_operation(op))
            .map(|(_, svc, op)| format!("{svc}:{op}"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    fn sum(&self, reads: bool) -> u64 {
        self.lock()
            .counts
            .iter()
            .filter(|((_, _, op), _)| is_read_operation(op) == reads)
            .map(|(_, c)| c.ok + c.error)
            .sum()
    }
}

fn metadata(cfg: &ConfigBag) -> (String, String) {
    cfg.load::<Metadata>()
        .map(|m| (m.service().to_string(), m.name().to_string()))
        .unwrap_or_else(|| ("unknown".into(), "unknown".into()))
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "sales-operator.CallLog"
    }

    fn read_before_attempt(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = metadata(cfg);
        let mut s = self.lock();
        let seen = s.attempts_seen.entry(format!("{service}:{operation}")).or_insert(0);
        *seen += 1;
        let nth = *seen;
        let retry = cfg.load::<AttemptMarker>().is_some();
        if retry {
            s.counts.entry((scope_account(), service.clone(), operation.clone())).or_default().retries += 1;
        }
        if !is_read_operation(&operation) {
            if let Some(limit) = s.plan.stop_after_mutations {
                if s.mutations_sent >= limit {
                    return Err(
                        format!("injected stop before {service}:{operation} (after {limit} mutating calls)").into()
                    );
                }
            }
        }
        let fault = s.plan.faults.iter().find_map(|(op, fault, every)| {
            ((op == "*" || *op == operation) && *every > 0 && nth.is_multiple_of(*every)).then(|| fault.clone())
        });
        drop(s);
        cfg.interceptor_state().store_put(AttemptMarker);
        if let Some(f) = fault {
            cfg.interceptor_state().store_put(InjectedFault(f));
        }
        Ok(())
    }

    fn modify_before_signing(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(InjectedFault(fault)) = cfg.load::<InjectedFault>().cloned() else {
            return Ok(());
        };
        let request = ctx.request_mut();
        let bytes = match fault {
            Fault::ThrottleUnapplied => b"{}".to_vec(),
            Fault::UnprocessedItems => {
                let bytes = request.body().bytes().ok_or("UnprocessedItems fault: request body is not in memory")?;
                let mut json: serde_json::Value = serde_json::from_slice(bytes)?;
                let withheld = withhold_half(&mut json);
                cfg.interceptor_state().store_put(withheld);
                serde_json::to_vec(&json)?
            }
            _ => return Ok(()),
        };
        *request.body_mut() = new_body(request.headers_mut(), bytes);
        Ok(())
    }

    fn modify_before_transmit(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(token) = pipeline_agent() {
            let headers = ctx.request_mut().headers_mut();
            let agent = match headers.get("user-agent") {
                Some(ua) => format!("{ua} {token}"),
                None => token,
            };
            headers.insert("user-agent", agent);
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let now = std::time::Instant::now();
        cfg.interceptor_state().store_put(SentAt(now));
        let (service, operation) = metadata(cfg);
        let mut s = self.lock();
        let id = s.next_flight;
        s.next_flight += 1;
        s.in_flight.insert(id, (format!("{service}:{operation}"), now));
        drop(s);
        cfg.interceptor_state().store_put(Flight(id));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        _ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Flight(id)) = cfg.load::<Flight>().cloned() {
            self.lock().in_flight.remove(&id);
            cfg.interceptor_state().unset::<Flight>();
        }
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _ctx: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(SentAt(at)) = cfg.load::<SentAt>() {
            let elapsed = at.elapsed();
            self.lock().waiting += elapsed;
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        ctx: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(InjectedFault(fault)) = cfg.load::<InjectedFault>().cloned() else {
            return Ok(());
        };
        cfg.interceptor_state().unset::<InjectedFault>();
        let (status, code) = match fault {
            Fault::Throttle | Fault::ThrottleUnapplied => (400, "ThrottlingException"),
            Fault::ServerError => (503, "ServiceUnavailable"),
            Fault::AccessDenied => (400, "AccessDeniedException"),
            Fault::UnprocessedItems => {
                let Some(withheld) = cfg.load::<Withheld>().cloned() else { return Ok(()) };
                cfg.interceptor_state().unset::<Withheld>();
                let response = ctx.response_mut();
                if response.status().as_u16() != 200 && !withheld.all {
                    return Ok(()); // the service's own error stands
                }
                *response.status_mut() = StatusCode::try_from(200).map_err(|e| format!("{e:?}"))?;
                response.headers_mut().remove("x-amzn-errortype");
                response.headers_mut().remove("x-amz-crc32");
                let body = serde_json::to_vec(&serde_json::json!({ "UnprocessedItems": withheld.items }))?;
                *response.body_mut() = new_body(response.headers_mut(), body);
                return Ok(());
            }
        };
        let response = ctx.response_mut();
        *response.status_mut() = StatusCode::try_from(status).map_err(|e| format!("{e:?}"))?;
        response.headers_mut().insert("x-amzn-errortype", code);
        *response.body_mut() =
            SdkBody::from(format!(r#"{{"__type":"{code}","message":"injected {code} by the test fault plan"}}"#));
        Ok(())
    }

    fn read_after_execution(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = metadata(cfg);
        let failed = !matches!(ctx.output_or_error(), Some(Ok(_)));
        let mut s = self.lock();
        if !failed && !is_read_operation(&operation) {
            s.mutations_sent += 1;
        }
        let c = s.counts.entry((scope_account(), service, operation)).or_default();
        if failed {
            c.error += 1;
        } else {
            c.ok += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unprocessed_items_fault_sends_the_first_half_and_withholds_the_rest() {
        let item = |i: u32| serde_json::json!({"PutRequest": {"Item": {"orderid": {"S": i.to_string()}}}});
        let mut request = serde_json::json!({"RequestItems": {"t": (0..5).map(item).collect::<Vec<_>>()}});
        let w = withhold_half(&mut request);
        assert_eq!(request["RequestItems"]["t"], serde_json::json!((0..2).map(item).collect::<Vec<_>>()));
        assert_eq!(w.items["t"], serde_json::json!((2..5).map(item).collect::<Vec<_>>()));
        assert!(!w.all);
        let mut single = serde_json::json!({"RequestItems": {"t": [item(9)]}});
        let w = withhold_half(&mut single);
        assert!(w.all, "a one-item batch is withheld whole");
        assert_eq!(single["RequestItems"], serde_json::json!({}));
    }

    #[test]
    fn read_operations_are_recognised() {
        for op in [
            "DescribeTable",
            "GetRole",
            "ListTagsForStream",
            "HeadBucket",
            "GetBucketLifecycleConfiguration",
            "ReceiveMessage",
        ] {
            assert!(is_read_operation(op), "{op}");
        }
        for op in [
            "CreateTable",
            "PutRolePolicy",
            "UpdatePipe",
            "TagResource",
            "DeleteBucket",
            "PutItem",
            "DeleteMessageBatch",
        ] {
            assert!(!is_read_operation(op), "{op}");
        }
    }
}

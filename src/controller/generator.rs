//! The OrderGenerator controller: one Deployment of `sales-operator generate`
//! pods per OrderGenerator, writing into the referenced pipeline's table.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use tracing::Instrument;

use super::pipeline::MANAGER;
use super::Context;
use crate::api::conditions::{self, NewCondition, Verdict, READY};
use crate::api::{OrderGenerator, OrderGeneratorStatus, Reason, SalesPipeline};

/// How soon a generator is retried after a failed reconcile.
const RETRY: Duration = Duration::from_secs(10);

/// Why an OrderGenerator reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("object has no {0}")]
    MissingKey(&'static str),
    #[error("cannot serialize the catalogue: {0}")]
    Catalog(#[from] serde_json::Error),
}

impl Error {
    /// Short label for the errors metric (`sales_operator_reconcile_errors_total{error}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::MissingKey(_) => "missing_key",
            Error::Catalog(_) => "catalog",
        }
    }
}

/// Where the generator pods write, or why they cannot yet.
#[derive(Debug, PartialEq)]
pub enum TableTarget {
    Table { name: String, region: Option<String> },
    Waiting { reason: Reason, message: String },
}

/// Resolves the table from `spec.tableName` or the referenced pipeline's status.
pub fn resolve_table(og: &OrderGenerator, pipeline: Option<&SalesPipeline>) -> TableTarget {
    if let Some(table) = &og.spec.table_name {
        return TableTarget::Table { name: table.clone(), region: None };
    }
    let name = og.spec.pipeline_ref.as_ref().map(|r| r.name.clone()).unwrap_or_default();
    let Some(p) = pipeline else {
        return TableTarget::Waiting {
            reason: Reason::PipelineNotFound,
            message: format!("SalesPipeline {name} does not exist in this namespace"),
        };
    };
    if p.metadata.deletion_timestamp.is_some() {
        return TableTarget::Waiting {
            reason: Reason::PipelineDeleting,
            message: format!("SalesPipeline {name} is being deleted"),
        };
    }
    if p.spec.paused {
        return TableTarget::Waiting {
            reason: Reason::PipelinePaused,
            message: format!("SalesPipeline {name} is paused (spec.paused)"),
        };
    }
    let status = p.status.clone().unwrap_or_default();
    let table = status.table.as_ref().map(|t| t.name.clone());
    match table {
        Some(t) if conditions::is_true(&status.conditions, READY) => {
            // Where the pipeline is (its identity's region, if it has one), else its spec's.
            let region = p.status.as_ref().and_then(|s| s.region.clone()).or_else(|| p.spec.region.clone());
            TableTarget::Table { name: t, region }
        }
        _ => {
            let why = conditions::find(&status.conditions, READY)
                .map(|c| c.message.clone())
                .unwrap_or_else(|| "not reconciled yet".into());
            TableTarget::Waiting {
                reason: Reason::PipelineNotReady,
                message: format!("waiting for SalesPipeline {name} to be Ready: {why}"),
            }
        }
    }
}

/// The OrderGenerators (known to `store`) whose `pipelineRef` names `pipeline`.
pub fn users_of(store: &Store<OrderGenerator>, pipeline: &SalesPipeline) -> Vec<ObjectRef<OrderGenerator>> {
    let (name, namespace) = (pipeline.name_any(), pipeline.namespace());
    store
        .state()
        .iter()
        .filter(|og| og.namespace() == namespace && og.spec.pipeline_ref.as_ref().is_some_and(|r| r.name == name))
        .map(|og| ObjectRef::from(og.as_ref()))
        .collect()
}

/// Name of the Deployment of an OrderGenerator.
pub fn deployment_name(og: &OrderGenerator) -> String {
    format!("{}-generator", og.name_any())
}

/// Settings the pods inherit from the operator.
#[derive(Clone, Debug, Default)]
pub struct PodDefaults {
    pub image: String,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// The Deployment that runs `og` (pure).
pub fn desired_deployment(
    og: &OrderGenerator,
    table: &str,
    region: Option<&str>,
    defaults: &PodDefaults,
) -> Result<Deployment, Error> {
    let name = deployment_name(og);
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "sales-operator-generator".to_string()),
        ("app.kubernetes.io/instance".to_string(), og.name_any()),
        ("app.kubernetes.io/managed-by".to_string(), "sales-operator".to_string()),
    ]);
    let replicas = if og.spec.paused { 0 } else { og.spec.replicas };
    // The total rate is split across the replicas.
    let per_pod = og.spec.orders_per_second / f64::from(og.spec.replicas.max(1));
    let mut args = vec![
        "generate".to_string(),
        "--table".into(),
        table.to_string(),
        "--orders-per-second".into(),
        format!("{per_pod}"),
    ];
    if let Some(seed) = og.spec.seed {
        args.extend(["--seed".into(), seed.to_string()]);
    }
    let env_var = |name: &str, value: String| EnvVar { name: name.into(), value: Some(value), ..Default::default() };
    let mut env = vec![EnvVar {
        name: "SALES_OPERATOR_REPLICA".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: "metadata.name".into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }];
    if let Some(region) = region.map(str::to_string).or_else(|| defaults.region.clone()) {
        env.push(env_var("AWS_REGION", region));
    }
    if let Some(url) = &defaults.endpoint_url {
        env.push(env_var("AWS_ENDPOINT_URL", url.clone()));
    }
    if let Some(role) = &og.spec.assume_role {
        env.push(env_var("SALES_OPERATOR_ASSUME_ROLE", role.role_arn.clone()));
        if let Some(id) = &role.external_id {
            env.push(env_var("SALES_OPERATOR_EXTERNAL_ID", id.clone()));
        }
    }
    if let Some(catalog) = &og.spec.catalog {
        env.push(env_var("SALES_OPERATOR_CATALOG", serde_json::to_string(catalog)?));
    }
    let quantity = |s: &str| Quantity(s.to_string());
    let resources = og.spec.resources.clone().unwrap_or_else(|| ResourceRequirements {
        requests: Some(BTreeMap::from([("cpu".into(), quantity("50m")), ("memory".into(), quantity("32Mi"))])),
        limits: Some(BTreeMap::from([("cpu".into(), quantity("1")), ("memory".into(), quantity("128Mi"))])),
        ..Default::default()
    });
    let container = Container {
        name: "generator".into(),
        image: Some(og.spec.image.clone().unwrap_or_else(|| defaults.image.clone())),
        args: Some(args),
        env: Some(env),
        resources: Some(resources),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let owner = og.controller_owner_ref(&()).ok_or(Error::MissingKey("metadata.uid"))?;
    Ok(Deployment {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: og.namespace(),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: DeploymentSpec {
            replicas: Some(replicas),
            progress_deadline_seconds: og.spec.progress_deadline_seconds,
            selector: LabelSelector { match_labels: Some(labels.clone()), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // IRSA and EKS Pod Identity inject their own token volumes: the pods need no
                    // Kubernetes API token.
                    service_account_name: og.spec.service_account_name.clone(),
                    automount_service_account_token: Some(false),
                    termination_grace_period_seconds: Some(30),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        run_as_group: Some(65532),
                        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    })
}

/// Entry point of the controller for one OrderGenerator.
pub async fn reconcile(og: Arc<OrderGenerator>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = og.namespace().ok_or(Error::MissingKey("metadata.namespace"))?;
    let span = tracing::info_span!("reconcile", kind = "OrderGenerator", namespace = %namespace, name = %og.name_any());
    async move {
        let started = std::time::Instant::now();
        let result = converge(&og, &ctx, &namespace).await;
        ctx.metrics.reconciled("OrderGenerator", if result.is_ok() { "ok" } else { "error" }, started.elapsed());
        result
    }
    .instrument(span)
    .await
}

async fn converge(og: &OrderGenerator, ctx: &Context, namespace: &str) -> Result<Action, Error> {
    let pipelines: Api<SalesPipeline> = Api::namespaced(ctx.client.clone(), namespace);
    let pipeline = match &og.spec.pipeline_ref {
        Some(r) => pipelines.get_opt(&r.name).await?,
        None => None,
    };
    let api: Api<OrderGenerator> = Api::namespaced(ctx.client.clone(), namespace);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let previous = og.status.clone().unwrap_or_default();
    let (table, region) = match resolve_table(og, pipeline.as_ref()) {
        TableTarget::Table { name, region } => (name, region),
        TableTarget::Waiting { reason, message } => {
            // Orders into a table whose pipeline is gone, not Ready or paused are writes nobody
            // asked for: the pods stop until the pipeline is Ready again.
            let stopped = scale_to_zero(&deployments, &deployment_name(og)).await?;
            let status = OrderGeneratorStatus {
                table_name: None,
                replicas: stopped.as_ref().map(|_| 0),
                ready_replicas: stopped.as_ref().map(|r| r.ready),
                ..previous.clone()
            };
            let computed = waiting_conditions(reason, &message, stopped.as_ref());
            write_status(&api, og, status, &computed).await?;
            // The pipeline's changes and the Deployment's wake the controller (it watches both).
            return Ok(Action::requeue(ctx.resync()));
        }
    };
    let deployment = desired_deployment(og, &table, region.as_deref(), &ctx.pod_defaults)?;
    let applied = deployments
        .patch(&deployment_name(og), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&deployment))
        .await?;

    let want = if og.spec.paused { 0 } else { og.spec.replicas };
    let rollout = Rollout::of(&applied);
    let status = OrderGeneratorStatus {
        replicas: Some(want),
        ready_replicas: Some(rollout.ready),
        table_name: Some(table.clone()),
        ..previous
    };
    let computed = rollout_conditions(og, &rollout, &table);
    write_status(&api, og, status, &computed).await?;
    // The Deployment's changes and the pipeline's wake the controller (it watches both): no
    // polling while a rollout or the pipeline is under way.
    Ok(Action::requeue(ctx.resync()))
}

/// Sets `spec.replicas: 0` on the generator's Deployment, if there is one, and returns what its
/// status then says (`None`: no Deployment). The pod template stays as it was, so the pods come
/// back unchanged when the pipeline is Ready again (the next apply restores the replicas).
/// One merge patch, no read: the operator's RBAC has `patch` on Deployments, not `get`, and a
/// patch that changes nothing writes nothing.
async fn scale_to_zero(deployments: &Api<Deployment>, name: &str) -> Result<Option<Rollout>, Error> {
    // A merge patch of one field: an apply of a partial Deployment would drop the template.
    let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
    let patch = serde_json::json!({"spec": {"replicas": 0}});
    match deployments.patch(name, &params, &Patch::Merge(&patch)).await {
        Ok(scaled) => Ok(Some(Rollout::of(&scaled))),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `Ready`, `Reconciling` and `Stalled` of an OrderGenerator waiting for its pipeline (pure):
/// `reason` and `message` say why; the message adds what became of the pods (`stopped`: the
/// Deployment scaled to zero, `None`: none was ever created).
pub fn waiting_conditions(reason: Reason, message: &str, stopped: Option<&Rollout>) -> Vec<NewCondition> {
    let pods = match stopped {
        None => "no generator pods are running".to_string(),
        Some(r) if r.total == 0 => "generator scaled to zero, no orders are written".to_string(),
        Some(r) => format!("scaling the generator to zero: {} pods still stopping", r.total),
    };
    let message = format!("{message}; {pods} until it is Ready");
    Verdict::working(reason, message.clone(), reason, message).conditions()
}

/// What a Deployment's status says of its rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollout {
    /// `metadata.generation` and `status.observedGeneration`.
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    /// Pods wanted (`spec.replicas`), all pods, pods of the current template, available and ready pods.
    pub wanted: i32,
    pub total: i32,
    pub updated: i32,
    pub available: i32,
    pub ready: i32,
    /// The message of `Progressing=False` with reason `ProgressDeadlineExceeded`, if any.
    pub deadline_exceeded: Option<String>,
}

impl Rollout {
    /// From a Deployment as the API server returned it.
    pub fn of(d: &Deployment) -> Self {
        let status = d.status.clone().unwrap_or_default();
        let deadline_exceeded = status.conditions.unwrap_or_default().into_iter().find_map(|c| {
            (c.type_.as_deref() == Some("Progressing")
                && c.status.as_deref() == Some("False")
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
            .then(|| c.message.unwrap_or_else(|| "ProgressDeadlineExceeded".into()))
        });
        Self {
            generation: d.metadata.generation,
            observed_generation: status.observed_generation,
            wanted: d.spec.replicas.unwrap_or(1),
            total: status.replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            deadline_exceeded,
        }
    }

    /// The Deployment controller has seen the current spec, and every pod wanted runs the
    /// current template and is available, with no old pod left (what `kubectl rollout status` waits for).
    pub fn complete(&self) -> bool {
        self.generation.is_some()
            && self.observed_generation >= self.generation
            && self.updated == self.wanted
            && self.available == self.wanted
            && self.total == self.wanted
    }
}

/// `Ready`, `Reconciling` and `Stalled` of an OrderGenerator whose Deployment is in `rollout`
/// (pure). Ready only once the rollout is complete; a rollout past its progress deadline is
/// Stalled with the Deployment's message; paused is Ready (reason `Paused`) once no pod is left.
pub fn rollout_conditions(og: &OrderGenerator, rollout: &Rollout, table: &str) -> Vec<NewCondition> {
    let counts = format!(
        "{} updated, {} available, {} total of {} wanted",
        rollout.updated, rollout.available, rollout.total, rollout.wanted
    );
    if let (Some(message), false) = (&rollout.deadline_exceeded, rollout.complete()) {
        let message = format!("Deployment {}: {message} ({counts})", deployment_name(og));
        let deadline = Reason::ProgressDeadlineExceeded;
        let waiting_for = "a spec change or the cluster to make room";
        return Verdict::stalled(deadline, message.clone(), deadline, message, waiting_for).conditions();
    }
    match (og.spec.paused, rollout.complete()) {
        (true, true) => {
            Verdict::done(Reason::Paused, "paused (spec.paused): scaled to zero, no orders are written", Reason::Paused)
                .conditions()
        }
        (true, false) => {
            let message = format!("pausing: stopping the generator pods ({counts})");
            Verdict::working(Reason::Pausing, message.clone(), Reason::Pausing, message).conditions()
        }
        (false, true) => Verdict::done(
            Reason::Running,
            format!("{}/{} generator pods writing into {table}", rollout.available, rollout.wanted),
            Reason::InSync,
        )
        .conditions(),
        (false, false) => {
            let message = if rollout.observed_generation < rollout.generation {
                format!(
                    "waiting for the Deployment controller to observe generation {}",
                    rollout.generation.unwrap_or(0)
                )
            } else {
                format!("rolling out: {counts}")
            };
            Verdict::working(Reason::RollingOut, message.clone(), Reason::RollingOut, message).conditions()
        }
    }
}

async fn write_status(
    api: &Api<OrderGenerator>,
    og: &OrderGenerator,
    mut status: OrderGeneratorStatus,
    computed: &[NewCondition],
) -> Result<(), Error> {
    let previous = og.status.clone().unwrap_or_default();
    status.observed_generation = og.metadata.generation;
    status.conditions =
        conditions::merge(&previous.conditions, computed, og.metadata.generation, jiff::Timestamp::now());
    super::apply_status(api, og, og.status.as_ref(), &status).await?;
    Ok(())
}

/// Retries after a failure with a short fixed delay (the Kubernetes API is the only dependency).
pub fn error_policy(og: Arc<OrderGenerator>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed("OrderGenerator", err.metric_label());
    tracing::warn!(namespace = og.namespace().unwrap_or_default(), name = %og.name_any(), error = %err, "reconcile failed");
    Action::requeue(RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{FALSE, STALLED, TRUE};

    fn og(spec: serde_json::Value) -> OrderGenerator {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "sales-operator.dev/v1alpha1",
            "kind": "OrderGenerator",
            "metadata": {"name": "load", "namespace": "shop", "uid": "u-1"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn defaults() -> PodDefaults {
        PodDefaults { image: "sales-operator:test".into(), region: Some("eu-west-1".into()), endpoint_url: None }
    }

    #[test]
    fn rate_is_split_across_replicas_and_pods_are_hardened() {
        let d = desired_deployment(
            &og(serde_json::json!({"tableName": "t", "ordersPerSecond": 300.0, "replicas": 3, "seed": 7})),
            "t",
            None,
            &defaults(),
        )
        .unwrap();
        let spec = d.spec;
        assert_eq!(spec.replicas, Some(3));
        let pod = spec.template.spec.unwrap();
        let c = &pod.containers[0];
        let args = c.args.clone().unwrap();
        assert_eq!(args, ["generate", "--table", "t", "--orders-per-second", "100", "--seed", "7"]);
        let sc = c.security_context.clone().unwrap();
        assert_eq!(
            (sc.read_only_root_filesystem, sc.allow_privilege_escalation, sc.run_as_non_root),
            (Some(true), Some(false), Some(true))
        );
        assert!(c.resources.as_ref().unwrap().limits.is_some());
        assert_eq!(d.metadata.owner_references.unwrap()[0].controller, Some(true));
    }

    #[test]
    fn pods_assume_the_role_they_are_given_to_write_into_another_account() {
        let env_of = |og: &OrderGenerator| {
            let pod = desired_deployment(og, "t", Some("eu-west-2"), &defaults()).unwrap().spec.template.spec.unwrap();
            let env = pod.containers[0].env.clone().unwrap_or_default();
            env.into_iter().filter_map(|e| Some((e.name, e.value?))).collect::<BTreeMap<_, _>>()
        };
        let role = "arn:aws:iam::222222222222:role/order-writer";
        let with = og(serde_json::json!({"tableName": "t", "assumeRole": {"roleArn": role, "externalId": "team-a"}}));
        let env = env_of(&with);
        assert_eq!(env.get("SALES_OPERATOR_ASSUME_ROLE").map(String::as_str), Some(role));
        assert_eq!(env.get("SALES_OPERATOR_EXTERNAL_ID").map(String::as_str), Some("team-a"));
        assert_eq!(env.get("AWS_REGION").map(String::as_str), Some("eu-west-2"));
        let without = env_of(&og(serde_json::json!({"tableName": "t"})));
        assert!(
            !without.contains_key("SALES_OPERATOR_ASSUME_ROLE") && !without.contains_key("SALES_OPERATOR_EXTERNAL_ID")
        );
    }

    #[test]
    fn pods_run_under_the_named_service_account_without_an_api_token() {
        let named = og(serde_json::json!({"tableName": "t", "serviceAccountName": "order-writer"}));
        let pod = desired_deployment(&named, "t", None, &defaults()).unwrap().spec.template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("order-writer"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        let unnamed = og(serde_json::json!({"tableName": "t"}));
        let pod = desired_deployment(&unnamed, "t", None, &defaults()).unwrap().spec.template.spec.unwrap();
        assert_eq!(pod.service_account_name, None, "the namespace's default");
    }

    fn rollout(generation: i64, observed: i64, wanted: i32, counts: (i32, i32, i32)) -> Rollout {
        let (total, updated, available) = counts;
        Rollout {
            generation: Some(generation),
            observed_generation: Some(observed),
            wanted,
            total,
            updated,
            available,
            ready: available,
            deadline_exceeded: None,
        }
    }

    fn ready_of(og: &OrderGenerator, r: &Rollout) -> (&'static str, String, &'static str) {
        let c = rollout_conditions(og, r, "t");
        let find = |t: &str| c.iter().find(|c| c.type_ == t).unwrap().clone();
        (find(READY).status, find(READY).reason, find(STALLED).status)
    }

    #[test]
    fn ready_only_when_the_rollout_is_complete() {
        let g = og(serde_json::json!({"tableName": "t", "replicas": 2}));
        assert_eq!(ready_of(&g, &rollout(2, 2, 2, (2, 2, 2))), (TRUE, "Running".into(), FALSE));
        // 50 -> 80 orders/s: one of two pods updated, three running (the measured case).
        assert_eq!(ready_of(&g, &rollout(2, 2, 2, (3, 1, 2))).0, FALSE);
        // Ready replicas of the old generation, before the Deployment controller looked.
        assert_eq!(ready_of(&g, &rollout(3, 2, 2, (2, 2, 2))).0, FALSE);
        assert_eq!(ready_of(&g, &rollout(2, 2, 2, (2, 2, 1))).0, FALSE);
        assert_eq!(ready_of(&g, &rollout(2, 2, 2, (1, 1, 1))).0, FALSE);
    }

    #[test]
    fn a_rollout_past_its_deadline_is_stalled_with_the_deployments_message() {
        let g = og(serde_json::json!({"tableName": "t", "replicas": 1}));
        let mut r = rollout(1, 1, 1, (1, 1, 0));
        r.deadline_exceeded = Some(r#"ReplicaSet "load-generator-5d" has timed out progressing."#.into());
        let c = rollout_conditions(&g, &r, "t");
        let stalled = c.iter().find(|c| c.type_ == STALLED).unwrap();
        assert_eq!((stalled.status, stalled.reason.as_str()), (TRUE, "ProgressDeadlineExceeded"));
        assert!(stalled.message.contains("has timed out progressing"), "{}", stalled.message);
        assert_eq!(ready_of(&g, &r).0, FALSE);
    }

    #[test]
    fn paused_is_ready_once_no_pod_is_left() {
        let g = og(serde_json::json!({"tableName": "t", "replicas": 2, "paused": true}));
        assert_eq!(ready_of(&g, &rollout(3, 3, 0, (2, 0, 2))), (FALSE, "Pausing".into(), FALSE));
        assert_eq!(ready_of(&g, &rollout(3, 3, 0, (0, 0, 0))), (TRUE, "Paused".into(), FALSE));
    }

    #[test]
    fn a_deployment_status_reads_as_a_rollout() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "load-generator", "generation": 4},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 4, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2, "readyReplicas": 3,
                "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "timed out"}]}
        }))
        .unwrap();
        let r = Rollout::of(&d);
        assert_eq!(
            (r.generation, r.observed_generation, r.wanted, r.total, r.updated, r.available),
            (Some(4), Some(4), 2, 3, 1, 2)
        );
        assert_eq!(r.deadline_exceeded.as_deref(), Some("timed out"));
        assert!(!r.complete());
    }

    #[test]
    fn paused_scales_to_zero() {
        let d = desired_deployment(
            &og(serde_json::json!({"tableName": "t", "replicas": 4, "paused": true})),
            "t",
            None,
            &defaults(),
        )
        .unwrap();
        assert_eq!(d.spec.replicas, Some(0));
    }

    #[test]
    fn a_generator_waiting_for_its_pipeline_says_what_became_of_its_pods() {
        let message = |stopped: Option<&Rollout>| {
            let c = waiting_conditions(Reason::PipelineNotFound, "SalesPipeline sales does not exist", stopped);
            let ready = c.iter().find(|c| c.type_ == READY).unwrap().clone();
            assert_eq!((ready.status, ready.reason.as_str()), (FALSE, "PipelineNotFound"));
            ready.message
        };
        assert!(message(None).contains("no generator pods are running"));
        assert!(message(Some(&rollout(3, 3, 0, (2, 0, 2)))).contains("2 pods still stopping"));
        assert!(message(Some(&rollout(3, 3, 0, (0, 0, 0)))).contains("scaled to zero, no orders are written"));
    }

    #[test]
    fn a_missing_or_unready_pipeline_is_reported() {
        let g = og(serde_json::json!({"pipelineRef": {"name": "sales"}}));
        assert!(matches!(resolve_table(&g, None), TableTarget::Waiting { reason: Reason::PipelineNotFound, .. }));
        let p: SalesPipeline = serde_json::from_value(serde_json::json!({
            "apiVersion": "sales-operator.dev/v1alpha1", "kind": "SalesPipeline",
            "metadata": {"name": "sales"}, "spec": {},
            "status": {"table": {"name": "shop-sales-orders"}, "conditions": [{"type": "Ready", "status": "False", "reason": "Creating", "message": "table: creating", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap();
        assert!(matches!(resolve_table(&g, Some(&p)), TableTarget::Waiting { reason: Reason::PipelineNotReady, .. }));
        let mut paused = p.clone();
        paused.spec.paused = true;
        paused.status.as_mut().unwrap().conditions[0].status = "True".into();
        assert!(matches!(
            resolve_table(&g, Some(&paused)),
            TableTarget::Waiting { reason: Reason::PipelinePaused, .. }
        ));
        let mut deleting = p.clone();
        deleting.status.as_mut().unwrap().conditions[0].status = "True".into();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH));
        assert!(matches!(
            resolve_table(&g, Some(&deleting)),
            TableTarget::Waiting { reason: Reason::PipelineDeleting, .. }
        ));
        let mut ready = p.clone();
        ready.status.as_mut().unwrap().conditions[0].status = "True".into();
        assert_eq!(
            resolve_table(&g, Some(&ready)),
            TableTarget::Table { name: "shop-sales-orders".into(), region: None }
        );
        // Built through an identity in another region: the region the status records wins.
        ready.spec.region = Some("eu-west-1".into());
        ready.status.as_mut().unwrap().region = Some("us-east-2".into());
        assert_eq!(
            resolve_table(&g, Some(&ready)),
            TableTarget::Table { name: "shop-sales-orders".into(), region: Some("us-east-2".into()) }
        );
    }

    #[test]
    fn errors_are_counted_by_kind_not_all_as_kube() {
        let catalog = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        assert_eq!(Error::Catalog(catalog).metric_label(), "catalog");
        assert_eq!(Error::MissingKey("metadata.namespace").metric_label(), "missing_key");
    }
}

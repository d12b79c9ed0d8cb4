//! Every reason a condition of either custom resource can carry: one list, from
//! which conditions are built (a reason cannot be misspelt) and the reasons
//! table of docs/status.md is generated (a test fails while the two differ).

macro_rules! reasons {
    ($($(#[doc = $doc:literal])+ $name:ident: $on:literal,)+) => {
        /// The `reason` of a condition, as `kubectl describe` shows it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Reason {
            $($(#[doc = $doc])+ $name,)+
        }

        impl Reason {
            /// Every reason, in the order of the docs' table.
            pub const ALL: &'static [Reason] = &[$(Reason::$name,)+];

            /// The reason as written in the condition (`WaitingForIam`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name),)+
                }
            }

            /// What it means, for the docs.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(Reason::$name => concat!($($doc),+).trim_ascii(),)+
                }
            }

            /// The conditions it appears on, for the docs.
            pub fn used_on(self) -> &'static str {
                match self {
                    $(Reason::$name => $on,)+
                }
            }
        }
    };
}

reasons! {
    /// Every component exists and matches the spec.
    Ready: "SalesPipeline `Ready`",
    /// The generator's Deployment has rolled out: every wanted pod is updated and available.
    Running: "OrderGenerator `Ready`",
    /// `spec.paused` and the operator has done what pausing asks (observed the pipeline; no generator pod left).
    Paused: "`Ready`, `Reconciling`, component conditions",
    /// `spec.paused`: the generator's pods are still stopping.
    Pausing: "OrderGenerator `Ready`, `Reconciling`",
    /// The operator has not looked at the pipeline yet.
    Pending: "SalesPipeline `Ready`",
    /// A transient AWS error (throttling, 5xx, network): retried with backoff.
    AwsError: "SalesPipeline `Ready`, component conditions",
    /// AWS refused the request and retrying will not help (bad input, access denied, a quota): the message says what AWS said.
    PermanentError: "`Stalled`, component conditions",
    /// A field changed that AWS cannot change in place, on a resource that holds data: nothing is done.
    ImmutableFieldChanged: "`Stalled`, component conditions",
    /// A resource the pipeline needs belongs to another SalesPipeline (or its names collide with an older one's in the cluster).
    NameConflict: "`Ready`, `Stalled`, component conditions",
    /// A resource exists that this pipeline did not create (no ownership tag): untouched unless listed in `spec.adopt`.
    NotOwned: "`Stalled`, component conditions",
    /// The spec cannot be acted on as written (e.g. no AWS region known for it).
    InvalidConfiguration: "SalesPipeline `Ready`, `Stalled`",
    /// Its AWS names fall outside the name prefix the operator's IAM policy is narrowed to (`--name-prefix`).
    OutsideNamePrefix: "SalesPipeline `Ready`, `Stalled`",
    /// `spec.identityRef` names an AwsIdentity that does not exist (or the one the pipeline was built with is gone): nothing is called in AWS.
    IdentityNotFound: "SalesPipeline `Ready`, `Stalled`",
    /// `spec.identityRef` names an AwsIdentity whose namespaceSelector does not select the pipeline's namespace: nothing is called in AWS.
    IdentityNotAllowed: "SalesPipeline `Ready`, `Stalled`",
    /// The pipeline names no identity and more than one AwsIdentity is the default for its namespace: nothing is called in AWS.
    IdentityAmbiguous: "SalesPipeline `Ready`, `Stalled`",
    /// The pipeline names no identity, none is its namespace's default, and the operator runs with `--require-identity`: nothing is called in AWS.
    IdentityRequired: "SalesPipeline `Ready`, `Stalled`",
    /// STS refused to assume the identity's role (its trust policy, the ExternalId, a session tag): the message has AWS's words and the role.
    IdentityRefused: "SalesPipeline `Ready`, `Stalled`",
    /// The identity now resolves to another AWS account than the one the pipeline's resources are in: nothing is done in either.
    AccountChanged: "SalesPipeline `Ready`, `Stalled`",
    /// AWS refused a deletion: the finalizer stays and the message says why.
    DeletionFailed: "SalesPipeline `Ready`",
    /// The pipeline is being deleted: its AWS resources are being removed.
    Deleting: "SalesPipeline `Reconciling`",
    /// Not Stalled.
    NotStalled: "`Stalled`",
    /// Stalled: nothing more happens until the spec (or what AWS refused) changes.
    Stalled: "`Reconciling`",
    /// Every component in sync, or the generator rolled out: nothing to do.
    InSync: "`Reconciling`, SalesPipeline `Drifted`, component conditions",
    /// The operator is still at work: converging, or retrying.
    Progressing: "SalesPipeline `Reconciling`",
    /// The component waits for an earlier one: not looked at in this pass, or a value it names (an ARN) is not known yet. The message says what it waits for.
    NotReached: "component conditions",
    /// The resource does not exist (in a plan).
    Absent: "component conditions",
    /// It does not exist and the pipeline does not create it (`spec.bucket.create: false`): nothing is created until it exists outside.
    Missing: "component conditions",
    /// The resource is not created while another one started with it is not this pipeline's.
    NotCreated: "component conditions",
    /// AWS is creating the resource, or has just been asked to and does not show it yet.
    Creating: "component conditions",
    /// Created in this pass.
    Created: "component conditions",
    /// Updated in place in this pass.
    Updated: "component conditions",
    /// Taken under management in this pass (`spec.adopt`).
    Adopted: "component conditions",
    /// Deleted to be created again: an immutable field changed on a resource that holds no data.
    Replacing: "component conditions",
    /// AWS is still creating or changing the resource, or asked to retry later: waited for, never changed meanwhile.
    InProgress: "component conditions",
    /// It exists but is not usable yet (e.g. not ACTIVE).
    NotReady: "component conditions",
    /// In a state AWS does not leave by itself (e.g. `CREATE_FAILED`), seen in a plan or while paused.
    Failed: "component conditions",
    /// A failed pipe or Firehose stream was deleted to be created again, or started again.
    Recovering: "component conditions",
    /// A service refused a role IAM has not propagated yet: retried for a bounded window after the role changed.
    WaitingForIam: "component conditions",
    /// It differs from the spec: in a plan, or under `driftPolicy: Report` once the pipeline was built (not repaired; the `Drifted` condition has the diff).
    Drifted: "SalesPipeline `Ready`, `Stalled`, `Drifted`, component conditions",
    /// Orders reach S3: the message has the end-to-end freshness (Firehose's `DeliveryToS3.DataFreshness`).
    Flowing: "SalesPipeline `DataFlowing`",
    /// No orders were written in the window: nothing to move, not an alarm.
    Idle: "SalesPipeline `DataFlowing`",
    /// A stage fails or falls behind: the message names the first such stage, the metric and its value (and Firehose's newest error object).
    Degraded: "SalesPipeline `DataFlowing`",
    /// The stages' metrics could not be read (CloudWatch or the bucket refused, or did not answer): the message has AWS's error.
    MetricsUnreadable: "SalesPipeline `DataFlowing`",
    /// The generator's Deployment is rolling out: the message has the counts.
    RollingOut: "OrderGenerator `Ready`, `Reconciling`",
    /// The generator's rollout passed `progressDeadlineSeconds` (e.g. a pod no node can hold).
    ProgressDeadlineExceeded: "OrderGenerator `Ready`, `Stalled`",
    /// The generator's SalesPipeline does not exist: its Deployment is scaled to zero.
    PipelineNotFound: "OrderGenerator `Ready`, `Reconciling`",
    /// The generator's SalesPipeline is not Ready: its Deployment is scaled to zero until it is.
    PipelineNotReady: "OrderGenerator `Ready`, `Reconciling`",
    /// The generator's SalesPipeline is paused: its Deployment is scaled to zero.
    PipelinePaused: "OrderGenerator `Ready`, `Reconciling`",
    /// The generator's SalesPipeline is being deleted: its Deployment is scaled to zero.
    PipelineDeleting: "OrderGenerator `Ready`, `Reconciling`",
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Start and end markers of the generated table in docs/status.md.
pub const DOC_BEGIN: &str = "<!-- BEGIN GENERATED: reasons (src/api/reason.rs) -->";
pub const DOC_END: &str = "<!-- END GENERATED: reasons -->";

/// The reasons table of docs/status.md.
pub fn doc_table() -> String {
    let mut out = String::from("| Reason | On | Meaning |\n|---|---|---|\n");
    for r in Reason::ALL {
        out.push_str(&format!("| `{}` | {} | {} |\n", r.as_str(), r.used_on(), r.meaning()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/status.md's reasons table is this list; `SALES_OPERATOR_UPDATE_DOCS=1 cargo test
    /// --lib reason` rewrites it.
    #[test]
    fn docs_status_md_lists_every_reason() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/status.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        let (Some(begin), Some(end)) = (doc.find(DOC_BEGIN), doc.find(DOC_END)) else {
            panic!("docs/status.md has no {DOC_BEGIN} ... {DOC_END} section");
        };
        let current = &doc[begin + DOC_BEGIN.len()..end];
        let wanted = format!("\n{}", doc_table());
        if std::env::var_os("SALES_OPERATOR_UPDATE_DOCS").is_some() {
            let updated = format!("{}{wanted}{}", &doc[..begin + DOC_BEGIN.len()], &doc[end..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        assert_eq!(
            current, wanted,
            "docs/status.md is out of date: SALES_OPERATOR_UPDATE_DOCS=1 cargo test --lib reason"
        );
    }

    #[test]
    fn every_reason_is_documented_and_unique() {
        let mut names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert!(Reason::ALL.iter().all(|r| !r.meaning().is_empty() && !r.used_on().is_empty()));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
        assert_eq!(Reason::WaitingForIam.as_str(), "WaitingForIam");
    }
}

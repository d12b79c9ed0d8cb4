//! Which AWS identity a SalesPipeline acts through: the AwsIdentity its `spec.identityRef`
//! names, else its namespace's default AwsIdentity, else the operator's own credentials. Decided
//! from the watch cache before any AWS call: a pipeline refused here calls nothing in AWS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;

use crate::api::{AwsIdentity, Reason};
use crate::aws::identity::{Assume, RoleArn, TAG_IDENTITY};

/// Why a pipeline cannot act through any identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotFound(String),
    NotAllowed {
        identity: String,
        namespace: String,
    },
    Ambiguous {
        namespace: String,
        defaults: Vec<String>,
    },
    Required {
        namespace: String,
    },
    /// An identity whose spec the operator cannot use (written before the CRD checked it).
    Invalid {
        identity: String,
        why: String,
    },
}

impl Refusal {
    pub fn reason(&self) -> Reason {
        match self {
            Refusal::NotFound(_) | Refusal::Invalid { .. } => Reason::IdentityNotFound,
            Refusal::NotAllowed { .. } => Reason::IdentityNotAllowed,
            Refusal::Ambiguous { .. } => Reason::IdentityAmbiguous,
            Refusal::Required { .. } => Reason::IdentityRequired,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotFound(name) => write!(
                f,
                "AwsIdentity {name} (spec.identityRef.name) does not exist: `kubectl get awsidentities` lists those \
                 there are; nothing is called in AWS until it exists"
            ),
            Refusal::NotAllowed { identity, namespace } => write!(
                f,
                "AwsIdentity {identity} is not granted to namespace {namespace}: its spec.namespaceSelector does not \
                 select it (the cluster admin grants identities); nothing is called in AWS"
            ),
            Refusal::Ambiguous { namespace, defaults } => write!(
                f,
                "AwsIdentities {} are all the default for namespace {namespace}: set spec.identityRef.name to one of \
                 them; nothing is called in AWS",
                defaults.join(" and ")
            ),
            Refusal::Required { namespace } => write!(
                f,
                "no AwsIdentity is named in spec.identityRef and none is the default for namespace {namespace}, and \
                 the operator requires one (--require-identity); nothing is called in AWS"
            ),
            Refusal::Invalid { identity, why } => write!(f, "AwsIdentity {identity} cannot be used: {why}"),
        }
    }
}

/// The identity a pipeline in `namespace` (whose labels are `labels`) acts through: the one
/// `wanted` names, else the namespace's one default, else none (the operator's credentials,
/// unless `require`).
pub fn resolve(
    namespace: &str,
    labels: &BTreeMap<String, String>,
    wanted: Option<&str>,
    identities: &[Arc<AwsIdentity>],
    require: bool,
) -> Result<Option<Arc<AwsIdentity>>, Refusal> {
    if let Some(name) = wanted {
        let identity =
            identities.iter().find(|i| i.name_any() == name).ok_or_else(|| Refusal::NotFound(name.to_string()))?;
        if !identity.spec.namespace_selector.selects(namespace, labels) {
            return Err(Refusal::NotAllowed { identity: name.to_string(), namespace: namespace.to_string() });
        }
        return Ok(Some(identity.clone()));
    }
    let mut defaults: Vec<&Arc<AwsIdentity>> =
        identities.iter().filter(|i| i.spec.default && i.spec.namespace_selector.selects(namespace, labels)).collect();
    defaults.sort_by_key(|i| i.name_any());
    match defaults[..] {
        [] if require => Err(Refusal::Required { namespace: namespace.to_string() }),
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        _ => Err(Refusal::Ambiguous {
            namespace: namespace.to_string(),
            defaults: defaults.iter().map(|i| i.name_any()).collect(),
        }),
    }
}

/// Whether deciding for a pipeline in some namespace needs that namespace's labels.
pub fn needs_labels(identities: &[Arc<AwsIdentity>]) -> bool {
    identities.iter().any(|i| i.spec.namespace_selector.uses_labels())
}

/// The STS session of `identity`: one per identity (shared by its pipelines), named and tagged
/// after it, with its ExternalId, duration and session tags.
pub fn session(identity: &AwsIdentity) -> Result<Assume, Refusal> {
    let name = identity.name_any();
    let invalid = |why: String| Refusal::Invalid { identity: name.clone(), why };
    let role = RoleArn::parse(&identity.spec.role.role_arn).map_err(|e| invalid(format!("spec.roleArn: {e}")))?;
    let mut assume = Assume::new(role, identity.spec.role.external_id.clone());
    assume.session_name = crate::aws::identity::session_name(&format!("sales-operator.{name}"));
    if let Some(text) = &identity.spec.session_duration {
        assume.duration = duration(text).map_err(|e| invalid(format!("spec.sessionDuration: {e}")))?;
    }
    assume.tags = identity.spec.session_tags.clone();
    assume.tags.insert(TAG_IDENTITY.into(), name.clone());
    Ok(assume)
}

/// A Go-style duration of hours, minutes and seconds (`1h`, `90m`, `1h30m`), from 15 minutes
/// to 12 hours (what STS grants).
pub fn duration(text: &str) -> Result<Duration, String> {
    let wrong = || format!("{text} is not a duration from 15m to 12h (e.g. 1h or 90m)");
    let mut seconds: u64 = 0;
    let mut digits = String::new();
    let mut last_unit = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let (rank, factor) = match c {
            'h' => (1, 3600),
            'm' => (2, 60),
            's' => (3, 1),
            _ => return Err(wrong()),
        };
        let n: u64 = digits.parse().map_err(|_| wrong())?;
        if rank <= last_unit {
            return Err(wrong());
        }
        last_unit = rank;
        seconds = n.checked_mul(factor).and_then(|s| s.checked_add(seconds)).ok_or_else(wrong)?;
        digits.clear();
    }
    if !digits.is_empty() || last_unit == 0 || !(900..=43_200).contains(&seconds) {
        return Err(wrong());
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AwsIdentitySpec, NamespaceSelector, RoleToAssume};

    fn identity(name: &str, namespaces: &[&str], default: bool) -> Arc<AwsIdentity> {
        Arc::new(AwsIdentity::new(
            name,
            AwsIdentitySpec {
                role: RoleToAssume { role_arn: format!("arn:aws:iam::222222222222:role/{name}"), external_id: None },
                session_duration: None,
                region: None,
                session_tags: BTreeMap::new(),
                namespace_selector: NamespaceSelector {
                    names: namespaces.iter().map(|n| n.to_string()).collect(),
                    ..Default::default()
                },
                default,
            },
        ))
    }

    fn names(found: Result<Option<Arc<AwsIdentity>>, Refusal>) -> Result<Option<String>, Refusal> {
        found.map(|i| i.map(|i| i.name_any()))
    }

    #[test]
    fn a_pipeline_gets_the_identity_it_names_if_granted_else_its_namespace_default_else_none() {
        let all = [identity("team-a", &["team-a"], true), identity("shared", &["team-a", "team-b"], false)];
        let none = BTreeMap::new();
        assert_eq!(names(resolve("team-a", &none, None, &all, false)), Ok(Some("team-a".into())));
        assert_eq!(names(resolve("team-a", &none, Some("shared"), &all, false)), Ok(Some("shared".into())));
        assert_eq!(names(resolve("team-b", &none, None, &all, false)), Ok(None), "no default: own credentials");
        assert_eq!(
            names(resolve("team-b", &none, None, &all, true)),
            Err(Refusal::Required { namespace: "team-b".into() })
        );
        assert_eq!(
            names(resolve("team-b", &none, Some("team-a"), &all, false)),
            Err(Refusal::NotAllowed { identity: "team-a".into(), namespace: "team-b".into() })
        );
        assert_eq!(names(resolve("team-a", &none, Some("gone"), &all, false)), Err(Refusal::NotFound("gone".into())));
        let two = [identity("b", &["team-a"], true), identity("a", &["team-a"], true)];
        let ambiguous = resolve("team-a", &none, None, &two, false).unwrap_err();
        assert_eq!(
            ambiguous,
            Refusal::Ambiguous { namespace: "team-a".into(), defaults: vec!["a".into(), "b".into()] }
        );
        assert_eq!(ambiguous.reason(), Reason::IdentityAmbiguous);
        assert!(ambiguous.to_string().contains("a and b"), "{ambiguous}");
        assert_eq!(names(resolve("team-a", &none, Some("b"), &two, false)), Ok(Some("b".into())));
    }

    #[test]
    fn an_identity_session_is_named_and_tagged_after_it() {
        let mut spec = identity("team-a", &["team-a"], false).spec.clone();
        spec.session_tags.insert("cost-center".into(), "42".into());
        spec.session_duration = Some("90m".into());
        spec.role.external_id = Some("team-a-ext".into());
        let assume = session(&AwsIdentity::new("team-a", spec.clone())).unwrap();
        assert_eq!(assume.session_name, "sales-operator.team-a");
        assert_eq!(assume.duration, Duration::from_secs(5400));
        assert_eq!(assume.external_id.as_deref(), Some("team-a-ext"));
        assert_eq!(assume.role.account, "222222222222");
        assert_eq!(assume.tags.get(TAG_IDENTITY).map(String::as_str), Some("team-a"));
        assert_eq!(assume.tags.get("cost-center").map(String::as_str), Some("42"));
        spec.role.role_arn = "arn:aws:iam::2222:role/x".into();
        let e = session(&AwsIdentity::new("team-a", spec)).unwrap_err();
        assert!(e.to_string().contains("spec.roleArn") && e.to_string().contains("12 digits"), "{e}");
    }

    #[test]
    fn session_durations_read_like_go_and_stay_within_what_sts_grants() {
        for (text, secs) in
            [("15m", 900), ("1h", 3600), ("1h30m", 5400), ("90m", 5400), ("12h", 43_200), ("3600s", 3600)]
        {
            assert_eq!(duration(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        for text in ["", "1", "14m59s", "12h1s", "1x", "m", "30m1h", "1h1h", "99999999999999999999h"] {
            let e = duration(text).unwrap_err();
            assert!(e.contains("15m to 12h"), "{text}: {e}");
        }
    }
}

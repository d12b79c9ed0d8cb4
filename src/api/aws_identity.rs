//! The `AwsIdentity` custom resource: an AWS account's role that the cluster admin grants to
//! namespaces. Pipelines in those namespaces are built in that account, through the role.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// An IAM role the operator assumes (with its own credentials) to build the pipelines of the
/// namespaces it is granted to, in the role's account.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sales-operator.dev",
    version = "v1alpha1",
    kind = "AwsIdentity",
    doc = "An AWS account's IAM role, granted by the cluster admin to namespaces: sales-operator assumes it (STS AssumeRole with its own credentials) for the SalesPipelines of those namespaces that name it in spec.identityRef, or for all of them when it is their default. Tenants may read identities; only admins write them.",
    plural = "awsidentities",
    shortname = "awsid",
    category = "sales",
    cel,
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.roleArn"}"#,
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".spec.region"}"#,
    printcolumn = r#"{"name":"Default","type":"boolean","jsonPath":".spec.default"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AwsIdentitySpec {
    /// The role to assume; its permissions are the pipeline policy (`sales-operator iam-policy`).
    #[serde(flatten)]
    pub role: RoleToAssume,
    /// How long each session's credentials last before the operator asks STS again: `15m` to
    /// `12h` (Go duration syntax, e.g. `1h`, `90m`). Default `1h`; AWS caps a role-chained session
    /// (the operator's own credentials are a role's) at one hour, and the role's MaxSessionDuration
    /// caps any session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+h)?([0-9]+m)?([0-9]+s)?$') && self != '' && duration(self) >= duration('15m') && duration(self) <= duration('12h')").message("must be a duration from 15m to 12h, e.g. 1h or 90m"))]
    pub session_duration: Option<String>,
    /// Region of the pipelines that use this identity and name none. Default: the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::sales_pipeline::region_schema")]
    pub region: Option<String>,
    /// Session tags added to every session of this identity (the operator adds
    /// `sales-operator.dev/identity`): at most 40, keys of 1-128 and values of at most 256
    /// letters, digits, spaces and `_ . : / = + - @`, no key starting with `aws:` or
    /// `sales-operator.dev/`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 40, "additionalProperties" = {"type": "string", "maxLength": 256}))]
    #[x_kube(validation = Rule::new("self.all(k, k.size() >= 1 && k.size() <= 128 && !k.startsWith('sales-operator.dev/') && !k.matches('^[aA][wW][sS]:'))").message("keys must be 1 to 128 characters and not use the reserved prefixes 'sales-operator.dev/' or 'aws:'"))]
    pub session_tags: BTreeMap<String, String>,
    /// The namespaces whose SalesPipelines may use this identity: listed by name, selected by
    /// label, or both (a namespace matching either may). Required and never empty: an identity is
    /// granted, not open.
    pub namespace_selector: NamespaceSelector,
    /// Whether the pipelines of the selected namespaces that name no identity use this one. Two
    /// defaults for one namespace stall its pipelines that name none (`IdentityAmbiguous`).
    #[serde(default)]
    pub default: bool,
}

/// An IAM role to assume and the ExternalId its trust policy requires (an AwsIdentity's, an
/// OrderGenerator's `spec.assumeRole`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoleToAssume {
    /// The role: `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`. Its trust policy must allow the
    /// caller's role (the operator's, or the generator pods') sts:AssumeRole and sts:TagSession:
    /// `sales-operator iam-policy --trust-policy CALLER_ROLE_ARN` prints one.
    #[x_kube(validation = Rule::new(r"self.matches('^arn:aws[a-z-]*:iam::[0-9]{12}:role/([A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,64}$')").message("must be an IAM role ARN: arn:aws:iam::123456789012:role/NAME"))]
    #[schemars(length(max = 2048))]
    pub role_arn: String,
    /// The ExternalId the role's trust policy requires: 2-1,224 letters, digits or `+=,.@:/_-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1224))]
    #[x_kube(validation = Rule::new(r"self.size() >= 2 && self.matches('^[A-Za-z0-9+=,.@:/_-]+$')").message("must be 2-1224 letters, digits or +=,.@:/_-"))]
    pub external_id: Option<String>,
}

/// Namespaces by name and/or by label (a namespace matching either is selected).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.names) && size(self.names) > 0) || (has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)").message("must list names, matchLabels or matchExpressions: an empty selector would grant no namespace"))]
pub struct NamespaceSelector {
    /// Namespace names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 1000, "items" = {"type": "string", "maxLength": 63}))]
    pub names: Vec<String>,
    /// Labels a namespace must all carry (as in a LabelSelector).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Label requirements a namespace must all meet (as in a LabelSelector).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 32))]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

impl NamespaceSelector {
    /// Whether namespace `name` with `labels` is selected.
    pub fn selects(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        if self.names.iter().any(|n| n == name) {
            return true;
        }
        if self.match_labels.is_empty() && self.match_expressions.is_empty() {
            return false;
        }
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| requirement_met(r, labels))
    }

    /// Whether deciding needs the namespace's labels.
    pub fn uses_labels(&self) -> bool {
        !self.match_labels.is_empty() || !self.match_expressions.is_empty()
    }
}

fn requirement_met(r: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&r.key);
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        // The API server accepts any string here: an operator it does not know selects nothing.
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn requirement(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn a_namespace_is_selected_by_name_or_by_every_label_rule() {
        let by_name = NamespaceSelector { names: vec!["team-a".into()], ..Default::default() };
        assert!(by_name.selects("team-a", &labels(&[])));
        assert!(!by_name.selects("team-b", &labels(&[("team", "a")])));
        assert!(!by_name.uses_labels());

        let by_labels = NamespaceSelector {
            match_labels: labels(&[("team", "a")]),
            match_expressions: vec![
                requirement("env", "In", &["prod", "staging"]),
                requirement("frozen", "DoesNotExist", &[]),
            ],
            ..Default::default()
        };
        assert!(by_labels.uses_labels());
        assert!(by_labels.selects("x", &labels(&[("team", "a"), ("env", "prod")])));
        assert!(!by_labels.selects("x", &labels(&[("team", "a"), ("env", "dev")])), "env not in the list");
        assert!(!by_labels.selects("x", &labels(&[("team", "b"), ("env", "prod")])), "matchLabels too");
        assert!(!by_labels.selects("x", &labels(&[("team", "a"), ("env", "prod"), ("frozen", "")])));
        let not_in =
            NamespaceSelector { match_expressions: vec![requirement("env", "NotIn", &["prod"])], ..Default::default() };
        assert!(not_in.selects("x", &labels(&[])) && !not_in.selects("x", &labels(&[("env", "prod")])));
        let exists =
            NamespaceSelector { match_expressions: vec![requirement("team", "Exists", &[])], ..Default::default() };
        assert!(exists.selects("x", &labels(&[("team", "")])) && !exists.selects("x", &labels(&[])));
        let unknown =
            NamespaceSelector { match_expressions: vec![requirement("team", "Gt", &["1"])], ..Default::default() };
        assert!(!unknown.selects("x", &labels(&[("team", "2")])));
        assert!(!NamespaceSelector::default().selects("x", &labels(&[])), "an empty selector grants nothing");
    }
}

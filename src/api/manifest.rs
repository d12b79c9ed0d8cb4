//! Reading a SalesPipeline manifest from YAML with the checks the API server
//! would make: types and enum values (serde, with the field path), unknown
//! fields, and the CRD's own CEL rules (evaluated client-side), so the CLI
//! rejects exactly what `kubectl apply` would, before any AWS call.

use std::fmt;

use kube::Resource;
use serde::de::DeserializeOwned;

use super::SalesPipeline;

/// One problem with a manifest, named by its field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// e.g. `spec.stream.shardCount`
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{source_name} is not valid YAML: {message}")]
    Yaml { source_name: String, message: String },
    #[error("{source_name} is not a valid {kind}:\n{}", list(.errors))]
    Invalid { source_name: String, kind: &'static str, errors: Vec<FieldError> },
}

fn list(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n")
}

fn field(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.to_string(), message: message.into() }
}

/// Reads and validates a SalesPipeline manifest file.
pub fn read_pipeline(path: &str) -> Result<SalesPipeline, ManifestError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.to_string(), source })?;
    parse_pipeline(&text, path)
}

/// Parses and validates one SalesPipeline document.
pub fn parse_pipeline(text: &str, source_name: &str) -> Result<SalesPipeline, ManifestError> {
    let value: serde_json::Value = serde_saphyr::from_str(text)
        .map_err(|e| ManifestError::Yaml { source_name: source_name.to_string(), message: e.to_string() })?;
    let invalid =
        |errors| ManifestError::Invalid { source_name: source_name.to_string(), kind: "SalesPipeline", errors };
    let mut errors = check_header::<SalesPipeline>(&value);
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    let pipeline: SalesPipeline = match typed(value) {
        Ok(p) => p,
        Err(e) => return Err(invalid(e)),
    };
    if let Err(cel) = pipeline.validate_cel() {
        errors.extend(cel.into_vec().into_iter().map(|e| field(&e.field_path, e.message)));
    }
    errors.extend(check_lists(&pipeline));
    if errors.is_empty() {
        Ok(pipeline)
    } else {
        Err(invalid(errors))
    }
}

/// The list constraints the schema states without CEL (sets, enum items).
fn check_lists(pipeline: &SalesPipeline) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let events = &pipeline.spec.pipe.event_names;
    for (i, e) in events.iter().enumerate() {
        if events[..i].contains(e) {
            errors.push(field(&format!("spec.pipe.eventNames[{i}]"), format!("duplicate value {:?}", e.as_str())));
        }
    }
    let queries = &pipeline.spec.analytics.named_queries;
    let allowed: Vec<&str> = crate::queries::BUILT_IN.iter().map(|q| q.name).collect();
    for (i, q) in queries.iter().enumerate() {
        if !allowed.contains(&q.as_str()) {
            errors.push(field(
                &format!("spec.analytics.namedQueries[{i}]"),
                format!("unsupported value {q:?}: supported values: {}", allowed.join(", ")),
            ));
        } else if queries[..i].contains(q) {
            errors.push(field(&format!("spec.analytics.namedQueries[{i}]"), format!("duplicate value {q:?}")));
        }
    }
    errors
}

/// apiVersion, kind and metadata.name, as the API server requires them.
fn check_header<K: Resource<DynamicType = ()>>(value: &serde_json::Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(obj) = value.as_object() else {
        return vec![field("(document)", "must be a mapping with apiVersion, kind, metadata and spec")];
    };
    let api_version = K::api_version(&());
    let kind = K::kind(&());
    if obj.get("apiVersion").and_then(|v| v.as_str()) != Some(&*api_version) {
        errors.push(field("apiVersion", format!("must be {api_version}")));
    }
    if obj.get("kind").and_then(|v| v.as_str()) != Some(&*kind) {
        errors.push(field("kind", format!("must be {kind}")));
    }
    match obj.get("metadata").and_then(|m| m.get("name")).and_then(|n| n.as_str()) {
        None => errors.push(field("metadata.name", "is required")),
        Some(name) if !is_dns_subdomain(name) => errors.push(field(
            "metadata.name",
            "must be a DNS subdomain: at most 253 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit",
        )),
        Some(_) => {}
    }
    if let Some(ns) = obj.get("metadata").and_then(|m| m.get("namespace")) {
        if !ns.as_str().is_some_and(is_dns_label) {
            errors
                .push(field("metadata.namespace", "must be a DNS label: at most 63 lowercase letters, digits or '-'"));
        }
    }
    if !obj.get("spec").is_some_and(|s| s.is_object()) {
        errors.push(field("spec", "is required and must be a mapping (it may be empty: spec: {})"));
    }
    errors
}

/// Deserializes with field paths, refusing unknown fields (as `kubectl apply`'s strict validation does).
fn typed<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Vec<FieldError>> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let result: Result<T, _> = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut record));
    let mut errors: Vec<FieldError> = unknown
        .into_iter()
        .filter(|p| {
            !["apiVersion", "kind", "status"].contains(&p.as_str())
                && !p.starts_with("metadata.")
                && !p.starts_with("status.")
        })
        .map(|p| field(&p, "unknown field"))
        .collect();
    match result {
        Ok(v) if errors.is_empty() => Ok(v),
        Ok(_) => Err(errors),
        Err(e) => {
            let path = e.path().to_string();
            errors.push(field(if path == "." { "(document)" } else { &path }, e.into_inner().to_string()));
            Err(errors)
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(yaml: &str) -> Vec<FieldError> {
        match parse_pipeline(yaml, "test.yaml") {
            Err(ManifestError::Invalid { errors, .. }) => errors,
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    const HEADER: &str = "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: shop\n";

    #[test]
    fn minimal_manifest_gets_every_default() {
        let p = parse_pipeline(&format!("{HEADER}spec: {{}}\n"), "t").unwrap();
        assert_eq!(p.spec.delivery.buffer_seconds, 60);
        assert_eq!(p.spec.stream.retention_hours, 24);
        assert!(p.spec.iam.create_roles);
        assert_eq!(p.spec.analytics.named_queries.len(), crate::queries::BUILT_IN.len());
    }

    #[test]
    fn unknown_enum_value_names_field_and_allowed_values() {
        let e = errors(&format!("{HEADER}spec:\n  stream:\n    mode: SOMETIMES\n"));
        assert_eq!(e[0].field, "spec.stream.mode");
        assert!(e[0].message.contains("ON_DEMAND") && e[0].message.contains("PROVISIONED"), "{}", e[0].message);
    }

    #[test]
    fn cel_rules_are_evaluated_client_side() {
        let e = errors(&format!("{HEADER}spec:\n  stream:\n    mode: PROVISIONED\n    shardCount: -3\n"));
        assert!(
            e.iter().any(|e| e.field == "spec.stream.shardCount" && e.message.contains("between 1 and 500")),
            "{e:?}"
        );
    }

    #[test]
    fn schema_enum_of_named_queries_is_the_built_in_list() {
        let crd = serde_json::to_value(<SalesPipeline as kube::CustomResourceExt>::crd()).unwrap();
        let items = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["analytics"]["properties"]["namedQueries"]["items"]["enum"];
        let names: Vec<&str> = crate::queries::BUILT_IN.iter().map(|q| q.name).collect();
        assert_eq!(items, &serde_json::json!(names));
    }

    #[test]
    fn duplicate_event_names_are_refused() {
        let e = errors(&format!("{HEADER}spec:\n  pipe:\n    eventNames: [INSERT, MODIFY, INSERT]\n"));
        assert_eq!(e, vec![field("spec.pipe.eventNames[2]", "duplicate value \"INSERT\"")]);
    }

    #[test]
    fn unknown_field_is_refused() {
        let e = errors(&format!("{HEADER}spec:\n  stream:\n    shards: 2\n"));
        assert_eq!(e, vec![field("spec.stream.shards", "unknown field")]);
    }

    #[test]
    fn wrong_kind_and_missing_name_are_reported_together() {
        let e = errors("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\nspec: {}\n");
        let fields: Vec<_> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["apiVersion", "kind", "metadata.name"]);
    }
}

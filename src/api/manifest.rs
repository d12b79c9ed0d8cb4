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
    let yaml = |message: String| ManifestError::Yaml { source_name: source_name.to_string(), message };
    // Empty documents are skipped: a trailing `---` is fine, as it is for kubectl.
    let mut documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|e| yaml(yaml_message(&e)))?;
    let value = match documents.len() {
        1 => documents.remove(0),
        0 => return Err(yaml("it holds no YAML document (a SalesPipeline is expected)".into())),
        n => return Err(yaml(format!("it holds {n} YAML documents: give one SalesPipeline per file"))),
    };
    let invalid =
        |errors| ManifestError::Invalid { source_name: source_name.to_string(), kind: "SalesPipeline", errors };
    let mut errors = check_header::<SalesPipeline>(&value);
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    // As the API server does under strict field validation (`kubectl --validate=strict`, the
    // default): unknown fields fail the decoding, before and instead of any schema check; then
    // every schema error at once; then CEL on a well-typed object.
    if let (Some(spec), Some(spec_schema)) = (value.get("spec"), pipeline_schema().pointer("/properties/spec")) {
        unknown_fields(spec, spec_schema, "spec", &mut errors);
        if !errors.is_empty() {
            // By path, whatever order the document (or serde_json's map) has.
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            return Err(invalid(errors));
        }
        check_schema(spec, spec_schema, "spec", &mut errors);
    }
    let pipeline = match typed::<SalesPipeline>(value) {
        Ok(p) if errors.is_empty() => p,
        Ok(_) => return Err(invalid(errors)),
        Err(typing) => {
            for e in typing {
                if !errors.iter().any(|known| known.field == e.field) {
                    errors.push(e);
                }
            }
            return Err(invalid(errors));
        }
    };
    if let Err(cel) = pipeline.validate_cel() {
        errors.extend(cel.into_vec().into_iter().map(|e| field(&e.field_path, e.message)));
    }
    if errors.is_empty() {
        Ok(pipeline)
    } else {
        Err(invalid(errors))
    }
}

/// A YAML error in the user's terms (the parser's own hints name its options).
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let at = e.location().map(|l| format!("line {} column {}: ", l.line(), l.column())).unwrap_or_default();
    match e.without_snippet() {
        serde_saphyr::Error::DuplicateMappingKey { key: Some(key), .. } => {
            format!("{at}the key `{key}` appears twice in one mapping; each key may appear once")
        }
        serde_saphyr::Error::DuplicateMappingKey { key: None, .. } => {
            format!("{at}a key appears twice in one mapping; each key may appear once")
        }
        other => other.to_string(),
    }
}

/// The SalesPipeline CRD's `openAPIV3Schema`, as `sales-operator crd` prints it.
fn pipeline_schema() -> &'static serde_json::Value {
    static SCHEMA: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let crd = <SalesPipeline as kube::CustomResourceExt>::crd();
        crd.spec
            .versions
            .first()
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or_default()
    })
}

/// The fields of `value` that `schema` does not declare (what the API server's pruning finds and
/// strict validation refuses), with the API server's paths (`spec.stream.shardCont`).
fn unknown_fields(value: &serde_json::Value, schema: &serde_json::Value, path: &str, errors: &mut Vec<FieldError>) {
    use serde_json::Value;
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (key, v) in map {
                let child = format!("{path}.{key}");
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(s), _) => unknown_fields(v, s, &child, errors),
                    (None, Some(s)) if s.is_object() => unknown_fields(v, s, &child, errors),
                    (None, Some(Value::Bool(true))) => {}
                    (None, _) if properties.is_none() && additional.is_none() => {}
                    (None, _) => errors.push(field(&child, "unknown field")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    unknown_fields(v, s, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

/// A scalar as the API server quotes it in messages (`"INSERT"`, `7`).
fn scalar_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// The structural-schema checks the API server makes beyond types and unknown fields (which
/// the typed deserialisation reports): `enum`, `maxItems`/`minItems`, `maxProperties`, `maxLength`/`minLength`,
/// `minimum`/`maximum`, and unique items in `x-kubernetes-list-type: set` and `map` lists,
/// with the API server's field paths.
fn check_schema(value: &serde_json::Value, schema: &serde_json::Value, path: &str, errors: &mut Vec<FieldError>) {
    use serde_json::Value;
    let limit = |key: &str| schema.get(key).and_then(Value::as_f64);
    match value {
        Value::String(s) => {
            if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
                if !allowed.contains(value) {
                    let list: Vec<String> = allowed.iter().map(scalar_text).collect();
                    errors.push(field(
                        path,
                        format!("Unsupported value: {}: supported values: {}", scalar_text(value), list.join(", ")),
                    ));
                }
            }
            let len = s.chars().count() as f64;
            if let Some(max) = limit("maxLength").filter(|max| len > *max) {
                errors.push(field(path, format!("Too long: may not be more than {max} bytes")));
            }
            if let Some(min) = limit("minLength").filter(|min| len < *min) {
                errors.push(field(path, format!("Invalid value: should be at least {min} chars long")));
            }
        }
        Value::Number(n) => {
            let n = n.as_f64().unwrap_or_default();
            if let Some(max) = limit("maximum").filter(|max| n > *max) {
                errors.push(field(path, format!("Invalid value: {value}: should be less than or equal to {max}")));
            }
            if let Some(min) = limit("minimum").filter(|min| n < *min) {
                errors.push(field(path, format!("Invalid value: {value}: should be greater than or equal to {min}")));
            }
        }
        Value::Object(map) => {
            if let Some(max) = limit("maxProperties").filter(|max| map.len() as f64 > *max) {
                errors.push(field(path, format!("Too many: {}: must have at most {max} items", map.len())));
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, v) in map {
                if let Some(child) = properties.and_then(|p| p.get(key)).or(additional) {
                    check_schema(v, child, &format!("{path}.{key}"), errors);
                }
            }
        }
        Value::Array(items) => {
            let count = items.len() as f64;
            if let Some(max) = limit("maxItems").filter(|max| count > *max) {
                errors.push(field(path, format!("Too many: {}: must have at most {max} items", items.len())));
            }
            if let Some(min) = limit("minItems").filter(|min| count < *min) {
                errors.push(field(
                    path,
                    format!("Invalid value: {} items: should have at least {min} items", items.len()),
                ));
            }
            let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
            let map_keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let key = |v: &Value| map_keys.iter().map(|k| v.get(*k).cloned()).collect::<Vec<_>>();
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                let duplicate = match list_type {
                    Some("set") => items[..i].contains(item),
                    Some("map") => items[..i].iter().any(|earlier| key(earlier) == key(item)),
                    _ => false,
                };
                if duplicate {
                    errors.push(field(&item_path, format!("Duplicate value: {}", scalar_text(item))));
                }
                if let Some(item_schema) = schema.get("items") {
                    check_schema(item, item_schema, &item_path, errors);
                }
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
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
    let metadata = obj.get("metadata");
    match metadata.and_then(|m| m.get("name")) {
        None => errors.push(field("metadata.name", "Required value: name or generateName is required")),
        Some(name) => {
            for problem in name.as_str().map_or_else(|| vec!["must be a string".to_string()], dns1123_subdomain) {
                errors.push(field("metadata.name", problem));
            }
        }
    }
    if let Some(ns) = metadata.and_then(|m| m.get("namespace")) {
        for problem in ns.as_str().map_or_else(|| vec!["must be a string".to_string()], dns1123_label) {
            errors.push(field("metadata.namespace", problem));
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

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn is_dns1123_label_shape(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// What Kubernetes's `IsDNS1123Label` reports (namespaces): at most 63 characters of the label shape.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        problems.push(format!("must be no more than {DNS1123_LABEL_MAX} characters"));
    }
    if !is_dns1123_label_shape(s) {
        problems.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character"
                .to_string(),
        );
    }
    problems
}

/// What Kubernetes's `IsDNS1123Subdomain` reports (names of custom resources): at most 253
/// characters in all, dot-separated labels of the label shape. Unlike a DNS name, a part may be
/// longer than 63 characters: the API server limits only the whole.
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        problems.push(format!("must be no more than {DNS1123_SUBDOMAIN_MAX} characters"));
    }
    if !s.split('.').all(is_dns1123_label_shape) {
        problems.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
             and must start and end with an alphanumeric character"
                .to_string(),
        );
    }
    problems
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
        assert_eq!(p.spec.analytics.named_queries.len(), crate::named_queries::BUILT_IN.len());
    }

    /// What IAM, Firehose and the other services refuse half-way through an apply is refused
    /// here, one rule per message.
    #[test]
    fn tags_meet_every_services_rules_and_each_error_names_one_rule() {
        let tags = |body: &str| format!("{HEADER}spec:\n  tags:\n{body}");
        let many = |n: usize| (0..n).map(|i| format!("    k{i}: v\n")).collect::<String>();
        assert!(parse_pipeline(&tags(&many(47)), "t").is_ok());
        assert!(parse_pipeline(&tags("    équipe: ventes été\n    app:tier: a/b=c+d-e@f_g.h\n"), "t").is_ok());
        let one = |body: &str| {
            let e = errors(&tags(body));
            assert_eq!(e.len(), 1, "{e:?}");
            assert_eq!(e[0].field, "spec.tags");
            e[0].message.clone()
        };
        assert_eq!(one(&many(48)), "Too many: 48: must have at most 47 items");
        assert!(one("    team#1: a\n").starts_with("keys and values may hold only letters"));
        assert!(one("    team: \"🚀\"\n").starts_with("keys and values may hold only letters"));
        assert!(one("    AWS:owner: me\n").starts_with("keys must not use the reserved prefixes"));
        assert_eq!(one("    \"\": v\n"), "keys must be 1 to 128 characters");
        let long = errors(&tags(&format!("    team: {}\n", "v".repeat(257))));
        assert_eq!(long.len(), 1, "{long:?}");
        assert_eq!(long[0].field, "spec.tags.team");
        assert!(long[0].message.starts_with("Too long: may not be more than 256"), "{}", long[0].message);
    }

    #[test]
    fn a_region_must_be_one_the_sdk_knows() {
        for known in ["eu-west-1", "us-gov-west-1", "cn-north-1", "eusc-de-east-1", "ap-southeast-7"] {
            assert!(parse_pipeline(&format!("{HEADER}spec:\n  region: {known}\n"), "t").is_ok(), "{known}");
        }
        let e = errors(&format!("{HEADER}spec:\n  region: xx-yyyy-1\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].field, "spec.region");
        assert!(e[0].message.starts_with("Unsupported value: \"xx-yyyy-1\": supported values: "), "{}", e[0].message);
        assert!(e[0].message.contains("\"eu-west-1\""), "{}", e[0].message);
    }

    #[test]
    fn unknown_enum_value_names_field_and_allowed_values() {
        let e = errors(&format!("{HEADER}spec:\n  stream:\n    mode: SOMETIMES\n"));
        assert_eq!(e[0].field, "spec.stream.mode");
        assert!(e[0].message.contains("ON_DEMAND") && e[0].message.contains("PROVISIONED"), "{}", e[0].message);
    }

    #[test]
    fn unknown_fields_fail_first_and_alone_as_under_strict_validation() {
        let e = errors(&format!(
            "{HEADER}spec:\n  stream:\n    mode: PROVISONED\n    shardCont: 2\n  delivery:\n    bufferSecond: 30\n  deletionPolicy: delete\n  tags:\n    team: sales\n"
        ));
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["spec.delivery.bufferSecond", "spec.stream.shardCont"], "{e:?}");
        assert!(e.iter().all(|e| e.message == "unknown field"));
        // Fixed spelling: now the schema's verdicts.
        let e = errors(&format!(
            "{HEADER}spec:\n  stream:\n    mode: PROVISONED\n    shardCount: 2\n  deletionPolicy: delete\n"
        ));
        let mut fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["spec.deletionPolicy", "spec.stream.mode"], "{e:?}");
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
        let names: Vec<&str> = crate::named_queries::BUILT_IN.iter().map(|q| q.name).collect();
        assert_eq!(items, &serde_json::json!(names));
    }

    #[test]
    fn a_trailing_empty_document_is_accepted_and_yaml_errors_speak_the_users_terms() {
        let one = "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata: {name: a}\nspec: {}\n";
        assert!(parse_pipeline(&format!("---\n{one}---\n"), "m.yaml").is_ok());
        let two = parse_pipeline(&format!("{one}---\n{one}"), "m.yaml").unwrap_err().to_string();
        assert_eq!(two, "m.yaml is not valid YAML: it holds 2 YAML documents: give one SalesPipeline per file");
        let none = parse_pipeline("---\n", "m.yaml").unwrap_err().to_string();
        assert!(none.contains("holds no YAML document"), "{none}");
        let twice = "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: a\n  name: b\n";
        let twice = parse_pipeline(twice, "m.yaml").unwrap_err().to_string();
        assert_eq!(twice, "m.yaml is not valid YAML: line 5 column 3: the key `name` appears twice in one mapping; each key may appear once");
    }

    #[test]
    fn duplicate_event_names_are_refused() {
        let e = errors(&format!("{HEADER}spec:\n  pipe:\n    eventNames: [INSERT, MODIFY, INSERT]\n"));
        assert_eq!(e, vec![field("spec.pipe.eventNames[2]", "Duplicate value: \"INSERT\"")]);
    }

    #[test]
    fn unknown_field_is_refused() {
        let e = errors(&format!("{HEADER}spec:\n  stream:\n    shards: 2\n"));
        assert_eq!(e, vec![field("spec.stream.shards", "unknown field")]);
    }

    fn named(name: &str) -> String {
        format!("apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\nspec: {{}}\n")
    }

    #[test]
    fn names_follow_the_api_servers_dns_subdomain_rule() {
        // A part may exceed 63 characters: Kubernetes limits only the whole name to 253.
        for ok in ["a".repeat(111), "a".repeat(253), format!("{}.{}", "b".repeat(120), "c".repeat(132)), "1.2.3".into()]
        {
            assert!(parse_pipeline(&named(&ok), "t").is_ok(), "{} characters", ok.len());
        }
        let too_long = errors(&named(&"a".repeat(254)));
        assert_eq!(too_long, vec![field("metadata.name", "must be no more than 253 characters")]);
        for bad in ["Shop", "-shop", "shop.", "a..b", "shop_1"] {
            let e = errors(&named(bad));
            assert_eq!(e.len(), 1, "{bad}: {e:?}");
            assert!(e[0].field == "metadata.name" && e[0].message.contains("RFC 1123 subdomain"), "{bad}: {e:?}");
        }
    }

    #[test]
    fn too_many_list_items_are_refused_as_the_schema_says() {
        let e = errors(&format!("{HEADER}spec:\n  pipe:\n    eventNames: [INSERT, MODIFY, REMOVE, INSERT]\n"));
        let fields: Vec<_> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.pipe.eventNames", "spec.pipe.eventNames[3]"], "{e:?}");
    }

    #[test]
    fn wrong_kind_and_missing_name_are_reported_together() {
        let e = errors("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\nspec: {}\n");
        let fields: Vec<_> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["apiVersion", "kind", "metadata.name"]);
    }
}

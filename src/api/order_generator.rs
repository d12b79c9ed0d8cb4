//! The `OrderGenerator` custom resource: the order workload of the original
//! project (random sales written into the pipeline's DynamoDB table) as pods
//! running `sales-operator generate`.
//!
//! The catalogue types here are also the format of `generate --catalog FILE`
//! and of `--catalog-json` / `SALES_OPERATOR_CATALOG`, so the controller can
//! hand `spec.catalog` to the pods as it is (see `crate::generator::products`).

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};

use crate::api::conditions::NOT_OBSERVED;
use serde::{Deserialize, Serialize};

/// Lowest and highest `ordersPerSecond` the CRD accepts (the original wrote one order every 3 s).
pub const MIN_ORDERS_PER_SECOND: f64 = 0.1;
pub const MAX_ORDERS_PER_SECOND: f64 = 100_000.0;
/// Most replicas one OrderGenerator may ask for.
pub const MAX_REPLICAS: i32 = 100;
/// Most products and stores in a catalogue (bounds the cost of the CEL rules).
pub const MAX_CATALOG_ITEMS: usize = 200;
/// Prices: up to 8 integer digits and at most 2 decimals, e.g. `10`, `10.5`, `499.99`.
pub const PRICE_PATTERN: &str = r"^[0-9]{1,8}(\.[0-9]{1,2})?$";

/// A workload that writes random orders into a sales pipeline's DynamoDB table
/// at a steady rate. The operator runs it as a Deployment of
/// `sales-operator generate` pods; the rate is split across the replicas.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sales-operator.dev",
    version = "v1alpha1",
    kind = "OrderGenerator",
    doc = "Random orders written into a SalesPipeline's DynamoDB table (or any table) at a steady rate, by a Deployment of `sales-operator generate` pods that sales-operator manages. Scaled to zero while paused or while the pipeline is missing, not Ready or paused; `kubectl scale og NAME --replicas=N` works.",
    plural = "ordergenerators",
    shortname = "og",
    category = "sales",
    namespaced,
    cel,
    status = "OrderGeneratorStatus",
    scale(spec_replicas_path = ".spec.replicas", status_replicas_path = ".status.replicas"),
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Rate","type":"number","description":"orders per second, all replicas together","jsonPath":".spec.ordersPerSecond"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Table","type":"string","jsonPath":".status.tableName"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Available","type":"integer","priority":1,"jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.pipelineRef) != has(self.tableName)").message("exactly one of pipelineRef or tableName must be set"))]
pub struct OrderGeneratorSpec {
    /// The SalesPipeline (same namespace) whose table receives the orders;
    /// the generator waits until it is Ready. Exactly one of pipelineRef and tableName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_ref: Option<PipelineRef>,
    /// An existing DynamoDB table (partition key `orderid`, string) instead of a pipeline's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 255), pattern(r"^[A-Za-z0-9_.-]{3,255}$"))]
    pub table_name: Option<String>,
    /// Orders per second of all replicas together, from 0.1 (the original
    /// project wrote one order every 3 seconds: 0.333) to 100000.
    #[serde(default = "default_orders_per_second")]
    #[x_kube(validation = Rule::new("self >= 0.1 && self <= 100000.0").message("must be between 0.1 and 100000 orders per second"))]
    pub orders_per_second: f64,
    /// Generator pods; each writes `ordersPerSecond / replicas`.
    #[serde(default = "default_replicas")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 100").message("must be between 0 and 100"))]
    pub replicas: i32,
    /// Stop writing: scales the generator to zero pods.
    #[serde(default)]
    pub paused: bool,
    /// Products, price and quantity ranges, stores and customers to draw orders
    /// from; every part left out takes the built-in default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<OrderCatalog>,
    /// Makes the orders reproducible: with a seed, each replica's order ids and
    /// contents (all but the timestamp) are the same on every run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("must not be negative"))]
    pub seed: Option<i64>,
    /// Container image of the generator pods. Default: the operator's own image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// ServiceAccount of the generator pods, e.g. one with an IAM role for `dynamodb:BatchWriteItem`
    /// on the table (IRSA annotation or EKS Pod Identity association; the policy:
    /// `sales-operator iam-policy --generator-table-arn ARN`). Default: the namespace's `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.size() <= 253 && self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("must be a ServiceAccount name: lowercase letters, digits, '-' or '.', at most 253"))]
    pub service_account_name: Option<String>,
    /// An IAM role the pods assume (STS AssumeRole with their ServiceAccount's credentials) to
    /// write into a table in another AWS account, e.g. a pipeline built through an AwsIdentity:
    /// a role in the table's account whose permissions are `sales-operator iam-policy
    /// --generator-table-arn TABLE_ARN` and whose trust policy is `sales-operator iam-policy
    /// --trust-policy <the pods' role ARN>` (docs/identities.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<super::aws_identity::RoleToAssume>,
    /// Seconds a rollout may make no progress (e.g. a pod that cannot be scheduled) before the
    /// generator is Stalled with the Deployment's `ProgressDeadlineExceeded` message. Default:
    /// the Deployment default, 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 86400").message("must be between 1 and 86400 seconds"))]
    pub progress_deadline_seconds: Option<i32>,
    /// CPU and memory of each generator pod (`requests` and `limits`, as in a
    /// container). Default: the operator's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for OrderGeneratorSpec {
    fn default() -> Self {
        Self {
            pipeline_ref: None,
            table_name: None,
            orders_per_second: default_orders_per_second(),
            replicas: default_replicas(),
            paused: false,
            catalog: None,
            seed: None,
            image: None,
            service_account_name: None,
            assume_role: None,
            progress_deadline_seconds: None,
            resources: None,
        }
    }
}

/// A Kubernetes resource quantity: an integer or a string such as `500m` or `1Gi`
/// (k8s-openapi's own schema repeats a 2 kB description for every quantity).
fn quantity_schema() -> serde_json::Value {
    serde_json::json!({
        "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
        "x-kubernetes-int-or-string": true,
    })
}

/// `requests` and `limits` of a container (dynamic resource claims are not for generator pods).
fn resources_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let map = |description: &str| {
        let mut quantity = quantity_schema();
        quantity["description"] = "A quantity such as `500m` (CPU) or `128Mi` (memory).".into();
        serde_json::json!({
            "type": "object",
            "description": description,
            "additionalProperties": quantity,
            "maxProperties": 16,
        })
    };
    schemars::json_schema!({
        "type": "object",
        "nullable": true,
        "properties": {
            "limits": map("Most CPU and memory one generator pod may use, e.g. `{cpu: \"1\", memory: 128Mi}`."),
            "requests": map("CPU and memory reserved for one generator pod, e.g. `{cpu: 50m, memory: 32Mi}`."),
        },
    })
}

fn default_orders_per_second() -> f64 {
    1.0
}

fn default_replicas() -> i32 {
    1
}

/// A SalesPipeline in the OrderGenerator's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRef {
    /// Name of the SalesPipeline (`kubectl get sp`), in the OrderGenerator's namespace.
    #[schemars(length(min = 1, max = 253), pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
}

/// What orders are drawn from. Also the format of `generate --catalog FILE`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderCatalog {
    /// Products sold, each equally likely. Default: Laptop, Phone, Tablet, Headphones, Charger.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"], "maxItems" = 200))]
    pub products: Vec<CatalogProduct>,
    /// Units per order. Default: 1 to 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<QuantityRange>,
    /// Stores orders are placed in, each equally likely. Default: six stores in six regions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"], "maxItems" = 200))]
    pub stores: Vec<CatalogStore>,
    /// Number of distinct customers (`c-000001` ...). Default: 5000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 10000000").message("must be between 1 and 10000000"))]
    pub customers: Option<i64>,
}

/// A product and its unit price range (uniform, in cents).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("double(self.minPrice) <= double(self.maxPrice)").message("maxPrice must not be below minPrice").field_path(".maxPrice"))]
pub struct CatalogProduct {
    /// Product name as it appears in the orders (`product_name`), e.g. "Laptop"; unique in the list.
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// Product category for the analysis (`category`), e.g. "Computers".
    #[schemars(length(min = 1, max = 64))]
    pub category: String,
    /// Lowest unit price, a decimal string with at most 2 decimals, e.g. "10.00".
    #[schemars(length(min = 1, max = 11), pattern(PRICE_PATTERN))]
    #[x_kube(validation = Rule::new("double(self) >= 0.01").message("must be at least 0.01"))]
    pub min_price: String,
    /// Highest unit price, e.g. "500.00".
    #[schemars(length(min = 1, max = 11), pattern(PRICE_PATTERN))]
    pub max_price: String,
}

/// Inclusive range of units per order.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.min <= self.max").message("max must not be below min").field_path(".max"))]
pub struct QuantityRange {
    /// Fewest units in one order, 1 to 1000000.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000000").message("must be between 1 and 1000000"))]
    pub min: i64,
    /// Most units in one order, 1 to 1000000, not below `min`.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000000").message("must be between 1 and 1000000"))]
    pub max: i64,
}

/// A store and the sales region it belongs to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CatalogStore {
    /// Store id as it appears in the orders (`store_id`), e.g. "store-paris"; unique in the list.
    #[schemars(length(min = 1, max = 64))]
    pub id: String,
    /// Sales region of the store (`region` in the orders), e.g. "eu-west".
    #[schemars(length(min = 1, max = 64))]
    pub region: String,
}

/// Observed state, kstatus-compatible.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
// The API server fills this in on a new object, so that before the operator has looked at it
// the object says "not observed yet" (kstatus: InProgress, Argo CD: Progressing) instead of
// nothing, which kstatus reads as Current.
#[schemars(extend("default" = {"observedGeneration": NOT_OBSERVED}))]
pub struct OrderGeneratorStatus {
    /// The generation the conditions describe; -1 until the operator has looked at the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling and Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Generator pods wanted (0 while paused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Generator pods running and ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// The DynamoDB table the orders are written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    fn generator(spec: serde_json::Value) -> OrderGenerator {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "sales-operator.dev/v1alpha1",
            "kind": "OrderGenerator",
            "metadata": {"name": "og", "namespace": "shop"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn cel_errors(spec: serde_json::Value) -> Vec<String> {
        match generator(spec).validate_cel() {
            Ok(()) => vec![],
            Err(e) => e.into_vec().into_iter().map(|e| format!("{}: {}", e.field_path, e.message)).collect(),
        }
    }

    #[test]
    fn a_new_objects_status_says_not_observed_yet_in_both_crds() {
        for crd in [OrderGenerator::crd(), crate::api::SalesPipeline::crd()] {
            let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
            let status = &schema["openAPIV3Schema"]["properties"]["status"];
            assert_eq!(status["default"], serde_json::json!({"observedGeneration": -1}), "{}", crd.spec.names.kind);
        }
    }

    #[test]
    fn progress_deadline_is_bounded() {
        let deadline = |s: i64| cel_errors(serde_json::json!({"tableName": "orders", "progressDeadlineSeconds": s}));
        assert_eq!(deadline(5), Vec::<String>::new());
        assert!(deadline(0).iter().any(|e| e.contains("between 1 and 86400")), "{:?}", deadline(0));
    }

    #[test]
    fn minimal_spec_takes_the_defaults() {
        let og = generator(serde_json::json!({"pipelineRef": {"name": "sales"}}));
        assert_eq!(og.spec.orders_per_second, 1.0);
        assert_eq!(og.spec.replicas, 1);
        assert!(!og.spec.paused);
        assert_eq!(cel_errors(serde_json::json!({"pipelineRef": {"name": "sales"}})), Vec::<String>::new());
    }

    #[test]
    fn exactly_one_of_pipeline_ref_and_table_name() {
        let both = cel_errors(serde_json::json!({"pipelineRef": {"name": "sales"}, "tableName": "orders"}));
        assert!(both.iter().any(|e| e.contains("exactly one of pipelineRef or tableName")), "{both:?}");
        let neither = cel_errors(serde_json::json!({}));
        assert!(neither.iter().any(|e| e.contains("exactly one of pipelineRef or tableName")), "{neither:?}");
        assert!(cel_errors(serde_json::json!({"tableName": "orders"})).is_empty());
    }

    #[test]
    fn rate_and_replicas_are_bounded() {
        let errors = cel_errors(serde_json::json!({"tableName": "orders", "ordersPerSecond": 0.05, "replicas": 101}));
        assert!(
            errors.iter().any(|e| e.contains("ordersPerSecond") && e.contains("between 0.1 and 100000")),
            "{errors:?}"
        );
        assert!(errors.iter().any(|e| e.contains("replicas") && e.contains("between 0 and 100")), "{errors:?}");
        assert!(cel_errors(serde_json::json!({"tableName": "orders", "ordersPerSecond": 0.333})).is_empty());
        assert!(cel_errors(serde_json::json!({"tableName": "orders", "ordersPerSecond": 100000})).is_empty());
    }

    #[test]
    fn catalog_price_and_quantity_ranges_are_checked() {
        let errors = cel_errors(serde_json::json!({
            "tableName": "orders",
            "catalog": {
                "products": [{"name": "Laptop", "category": "Computers", "minPrice": "500.00", "maxPrice": "20.00"}],
                "quantity": {"min": 5, "max": 1},
            }
        }));
        assert!(errors.iter().any(|e| e.contains("maxPrice must not be below minPrice")), "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("max must not be below min")), "{errors:?}");
        let ok = cel_errors(serde_json::json!({
            "tableName": "orders",
            "catalog": {"products": [{"name": "Pen", "category": "Office", "minPrice": "0.99", "maxPrice": "1.5"}]}
        }));
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn crd_has_scale_and_status_subresources_and_bounded_lists() {
        let crd = serde_json::to_value(OrderGenerator::crd()).unwrap();
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["subresources"]["scale"]["specReplicasPath"], ".spec.replicas");
        assert!(version["subresources"]["status"].is_object());
        let catalog = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["catalog"];
        assert_eq!(catalog["properties"]["products"]["maxItems"], MAX_CATALOG_ITEMS);
        assert_eq!(catalog["properties"]["stores"]["maxItems"], MAX_CATALOG_ITEMS);
        let price = &catalog["properties"]["products"]["items"]["properties"]["minPrice"];
        assert_eq!(price["pattern"], PRICE_PATTERN);
    }
}

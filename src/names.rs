//! Deterministic, AWS-valid names for every resource of a pipeline.
//!
//! Names derive only from the pipeline's namespace, name and spec, so a retry
//! after a crash finds what the previous attempt created instead of making a
//! second copy.

use sha2::{Digest, Sha256};

use crate::api::SalesPipelineSpec;

/// Longest derived prefix; leaves room for suffixes within every AWS limit
/// (pipe and delivery stream names: 64, role names: 64, buckets: 63).
pub const MAX_PREFIX: usize = 40;

/// The change-event queue's name unless `events-setup --queue-name` says otherwise: one queue
/// for every pipeline of an account and region (docs/change-events.md).
pub const DEFAULT_EVENTS_QUEUE: &str = "sales-operator-change-events";

/// The longest change-event queue name: its rules are named `<queue>-<service>`, at most 64
/// characters.
pub const MAX_EVENTS_QUEUE: usize = 55;

/// Whether `name` can be a change-event queue's name: letters, digits, `-` and `_`, 1 to
/// [`MAX_EVENTS_QUEUE`] (no `.fifo`: EventBridge's events are not ordered).
pub fn valid_events_queue(name: &str) -> bool {
    (1..=MAX_EVENTS_QUEUE).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The AWS names of one pipeline's resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    pub prefix: String,
    pub table: String,
    pub stream: String,
    pub pipe: String,
    pub delivery: String,
    pub bucket: String,
    pub database: String,
    pub glue_table: String,
    pub crawler: String,
    pub workgroup: String,
    pub pipe_role: String,
    pub firehose_role: String,
    pub glue_role: String,
    pub pipe_policy: String,
    pub firehose_policy: String,
    pub glue_policy: String,
}

/// Path of every role the operator creates.
pub const ROLE_PATH: &str = "/sales-operator/";

/// The first `len` hex digits of the SHA-256 of `input`.
pub fn short_hash(input: &str, len: usize) -> String {
    let digest = Sha256::digest(input.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect::<String>()[..len].to_string()
}

/// `<namespace>-<name>`, restricted to `[A-Za-z0-9-]` and at most [`MAX_PREFIX`]
/// characters (a hash of the full name keeps long names distinct).
pub fn default_prefix(namespace: &str, name: &str) -> String {
    let raw = format!("{namespace}-{name}");
    let mut clean: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    if clean.len() > MAX_PREFIX {
        let hash = short_hash(&raw, 8);
        clean.truncate(MAX_PREFIX - 9);
        clean = format!("{}-{hash}", clean.trim_end_matches('-'));
    }
    let trimmed = clean.trim_matches('-');
    if trimmed.is_empty() {
        short_hash(&raw, 8)
    } else {
        trimmed.to_string()
    }
}

/// A bucket name from the prefix: lower case, plus a hash of the pipeline's
/// identity (bucket names are global), always a valid S3 name.
pub fn default_bucket(prefix: &str, namespace: &str, name: &str, region: &str) -> String {
    let hash = short_hash(&format!("{namespace}/{name}/{region}"), 8);
    let mut base: String =
        prefix.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    // Collapse runs of '-' and strip them at the ends.
    while base.contains("--") {
        base = base.replace("--", "-");
    }
    let base = base.trim_matches('-');
    let mut bucket = format!("{base}-{hash}");
    if bucket.starts_with("xn-") || bucket.starts_with("sthree") || bucket.starts_with('-') {
        bucket = format!("so-{bucket}");
    }
    bucket.truncate(63);
    bucket
}

impl Names {
    pub fn derive(namespace: &str, name: &str, spec: &SalesPipelineSpec, region: &str) -> Self {
        let prefix = spec.name_prefix.clone().unwrap_or_else(|| default_prefix(namespace, name));
        let orders = format!("{prefix}-orders");
        let snake = prefix.to_ascii_lowercase().replace('-', "_");
        Self {
            table: spec.table.name.clone().unwrap_or_else(|| orders.clone()),
            stream: spec.stream.name.clone().unwrap_or_else(|| orders.clone()),
            pipe: spec.pipe.name.clone().unwrap_or_else(|| orders.clone()),
            delivery: spec.delivery.name.clone().unwrap_or_else(|| orders.clone()),
            bucket: spec.bucket.name.clone().unwrap_or_else(|| default_bucket(&prefix, namespace, name, region)),
            database: spec.catalog.database.clone().unwrap_or_else(|| format!("{snake}_sales")),
            glue_table: spec.catalog.table.clone(),
            crawler: format!("{prefix}-orders"),
            workgroup: spec.analytics.workgroup.clone().unwrap_or_else(|| format!("{prefix}-sales")),
            pipe_role: format!("{prefix}-pipe"),
            firehose_role: format!("{prefix}-firehose"),
            glue_role: format!("{prefix}-glue"),
            pipe_policy: "sales-operator-pipe".to_string(),
            firehose_policy: "sales-operator-firehose".to_string(),
            glue_policy: "sales-operator-glue".to_string(),
            prefix,
        }
    }
}

/// Whether `name` is a valid S3 bucket name (general purpose buckets).
pub fn is_valid_bucket_name(name: &str) -> bool {
    let len_ok = (3..=63).contains(&name.len());
    let chars_ok = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    let ends_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    let not_ip = name.parse::<std::net::Ipv4Addr>().is_err();
    len_ok
        && chars_ok
        && ends_ok
        && not_ip
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && !name.starts_with("xn--")
        && !name.starts_with("sthree-")
        && !name.ends_with("-s3alias")
        && !name.ends_with("--ol-s3")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ns: &str, name: &str) -> Names {
        Names::derive(ns, name, &SalesPipelineSpec::default(), "eu-west-1")
    }

    #[test]
    fn short_names_are_readable() {
        let n = names("shop", "sales");
        assert_eq!(n.prefix, "shop-sales");
        assert_eq!(n.table, "shop-sales-orders");
        assert_eq!(n.database, "shop_sales_sales");
        assert!(n.bucket.starts_with("shop-sales-"));
    }

    #[test]
    fn longest_kubernetes_names_still_give_valid_aws_names() {
        let ns = "n".repeat(63);
        let name = format!("{}.x", "p".repeat(250));
        let n = names(&ns, &name);
        assert!(n.prefix.len() <= MAX_PREFIX);
        assert!(is_valid_bucket_name(&n.bucket), "{}", n.bucket);
        for role in [&n.pipe_role, &n.firehose_role, &n.glue_role] {
            assert!(role.len() <= 64, "{role}");
        }
        for short in [&n.pipe, &n.delivery] {
            assert!(short.len() <= 64);
            assert!(short.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
        }
    }

    #[test]
    fn names_are_deterministic_and_distinct() {
        assert_eq!(names("a", "b"), names("a", "b"));
        let long = "x".repeat(60);
        assert_ne!(names(&long, "one").prefix, names(&long, "two").prefix);
        assert_ne!(names("a", "b").bucket, names("a", "c").bucket);
    }

    #[test]
    fn bucket_name_rules() {
        assert!(is_valid_bucket_name("my-bucket.data"));
        for bad in ["ab", "My-Bucket", "-abc", "abc-", "a..b", "192.168.1.1", "xn--abc", "abc-s3alias", "a_b"] {
            assert!(!is_valid_bucket_name(bad), "{bad}");
        }
    }
}

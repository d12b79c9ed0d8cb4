//! The tags of all of a pipeline's regional resources from one Resource Groups
//! Tagging API read (`GetResources` filtered on the pipeline's ownership tag),
//! so a resync does not read each service's tags separately.
//!
//! Only a shortcut: the Tagging API lags behind tag changes and may not cover
//! every resource type, so a resource it does not list, or lists without one of
//! the desired tags, has its tags read from its own service before anything is
//! written. Correctness never rests on the index; a failed index read (e.g. a
//! role without `tag:GetResources`) only costs those per-service reads.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_resourcegroupstagging::types::TagFilter;

use super::error::AwsResultExt;
use super::{missing_tags, AwsError, PipelineCtx, TAG_PIPELINE};

/// Tags by ARN of the resources carrying the pipeline's ownership tag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagIndex {
    by_arn: HashMap<String, BTreeMap<String, String>>,
}

impl TagIndex {
    /// Reads the index for `ctx`'s pipeline in the client's region.
    pub async fn fetch(client: &aws_sdk_resourcegroupstagging::Client, ctx: &PipelineCtx) -> Result<Self, AwsError> {
        let Some(owner) = ctx.tags.get(TAG_PIPELINE) else {
            return Ok(Self::default());
        };
        let filter = TagFilter::builder().key(TAG_PIPELINE).values(owner).build();
        let mut by_arn = HashMap::new();
        let mut token: Option<String> = None;
        loop {
            let page = client
                .get_resources()
                .tag_filters(filter.clone())
                .resources_per_page(100)
                .set_pagination_token(token.take())
                .send()
                .await
                .aws("GetResources")?;
            for mapping in page.resource_tag_mapping_list() {
                if let Some(arn) = mapping.resource_arn() {
                    let tags = mapping.tags().iter().map(|t| (t.key.clone(), t.value.clone())).collect();
                    by_arn.insert(arn.to_string(), tags);
                }
            }
            match page.pagination_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => return Ok(Self { by_arn }),
            }
        }
    }

    /// Like [`TagIndex::fetch`], but a failure leaves the index empty (every resource's tags are
    /// then read from its own service) and is logged, not returned.
    pub async fn fetch_or_empty(client: &aws_sdk_resourcegroupstagging::Client, ctx: &PipelineCtx) -> Self {
        match Self::fetch(client, ctx).await {
            Ok(index) => index,
            Err(e) => {
                // A transient failure (unreachable endpoint, throttling) shows again in the reads
                // that follow, under the component they belong to. A permanent one (a policy without
                // tag:GetResources) would fail every pass: a warning once per process.
                static WARNED: AtomicBool = AtomicBool::new(false);
                if !e.is_permanent() || WARNED.swap(true, Ordering::Relaxed) {
                    tracing::debug!(error = %e, "cannot read tags through the Resource Groups Tagging API");
                } else {
                    tracing::warn!(error = %e, "cannot read tags through the Resource Groups Tagging API; reading them per service (is tag:GetResources allowed?)");
                }
                Self::default()
            }
        }
    }

    /// The ARNs listed.
    pub fn arns(&self) -> impl Iterator<Item = &str> {
        self.by_arn.keys().map(String::as_str)
    }

    /// `arn`'s tags when the index lists it with every `desired` tag (nothing for the diff to
    /// put back); `None`: ask its service.
    pub fn covering(&self, arn: &str, desired: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
        let tags = self.by_arn.get(arn)?;
        missing_tags(desired, tags).is_empty().then(|| tags.clone())
    }

    /// The tags of bucket `name` (S3 ARNs carry neither region nor account), as [`TagIndex::covering`].
    pub fn covering_bucket(&self, name: &str, desired: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
        let suffix = format!(":s3:::{name}");
        let arn = self.by_arn.keys().find(|arn| arn.starts_with("arn:") && arn.ends_with(&suffix))?;
        self.covering(arn, desired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl TagIndex {
        fn with(mut self, arn: &str, tags: BTreeMap<String, String>) -> Self {
            self.by_arn.insert(arn.to_string(), tags);
            self
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn covers_only_a_listed_resource_that_has_every_desired_tag() {
        let desired = tags(&[("team", "sales"), (TAG_PIPELINE, "shop/sales")]);
        let index = TagIndex::default()
            .with("arn:a", tags(&[("team", "sales"), (TAG_PIPELINE, "shop/sales"), ("extra", "kept")]))
            .with("arn:b", tags(&[("team", "other"), (TAG_PIPELINE, "shop/sales")]));
        assert_eq!(index.covering("arn:a", &desired), Some(index.by_arn["arn:a"].clone()), "extra tags are fine");
        assert_eq!(index.covering("arn:b", &desired), None, "a differing value is read from the service");
        assert_eq!(index.covering("arn:c", &desired), None, "an unlisted resource is read from the service");
    }
}

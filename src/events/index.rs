//! Which pipeline uses an AWS name: every watched pipeline's AWS names by kind, region and
//! name, so a change event finds its pipeline, and a pipeline the older ones that want its
//! names, in one lookup per name (not a walk over every pipeline).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;

use super::change::{ChangeEvent, Service};
use crate::api::SalesPipeline;
use crate::names::Names;

/// The kinds of AWS resource a pipeline names. Not the Glue table: its name is unique only
/// within its database, which Glue's table events name too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Table,
    Stream,
    Pipe,
    Delivery,
    Bucket,
    Database,
    Crawler,
    Workgroup,
    Role,
}

impl Kind {
    const ALL: [Kind; 9] = [
        Kind::Table,
        Kind::Stream,
        Kind::Pipe,
        Kind::Delivery,
        Kind::Bucket,
        Kind::Database,
        Kind::Crawler,
        Kind::Workgroup,
        Kind::Role,
    ];

    fn service(self) -> Service {
        match self {
            Kind::Table => Service::DynamoDb,
            Kind::Stream => Service::Kinesis,
            Kind::Pipe => Service::Pipes,
            Kind::Delivery => Service::Firehose,
            Kind::Bucket => Service::S3,
            Kind::Database | Kind::Crawler => Service::Glue,
            Kind::Workgroup => Service::Athena,
            Kind::Role => Service::Iam,
        }
    }

    /// As conditions name it.
    fn label(self) -> &'static str {
        match self {
            Kind::Table => "dynamodb table",
            Kind::Stream => "kinesis stream",
            Kind::Pipe => "pipe",
            Kind::Delivery => "firehose delivery stream",
            Kind::Bucket => "s3 bucket",
            Kind::Database => "glue database",
            Kind::Crawler => "glue crawler",
            Kind::Workgroup => "athena workgroup",
            Kind::Role => "iam role",
        }
    }
}

/// (kind, region — empty for the names that are global in an account: S3 buckets and IAM
/// roles —, name — lowercased for IAM, whose role names ignore case). Shared strings: a
/// pipeline's key is stored twice (the claimants' map, the pipeline's claim) but allocated once.
type Key = (Kind, Arc<str>, Arc<str>);

/// A pipeline's place in the index.
type Id = u32;

#[derive(Debug)]
struct Claim {
    /// Without resourceVersion and uid (not part of its identity).
    pipeline: ObjectRef<SalesPipeline>,
    created: Option<Time>,
    /// The account it acts in, once a pass (or its status) tells.
    account: Option<String>,
    keys: Box<[Key]>,
}

impl Claim {
    /// Which came first: the older keeps its names (same second: by namespace, then name).
    fn age(&self) -> (&Option<Time>, Option<&str>, &str) {
        (&self.created, self.pipeline.namespace.as_deref(), &self.pipeline.name)
    }
}

/// The AWS names of every watched pipeline (from its spec, as soon as the watch sees it) and the
/// account each acts in. About 2 KiB a pipeline (docs/benchmarks.md).
#[derive(Debug, Default)]
pub struct Index {
    /// Each name's claimants, oldest first.
    claimants: HashMap<Key, Vec<Id>>,
    claims: Vec<Option<Claim>>,
    free: Vec<Id>,
    ids: HashMap<ObjectRef<SalesPipeline>, Id>,
}

/// A pipeline's names by kind, as it gives them.
fn named(names: &Names) -> [(Kind, &str); 11] {
    [
        (Kind::Table, &names.table),
        (Kind::Stream, &names.stream),
        (Kind::Pipe, &names.pipe),
        (Kind::Delivery, &names.delivery),
        (Kind::Bucket, &names.bucket),
        (Kind::Database, &names.database),
        (Kind::Crawler, &names.crawler),
        (Kind::Workgroup, &names.workgroup),
        (Kind::Role, &names.pipe_role),
        (Kind::Role, &names.firehose_role),
        (Kind::Role, &names.glue_role),
    ]
}

fn keys(region: &str, names: &Names) -> Box<[Key]> {
    let (region, global): (Arc<str>, Arc<str>) = (region.into(), "".into());
    let mut keys: Vec<Key> = named(names)
        .into_iter()
        .filter(|(_, name)| !name.is_empty())
        .map(|(kind, name)| match kind {
            Kind::Role => (kind, global.clone(), name.to_ascii_lowercase().into()),
            Kind::Bucket => (kind, global.clone(), name.into()),
            _ => (kind, region.clone(), name.into()),
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_boxed_slice()
}

/// The key a lookup of `name` of `kind` in `region` uses.
fn key(region: &str, kind: Kind, name: &str) -> Key {
    match kind {
        Kind::Role => (kind, "".into(), name.to_ascii_lowercase().into()),
        Kind::Bucket => (kind, "".into(), name.into()),
        _ => (kind, region.into(), name.into()),
    }
}

fn identity(sp: &SalesPipeline) -> ObjectRef<SalesPipeline> {
    let mut pipeline = ObjectRef::from(sp);
    pipeline.extra = Default::default();
    pipeline
}

impl Index {
    /// Records the names `sp` uses in `region` as its spec gives them (replacing what it had);
    /// its account stays what a pass found, else what its status records.
    pub fn watched(&mut self, sp: &SalesPipeline, region: &str) {
        let Some(namespace) = sp.namespace() else { return };
        let names = Names::derive(&namespace, &sp.name_any(), &sp.spec, region);
        let pipeline = identity(sp);
        let known = self.claim(&pipeline).and_then(|c| c.account.clone());
        let account = known.or_else(|| sp.status.as_ref().and_then(|s| s.account.clone()));
        let claim = Claim { pipeline, created: sp.creation_timestamp(), account, keys: keys(region, &names) };
        self.put(claim);
    }

    /// Records that `sp` manages `names` in `account` and `region`, as its pass resolved them.
    pub fn set(&mut self, sp: &SalesPipeline, account: &str, region: &str, names: &Names) {
        let account = Some(account.to_string());
        self.put(Claim {
            pipeline: identity(sp),
            created: sp.creation_timestamp(),
            account,
            keys: keys(region, names),
        });
    }

    fn claim(&self, pipeline: &ObjectRef<SalesPipeline>) -> Option<&Claim> {
        self.ids.get(pipeline).and_then(|id| self.by_id(*id))
    }

    fn by_id(&self, id: Id) -> Option<&Claim> {
        self.claims.get(id as usize).and_then(Option::as_ref)
    }

    fn put(&mut self, claim: Claim) {
        if let Some(&id) = self.ids.get(&claim.pipeline) {
            if let Some(had) = self.claims.get_mut(id as usize).and_then(Option::as_mut) {
                if had.keys == claim.keys {
                    *had = claim;
                    return;
                }
            }
        }
        self.remove(&claim.pipeline);
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.claims.push(None);
                Id::try_from(self.claims.len() - 1).unwrap_or(Id::MAX)
            }
        };
        for k in claim.keys.iter() {
            let claimants = self.claimants.entry(k.clone()).or_insert_with(|| Vec::with_capacity(1));
            let claims = &self.claims;
            let older = |other: &Id| {
                claims.get(*other as usize).and_then(Option::as_ref).is_some_and(|c| c.age() < claim.age())
            };
            let at = claimants.partition_point(older);
            claimants.insert(at, id);
        }
        self.ids.insert(claim.pipeline.clone(), id);
        if let Some(slot) = self.claims.get_mut(id as usize) {
            *slot = Some(claim);
        }
    }

    /// Forgets `pipeline` (deleted).
    pub fn remove(&mut self, pipeline: &ObjectRef<SalesPipeline>) {
        let Some(id) = self.ids.remove(pipeline) else { return };
        let Some(claim) = self.claims.get_mut(id as usize).and_then(Option::take) else { return };
        for k in claim.keys.iter() {
            if let Some(claimants) = self.claimants.get_mut(k) {
                claimants.retain(|other| *other != id);
                if claimants.is_empty() {
                    self.claimants.remove(k);
                }
            }
        }
        self.free.push(id);
    }

    /// Forgets the pipelines `gone` says yes to (a relist: deleted while the watch was down).
    pub fn remove_where(&mut self, mut gone: impl FnMut(&ObjectRef<SalesPipeline>) -> bool) {
        let gone: Vec<_> = self.ids.keys().filter(|p| gone(p)).cloned().collect();
        gone.iter().for_each(|p| self.remove(p));
    }

    /// The pipeline that manages a resource `event` names, if any: the oldest that claims it in
    /// the event's account (or whose account is not known yet).
    pub fn find(&self, event: &ChangeEvent) -> Option<ObjectRef<SalesPipeline>> {
        let kinds = Kind::ALL.into_iter().filter(|k| k.service() == event.service);
        let keys: Vec<Key> = kinds.flat_map(|k| event.names.iter().map(move |n| key(&event.region, k, n))).collect();
        keys.iter().find_map(|k| {
            let mut claims = self.claimants.get(k)?.iter().filter_map(|id| self.by_id(*id));
            let claim = claims.find(|c| c.account.as_deref().is_none_or(|a| a == event.account))?;
            Some(claim.pipeline.clone())
        })
    }

    /// Whether `pipeline` acts in `account` (`None`: not known yet).
    pub fn in_account(&self, pipeline: &ObjectRef<SalesPipeline>, account: &str) -> Option<bool> {
        self.claim(pipeline)?.account.as_deref().map(|a| a == account)
    }

    /// The pipelines older than `sp` that want one of the names `names` gives it in `region`,
    /// oldest first, each with the names it shares ("s3 bucket shop-sales", as `sp` writes them).
    pub fn older_claimants(
        &self,
        sp: &SalesPipeline,
        region: &str,
        names: &Names,
    ) -> Vec<(ObjectRef<SalesPipeline>, Vec<String>)> {
        let mine =
            Claim { pipeline: identity(sp), created: sp.creation_timestamp(), account: None, keys: Box::new([]) };
        let mut older: Vec<(&Claim, Vec<String>)> = Vec::new();
        for (kind, name) in named(names).into_iter().filter(|(_, name)| !name.is_empty()) {
            let shared = format!("{} {name}", kind.label());
            for id in self.claimants.get(&key(region, kind, name)).into_iter().flatten() {
                let Some(theirs) = self.by_id(*id).filter(|c| c.age() < mine.age()) else { continue };
                match older.iter_mut().find(|(c, _)| c.pipeline == theirs.pipeline) {
                    Some((_, names)) if !names.contains(&shared) => names.push(shared.clone()),
                    Some(_) => {}
                    None => older.push((theirs, vec![shared.clone()])),
                }
            }
        }
        older.sort_by(|a, b| a.0.age().cmp(&b.0.age()));
        older.into_iter().map(|(c, shared)| (c.pipeline.clone(), shared)).collect()
    }

    /// Every pipeline it knows.
    pub fn pipelines(&self) -> Vec<ObjectRef<SalesPipeline>> {
        self.ids.keys().cloned().collect()
    }

    /// How many pipelines it knows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SalesPipelineSpec;

    /// Pipeline `ns/name`, created `second` seconds after the epoch.
    fn pipeline(ns: &str, name: &str, second: i64) -> SalesPipeline {
        let mut sp = SalesPipeline::new(name, SalesPipelineSpec::default());
        sp.metadata.namespace = Some(ns.into());
        sp.metadata.creation_timestamp = jiff::Timestamp::from_second(second).ok().map(Time);
        sp
    }

    fn names(sp: &SalesPipeline) -> Names {
        Names::derive(&sp.namespace().unwrap(), &sp.name_any(), &sp.spec, "eu-west-1")
    }

    fn event(service: Service, account: &str, region: &str, name: &str) -> ChangeEvent {
        ChangeEvent {
            service,
            account: account.into(),
            region: region.into(),
            event_name: "X".into(),
            event_time: String::new(),
            actor: String::new(),
            source_ip: String::new(),
            user_agent: String::new(),
            names: vec!["unrelated".into(), name.into()],
        }
    }

    #[test]
    fn an_event_finds_the_pipeline_of_its_resource_in_its_account_and_region_only() {
        let mut index = Index::default();
        let sp = pipeline("shop", "a", 1);
        let a = ObjectRef::from(&sp);
        let n = names(&sp);
        index.set(&sp, "1", "eu-west-1", &n);
        assert_eq!(index.find(&event(Service::Kinesis, "1", "eu-west-1", &n.stream)), Some(a.clone()));
        assert_eq!(index.find(&event(Service::Kinesis, "2", "eu-west-1", &n.stream)), None, "other account");
        assert_eq!(index.find(&event(Service::Kinesis, "1", "us-east-1", &n.stream)), None, "other region");
        assert_eq!(index.find(&event(Service::Athena, "1", "eu-west-1", &n.stream)), None, "other service");
        assert_eq!(index.find(&event(Service::Glue, "1", "eu-west-1", &n.crawler)), Some(a.clone()), "crawler");
        // IAM's events arrive in us-east-1 whatever the pipeline's region, names in any case.
        let role = n.firehose_role.to_uppercase();
        assert_eq!(index.find(&event(Service::Iam, "1", "us-east-1", &role)), Some(a.clone()));
        index.remove(&a);
        assert_eq!(index.find(&event(Service::Kinesis, "1", "eu-west-1", &n.stream)), None);
        assert!(index.is_empty());
    }

    #[test]
    fn a_watched_pipeline_is_found_before_its_first_pass_and_keeps_the_account_a_pass_found() {
        let mut index = Index::default();
        let sp = pipeline("shop", "a", 1);
        let n = names(&sp);
        index.watched(&sp, "eu-west-1");
        let stream = |account: &str| index.find(&event(Service::Kinesis, account, "eu-west-1", &n.stream));
        assert_eq!(stream("1"), Some(ObjectRef::from(&sp)), "account not known yet: any");
        index.set(&sp, "1", "eu-west-1", &n);
        index.watched(&sp, "eu-west-1");
        let stream = |account: &str| index.find(&event(Service::Kinesis, account, "eu-west-1", &n.stream));
        assert_eq!((stream("1"), stream("2")), (Some(ObjectRef::from(&sp)), None));
        index.remove_where(|p| p.namespace.as_deref() == Some("shop"));
        assert!(index.is_empty());
    }

    #[test]
    fn names_that_change_replace_the_old_ones_and_the_oldest_claimant_keeps_a_name() {
        let mut index = Index::default();
        let a = pipeline("shop", "a", 1);
        let old = names(&a);
        index.set(&a, "1", "eu-west-1", &old);
        let new = Names::derive("shop", "renamed", &a.spec, "eu-west-1");
        index.set(&a, "1", "eu-west-1", &new);
        assert_eq!(index.find(&event(Service::S3, "1", "eu-west-1", &old.bucket)), None);
        let bucket = event(Service::S3, "1", "eu-west-1", &new.bucket);
        assert_eq!(index.find(&bucket), Some(ObjectRef::from(&a)));
        // b, younger, claims the same names (it stalls with NameConflict): events stay a's.
        let b = pipeline("shop", "b", 2);
        index.set(&b, "1", "eu-west-1", &new);
        assert_eq!(index.find(&bucket), Some(ObjectRef::from(&a)));
        index.remove(&ObjectRef::from(&b));
        assert_eq!(index.find(&bucket), Some(ObjectRef::from(&a)));
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn older_claimants_name_what_they_share_global_names_across_regions() {
        let mut index = Index::default();
        let (mut a, mut b) = (pipeline("shop", "a", 1), pipeline("other", "b", 2));
        for sp in [&mut a, &mut b] {
            sp.spec.name_prefix = Some("shop".into());
            sp.spec.bucket.name = Some("shop-orders-archive".into());
        }
        let (na, nb) = (names(&a), names(&b));
        index.set(&a, "1", "eu-west-1", &na);
        index.watched(&b, "eu-west-1");
        let claimed = index.older_claimants(&b, "eu-west-1", &nb);
        assert_eq!(claimed.len(), 1, "{claimed:?}");
        assert_eq!(claimed[0].0, ObjectRef::from(&a));
        assert!(claimed[0].1.contains(&format!("kinesis stream {}", nb.stream)), "{claimed:?}");
        assert!(index.older_claimants(&a, "eu-west-1", &na).is_empty(), "a came first");
        // In another region only the global names (bucket, roles) are shared.
        let elsewhere = Names::derive("other", "b", &b.spec, "us-east-1");
        let claimed = index.older_claimants(&b, "us-east-1", &elsewhere);
        let shared = &claimed[0].1;
        assert!(shared.iter().all(|s| s.starts_with("s3 bucket") || s.starts_with("iam role")), "{shared:?}");
        assert!(shared.contains(&format!("s3 bucket {}", elsewhere.bucket)), "{shared:?}");
    }
}

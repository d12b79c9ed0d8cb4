//! Which pipeline manages an AWS resource: every watched pipeline's resolved AWS names by
//! account, region and service, so a change event finds its pipeline in one lookup.

use std::collections::HashMap;

use kube::runtime::reflector::ObjectRef;

use super::change::{ChangeEvent, Service};
use crate::api::SalesPipeline;
use crate::names::Names;

type Key = (String, String, Service, String);

/// The resources of every pipeline reconciled since start-up.
#[derive(Debug, Default)]
pub struct Index {
    owners: HashMap<Key, ObjectRef<SalesPipeline>>,
    keys: HashMap<ObjectRef<SalesPipeline>, Vec<Key>>,
}

/// A pipeline's resource names by the service that holds them. Not the Glue table: its name is
/// unique only within its database, which Glue's table events name too.
fn by_service(names: &Names) -> [(Service, &str); 11] {
    [
        (Service::DynamoDb, &names.table),
        (Service::Kinesis, &names.stream),
        (Service::Pipes, &names.pipe),
        (Service::Firehose, &names.delivery),
        (Service::S3, &names.bucket),
        (Service::Glue, &names.database),
        (Service::Glue, &names.crawler),
        (Service::Athena, &names.workgroup),
        (Service::Iam, &names.pipe_role),
        (Service::Iam, &names.firehose_role),
        (Service::Iam, &names.glue_role),
    ]
}

impl Index {
    /// Records that `pipeline` manages `names` in `account` and `region` (replacing what it had).
    pub fn set(&mut self, pipeline: ObjectRef<SalesPipeline>, account: &str, region: &str, names: &Names) {
        let keys: Vec<Key> = by_service(names)
            .into_iter()
            .filter(|(_, name)| !name.is_empty())
            .map(|(service, name)| key(account, region, service, name))
            .collect();
        if self.keys.get(&pipeline) == Some(&keys) {
            return;
        }
        self.remove(&pipeline);
        for k in &keys {
            self.owners.insert(k.clone(), pipeline.clone());
        }
        self.keys.insert(pipeline, keys);
    }

    /// Forgets `pipeline` (deleted).
    pub fn remove(&mut self, pipeline: &ObjectRef<SalesPipeline>) {
        for k in self.keys.remove(pipeline).unwrap_or_default() {
            if self.owners.get(&k) == Some(pipeline) {
                self.owners.remove(&k);
            }
        }
    }

    /// The pipeline that manages a resource `event` names, if any.
    pub fn find(&self, event: &ChangeEvent) -> Option<ObjectRef<SalesPipeline>> {
        event
            .names
            .iter()
            .find_map(|name| self.owners.get(&key(&event.account, &event.region, event.service, name)))
            .cloned()
    }

    /// Every pipeline it knows.
    pub fn pipelines(&self) -> Vec<ObjectRef<SalesPipeline>> {
        self.keys.keys().cloned().collect()
    }

    /// How many pipelines it knows.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn key(account: &str, region: &str, service: Service, name: &str) -> Key {
    let region = if service.global() { "" } else { region };
    (account.to_string(), region.to_string(), service, name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SalesPipelineSpec;

    fn names(ns: &str, name: &str) -> Names {
        Names::derive(ns, name, &SalesPipelineSpec::default(), "eu-west-1")
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
        let a = ObjectRef::new("a").within("shop");
        let n = names("shop", "a");
        index.set(a.clone(), "1", "eu-west-1", &n);
        assert_eq!(index.find(&event(Service::Kinesis, "1", "eu-west-1", &n.stream)), Some(a.clone()));
        assert_eq!(index.find(&event(Service::Kinesis, "2", "eu-west-1", &n.stream)), None, "other account");
        assert_eq!(index.find(&event(Service::Kinesis, "1", "us-east-1", &n.stream)), None, "other region");
        assert_eq!(index.find(&event(Service::Athena, "1", "eu-west-1", &n.stream)), None, "other service");
        // IAM's events arrive in us-east-1 whatever the pipeline's region.
        assert_eq!(index.find(&event(Service::Iam, "1", "us-east-1", &n.firehose_role)), Some(a.clone()));
        index.remove(&a);
        assert_eq!(index.find(&event(Service::Kinesis, "1", "eu-west-1", &n.stream)), None);
        assert!(index.is_empty());
    }

    #[test]
    fn names_that_change_replace_the_old_ones_and_removing_one_pipeline_keeps_anothers_claim() {
        let mut index = Index::default();
        let a = ObjectRef::new("a").within("shop");
        let b = ObjectRef::new("b").within("shop");
        let old = names("shop", "a");
        index.set(a.clone(), "1", "eu-west-1", &old);
        let new = names("shop", "renamed");
        index.set(a.clone(), "1", "eu-west-1", &new);
        assert_eq!(index.find(&event(Service::S3, "1", "eu-west-1", &old.bucket)), None);
        assert_eq!(index.find(&event(Service::S3, "1", "eu-west-1", &new.bucket)), Some(a.clone()));
        // b claims the same names later (it stalls with NameConflict); removing it keeps a's.
        index.set(b.clone(), "1", "eu-west-1", &new);
        index.remove(&b);
        index.set(a.clone(), "1", "eu-west-1", &names("shop", "a"));
        index.set(a.clone(), "1", "eu-west-1", &new);
        assert_eq!(index.find(&event(Service::S3, "1", "eu-west-1", &new.bucket)), Some(a));
        assert_eq!(index.len(), 1);
    }
}

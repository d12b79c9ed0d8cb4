//! What the reconciler remembers between passes, and how it paces itself
//! against AWS. Lost on restart: then a role's creation date and AWS's states
//! are all there is, which is enough to converge.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::aws::iam::RoleWrites;

/// How often a pipeline waiting on AWS (a resource CREATING, a refusal to retry) is looked at
/// again: ACK's pace for a resource that is not synced yet.
pub const WAIT_PACE: Duration = Duration::from_secs(5);
/// How long after a role changed a refusal to assume it is taken for IAM propagation and retried.
pub const IAM_PROPAGATION_WINDOW: Duration = Duration::from_secs(120);
/// How long after a role changed the services that assume it are first asked to, by default.
pub const IAM_SETTLE: Duration = Duration::from_secs(10);
/// Recoveries of a failed resource (for one desired state) before the pipeline stalls.
pub const MAX_RECOVERIES: u32 = 3;

/// What the reconciler remembers of its own work: role writes, recoveries, refusals.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// When this process last wrote each role (read by the IAM component).
    pub role_writes: RoleWrites,
    /// Recovery attempts per failed resource, and first IAM-propagation refusal per resource.
    pub attempts: Attempts,
}

/// How the reconciler paces itself against AWS; `None` takes the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    /// How long after a role changes a service that assumes it is first asked to
    /// (default [`IAM_SETTLE`]): AWS propagates IAM changes in seconds, not at once.
    pub iam_settle: Option<Duration>,
    /// How long after a role changes its refusal is retried as IAM propagation
    /// (default [`IAM_PROPAGATION_WINDOW`]).
    pub iam_window: Option<Duration>,
    /// How soon a pipeline waiting on AWS is looked at again (default [`WAIT_PACE`]).
    pub pace: Option<Duration>,
}

impl Timing {
    pub fn iam_settle(&self) -> Duration {
        self.iam_settle.unwrap_or(IAM_SETTLE)
    }

    pub fn iam_window(&self) -> Duration {
        self.iam_window.unwrap_or(IAM_PROPAGATION_WINDOW)
    }

    pub fn pace(&self) -> Duration {
        self.pace.unwrap_or(WAIT_PACE)
    }
}

/// Counters and first-seen times per resource, kept until the resource is well.
#[derive(Clone, Debug, Default)]
pub struct Attempts(Arc<Mutex<BTreeMap<String, (u32, SystemTime)>>>);

impl Attempts {
    /// Counts one more attempt for `key`: (attempts so far including this one, first attempt's time).
    pub fn count(&self, key: &str) -> (u32, SystemTime) {
        let now = SystemTime::now();
        match self.0.lock() {
            Ok(mut map) => {
                let entry = map.entry(key.to_string()).or_insert((0, now));
                entry.0 += 1;
                *entry
            }
            Err(_) => (1, now),
        }
    }

    /// The attempts recorded for `key`, without counting one.
    pub fn get(&self, key: &str) -> Option<(u32, SystemTime)> {
        self.0.lock().ok().and_then(|map| map.get(key).copied())
    }

    /// Forgets `key` (it is well again).
    pub fn clear(&self, key: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(key);
        }
    }
}

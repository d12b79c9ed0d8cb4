//! Assumed roles: credentials in another AWS account (or a narrower role in this one), from STS
//! AssumeRole called with the operator's own credentials, each session named and tagged after
//! the pipeline it works for so that CloudTrail says which pipeline made each call.
//!
//! The SDK's identity cache keeps the session's credentials and asks [`Session`] again shortly
//! before they expire (a role-chained session lasts at most one hour), so a pipeline never makes
//! a call with credentials that have run out, and STS is asked once per credential lifetime, not
//! once per call.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{error::CredentialsError, future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

use super::{AwsError, AwsResultExt, TAG_PIPELINE};

/// Session tag of the operator's sessions of an AwsIdentity: the identity's name.
pub const TAG_IDENTITY: &str = "sales-operator.dev/identity";

/// What a session lasts unless configured: the longest a role-chained session may (STS grants
/// 900 s to 12 h, but caps a role-chained session at one hour whatever is asked).
pub const SESSION_DEFAULT: Duration = Duration::from_secs(3600);

/// An IAM role's ARN, checked: `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleArn {
    arn: String,
    /// The 12-digit account the role lives in.
    pub account: String,
    pub partition: String,
}

impl RoleArn {
    /// The ARN `text`, or what is wrong with it, said for a user.
    pub fn parse(text: &str) -> Result<Self, String> {
        let wrong =
            |why: &str| format!("{text} is not an IAM role ARN ({why}): expected arn:aws:iam::123456789012:role/NAME");
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(wrong("it needs six ':'-separated parts"));
        };
        if arn != "arn" || partition.is_empty() {
            return Err(wrong("it must start with arn:PARTITION:"));
        }
        if service != "iam" || !region.is_empty() {
            return Err(wrong("the service must be iam, with no region"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(wrong("the account must be 12 digits"));
        }
        let Some(path_and_name) = resource.strip_prefix("role/") else {
            return Err(wrong("the resource must be role/NAME"));
        };
        let name = path_and_name.rsplit('/').next().unwrap_or_default();
        let name_chars = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        if name.is_empty() || name.len() > 64 || !name_chars(name) {
            return Err(wrong("a role name is 1 to 64 letters, digits or +=,.@_-"));
        }
        Ok(Self { arn: text.to_string(), account: account.to_string(), partition: partition.to_string() })
    }

    pub fn as_str(&self) -> &str {
        &self.arn
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

/// Whether `id` is an ExternalId STS accepts: 2 to 1,224 of letters, digits and `+=,.@:/-_`.
pub fn valid_external_id(id: &str) -> bool {
    (2..=1224).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@:/_-".contains(c))
}

/// Which role to assume and how: one per identity and pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Assume {
    pub role: RoleArn,
    pub external_id: Option<String>,
    /// `RoleSessionName`: CloudTrail shows it in every call's `userIdentity.arn`.
    pub session_name: String,
    pub duration: Duration,
    /// Session tags: `aws:PrincipalTag/...` in the role's policies, and in CloudTrail.
    pub tags: BTreeMap<String, String>,
}

impl Assume {
    /// A session of `role` for the operator itself (no pipeline named).
    pub fn new(role: RoleArn, external_id: Option<String>) -> Self {
        Self {
            role,
            external_id,
            session_name: "sales-operator".into(),
            duration: SESSION_DEFAULT,
            tags: BTreeMap::new(),
        }
    }

    /// The same role, in a session named and tagged after pipeline `namespace/name`: the tag is the
    /// one its resources carry, so the role's policy can hold a session to its own pipeline's
    /// resources (`aws:ResourceTag/sales-operator.dev/pipeline` equal to
    /// `${aws:PrincipalTag/sales-operator.dev/pipeline}`).
    pub fn for_pipeline(mut self, namespace: &str, name: &str) -> Self {
        self.session_name = session_name(&format!("sales-operator.{namespace}.{name}"));
        self.tags.insert(TAG_PIPELINE.into(), format!("{namespace}/{name}"));
        self
    }

    /// One AssumeRole call: the session's credentials, or AWS's refusal with the role named.
    pub async fn session(&self, sts: &aws_sdk_sts::Client) -> Result<Credentials, AwsError> {
        let tags = self
            .tags
            .iter()
            .map(|(k, v)| aws_sdk_sts::types::Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AwsError::permanent("AssumeRole", format!("session tags: {e}")))?;
        let out = sts
            .assume_role()
            .role_arn(self.role.as_str())
            .role_session_name(&self.session_name)
            .set_external_id(self.external_id.clone())
            .duration_seconds(i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX))
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .aws("AssumeRole")
            .map_err(|e| self.explained(e))?;
        let Some(c) = out.credentials else {
            return Err(AwsError::permanent("AssumeRole", format!("STS returned no credentials for {}", self.role)));
        };
        let expiry = SystemTime::try_from(c.expiration).ok();
        Ok(Credentials::new(c.access_key_id, c.secret_access_key, Some(c.session_token), expiry, "AssumeRole"))
    }

    /// `e` with the role named, and for a refusal what the role's trust policy must allow.
    fn explained(&self, mut e: AwsError) -> AwsError {
        if e.is_permanent() {
            let external = if self.external_id.is_some() { " and the externalId" } else { "" };
            e.message = format!(
                "{} (role {}): its trust policy must allow the caller sts:AssumeRole and sts:TagSession\
                 {external}; `sales-operator iam-policy --trust-policy PRINCIPAL` prints one",
                e.message, self.role
            );
        } else {
            e.message = format!("{} (role {})", e.message, self.role);
        }
        e
    }
}

/// `text` as a RoleSessionName: at most 64 of letters, digits and `+=,.@_-`.
pub fn session_name(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) { c } else { '-' }).take(64).collect()
}

/// The credentials of one [`Assume`], for the SDK's identity cache.
#[derive(Debug)]
struct Session {
    sts: aws_sdk_sts::Client,
    assume: Assume,
    /// The credentials of the check made when the session was set up, handed out first.
    first: Mutex<Option<Credentials>>,
}

impl ProvideCredentials for Session {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let first = self.first.lock().unwrap_or_else(|p| p.into_inner()).take();
            match first {
                Some(c) if c.expiry().is_none_or(|t| t > SystemTime::now() + Duration::from_secs(60)) => Ok(c),
                _ => self.assume.session(&self.sts).await.map_err(CredentialsError::provider_error),
            }
        })
    }
}

/// `base` acting as `assume`'s role: its credentials come from STS AssumeRole (asked once now,
/// so a refusal is reported before anything else is called), refreshed before they expire.
pub async fn assumed(base: &SdkConfig, assume: &Assume) -> Result<SdkConfig, AwsError> {
    let sts = aws_sdk_sts::Client::new(base);
    let first = assume.session(&sts).await?;
    let session = Session { sts, assume: assume.clone(), first: Mutex::new(Some(first)) };
    Ok(base.to_builder().credentials_provider(SharedCredentialsProvider::new(session)).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_are_checked_with_the_reason() {
        let ok = RoleArn::parse("arn:aws:iam::222222222222:role/teams/sales-pipelines").unwrap();
        assert_eq!((ok.account.as_str(), ok.partition.as_str()), ("222222222222", "aws"));
        assert_eq!(ok.to_string(), "arn:aws:iam::222222222222:role/teams/sales-pipelines");
        for (text, why) in [
            ("sales", "six"),
            ("arn:aws:s3:::bucket/x:y", "iam"),
            ("arn:aws:iam::2222:role/x", "12 digits"),
            ("arn:aws:iam::222222222222:user/x", "role/NAME"),
            ("arn:aws:iam::222222222222:role/", "1 to 64"),
            ("arn:aws:iam::222222222222:role/a b", "1 to 64"),
            ("arn:aws:iam:eu-west-1:222222222222:role/x", "no region"),
        ] {
            let e = RoleArn::parse(text).unwrap_err();
            assert!(e.contains(why) && e.starts_with(text), "{text}: {e}");
        }
    }

    #[test]
    fn external_ids_follow_sts() {
        assert!(valid_external_id("team-a:prod/1"));
        assert!(!valid_external_id("x"));
        assert!(!valid_external_id("has space"));
        assert!(!valid_external_id(&"a".repeat(1225)));
    }

    #[test]
    fn a_pipeline_session_is_named_and_tagged_after_it() {
        let role = RoleArn::parse("arn:aws:iam::222222222222:role/x").unwrap();
        let a = Assume::new(role, None).for_pipeline("team-a", &"n".repeat(80));
        assert!(a.session_name.starts_with("sales-operator.team-a.nnn") && a.session_name.len() == 64);
        assert_eq!(a.tags[TAG_PIPELINE], format!("team-a/{}", "n".repeat(80)));
    }
}

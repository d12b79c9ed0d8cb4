//! One error type for every AWS call, classified so the reconcile knows what to do.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What an AWS error means for the reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The resource does not exist.
    NotFound,
    /// It already exists, or is being changed by someone else.
    Conflict,
    /// Retrying will not help (bad input, access denied): report and wait for a change.
    Permanent,
    /// Throttling, 5xx, network: retry with backoff.
    Transient,
    /// The resource is still being created or changed by AWS (`ResourceInUseException` on an
    /// update, `ContinuousBackupsUnavailableException`): wait and try again, not an error.
    Busy,
    /// A service refused a role it cannot assume yet: IAM has not propagated a new role or policy.
    /// Retried within a bounded window after the role changed ([`crate::reconcile`]).
    IamPropagation,
    /// An account quota is used up (Firehose streams per region, ...): retrying will not help
    /// until the quota is raised or resources are freed.
    Quota,
}

/// A failed AWS call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct AwsError {
    pub operation: &'static str,
    pub code: Option<String>,
    pub message: String,
    pub status: Option<u16>,
    pub kind: ErrorKind,
}

const NOT_FOUND: &[&str] = &[
    "ResourceNotFoundException",
    "NoSuchEntity",
    "EntityNotFoundException",
    "NotFoundException",
    "NoSuchBucket",
    "NoSuchLifecycleConfiguration",
    "NoSuchTagSet",
    "ServerSideEncryptionConfigurationNotFoundError",
    "NoSuchPublicAccessBlockConfiguration",
];
const CONFLICT: &[&str] = &[
    "ResourceInUseException",
    "EntityAlreadyExists",
    "AlreadyExistsException",
    "ConflictException",
    "BucketAlreadyOwnedByYou",
    "ConcurrentModificationException",
    "DeleteConflict",
];
const TRANSIENT: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
    "RequestThrottled",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalServerError",
    "InternalFailure",
    "InternalServiceException",
    "InternalException",
    "LimitExceededException",
];
const BUSY: &[&str] = &["ContinuousBackupsUnavailableException"];

/// Phrases of the refusals a service gives for a role IAM has not propagated to it yet: the same
/// messages Terraform's AWS provider retries for its IAM propagation timeout (docs/aws-behaviour.md).
const IAM_PROPAGATION: &[&str] = &[
    // Firehose: "Firehose is unable to assume role <arn>. Please check the role provided."
    "is unable to assume role",
    // Glue: "Service is unable to assume provided role. Please verify role's TrustPolicy"
    "unable to assume provided role",
    // Lambda and others: "The role defined for the function cannot be assumed by Lambda."
    "cannot be assumed by",
    // Pipes StateReason: "The provided customer role does not have permissions to call ..."
    "provided customer role does not have permissions",
];

/// Phrases of a quota refusal (as opposed to a request-rate limit, which is transient).
const QUOTA: &[&str] = &["consumed your limit", "exceed the shard limit", "Cannot exceed quota"];

impl AwsError {
    /// Builds an error from an operation name, an error code, and HTTP status.
    pub fn new(operation: &'static str, code: Option<String>, message: String, status: Option<u16>) -> Self {
        let kind = classify(code.as_deref(), &message, status);
        Self { operation, code, message, status, kind }
    }

    /// An error that does not come from AWS but stops the same way (e.g. a resource in an unusable state).
    pub fn permanent(operation: &'static str, message: impl Into<String>) -> Self {
        Self { operation, code: None, message: message.into(), status: None, kind: ErrorKind::Permanent }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    pub fn is_conflict(&self) -> bool {
        self.kind == ErrorKind::Conflict
    }

    /// Whether AWS refused because the resource is still being created or changed (a Firehose
    /// stream CREATING cannot be deleted, a pipe CREATING answers ConflictException): the same
    /// call later may succeed.
    pub fn is_busy(&self) -> bool {
        matches!(self.kind, ErrorKind::Busy | ErrorKind::Conflict)
    }

    /// Whether retrying will not help: a permanent refusal, or a quota used up.
    pub fn is_permanent(&self) -> bool {
        matches!(self.kind, ErrorKind::Permanent | ErrorKind::Quota)
    }

    /// The same error, judged `kind` (e.g. an IAM propagation refusal past its window).
    pub fn judged(self, kind: ErrorKind) -> Self {
        Self { kind, ..self }
    }
}

/// Keeps the SDK from retrying a quota refusal: its standard retry takes `LimitExceededException`
/// for throttling, so a Firehose "consumed your limit" would be retried with backoff until the
/// attempts run out before it is reported, although no retry can succeed.
#[derive(Clone, Copy, Debug, Default)]
pub struct QuotasAreNotRetried;

impl aws_smithy_runtime_api::client::retries::classifiers::ClassifyRetry for QuotasAreNotRetried {
    fn classify_retry(
        &self,
        ctx: &aws_smithy_runtime_api::client::interceptors::context::InterceptorContext,
    ) -> aws_smithy_runtime_api::client::retries::classifiers::RetryAction {
        use aws_smithy_runtime_api::client::retries::classifiers::RetryAction;
        // Only client errors can be a quota refusal: successful answers are not read.
        let response = ctx.response().filter(|r| r.status().is_client_error());
        let body = response.and_then(|r| r.body().bytes());
        match body.map(String::from_utf8_lossy) {
            Some(text) if QUOTA.iter().any(|p| text.contains(p)) => RetryAction::RetryForbidden,
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "QuotasAreNotRetried"
    }
}

/// Whether AWS's `message` (an error's, or a failed resource's reason) says a service cannot
/// assume a role: what IAM propagation looks like.
pub fn names_a_role_not_assumable(message: &str) -> bool {
    IAM_PROPAGATION.iter().any(|p| message.contains(p))
}

fn classify(code: Option<&str>, message: &str, status: Option<u16>) -> ErrorKind {
    if names_a_role_not_assumable(message) {
        return ErrorKind::IamPropagation;
    }
    if QUOTA.iter().any(|p| message.contains(p)) {
        return ErrorKind::Quota;
    }
    if let Some(code) = code {
        if BUSY.contains(&code) {
            return ErrorKind::Busy;
        }
        if NOT_FOUND.contains(&code) {
            return ErrorKind::NotFound;
        }
        if CONFLICT.contains(&code) {
            return ErrorKind::Conflict;
        }
        if TRANSIENT.contains(&code) {
            return ErrorKind::Transient;
        }
    }
    match status {
        Some(404) => ErrorKind::NotFound,
        Some(409) => ErrorKind::Conflict,
        Some(429) | None => ErrorKind::Transient,
        Some(s) if s >= 500 => ErrorKind::Transient,
        Some(_) => ErrorKind::Permanent,
    }
}

/// Converts SDK results into [`AwsError`]s named after the operation.
pub trait AwsResultExt<T> {
    fn aws(self, operation: &'static str) -> Result<T, AwsError>;
}

impl<T, E> AwsResultExt<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn aws(self, operation: &'static str) -> Result<T, AwsError> {
        self.map_err(|err| {
            let status = err.raw_response().map(|r| r.status().as_u16());
            match &err {
                SdkError::ServiceError(service) => {
                    let e = service.err();
                    let message = e.message().map(str::to_string).unwrap_or_else(|| e.to_string());
                    AwsError::new(operation, e.code().map(str::to_string), message, status)
                }
                SdkError::ConstructionFailure(_) => {
                    AwsError { operation, code: None, message: error_chain(&err), status, kind: ErrorKind::Permanent }
                }
                // AWS answered success with a body the SDK cannot read (a description it does not
                // expect, e.g. left by a partial outside change): asking again gives the same
                // answer, so it is reported, not waited on.
                SdkError::ResponseError(_) if status.is_some_and(|s| (200..300).contains(&s)) => AwsError {
                    operation,
                    code: None,
                    message: format!("AWS's answer could not be read: {}", error_chain(&err)),
                    status,
                    kind: ErrorKind::Permanent,
                },
                _ => AwsError::new(operation, None, error_chain(&err), status.filter(|s| *s >= 400)),
            }
        })
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// An SDK builder's error (a required field left unset) as a permanent error of `operation`.
pub fn built<T>(
    operation: &'static str,
    r: Result<T, aws_smithy_types::error::operation::BuildError>,
) -> Result<T, AwsError> {
    r.map_err(build_error(operation))
}

/// [`built`] for `map_err`.
pub fn build_error(operation: &'static str) -> impl Fn(aws_smithy_types::error::operation::BuildError) -> AwsError {
    move |e| AwsError::permanent(operation, e.to_string())
}

/// `Ok(())` when the resource is already gone (what a delete wants).
pub fn ok_if_not_found<T>(r: Result<T, AwsError>) -> Result<(), AwsError> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other.map(|_| ()),
    }
}

/// `Ok(None)` for a not-found error, so `observe` can say "absent".
pub fn absent_if_not_found<T>(r: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_that_cannot_be_read_is_permanent_and_a_failed_connection_transient() {
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;
        let answer = |status: u16| HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        let unreadable: Result<(), SdkError<aws_sdk_firehose::Error, HttpResponse>> =
            Err(SdkError::response_error("missing field `DeliveryStreamARN`", answer(200)));
        let e = unreadable.aws("DescribeDeliveryStream").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert!(e.message.starts_with("AWS's answer could not be read"), "{e}");
        let cut: Result<(), SdkError<aws_sdk_firehose::Error, HttpResponse>> =
            Err(SdkError::response_error("connection reset", answer(503)));
        assert_eq!(cut.aws("DescribeDeliveryStream").unwrap_err().kind, ErrorKind::Transient);
    }

    #[test]
    fn codes_and_statuses_are_classified() {
        assert_eq!(classify(Some("ResourceNotFoundException"), "", Some(400)), ErrorKind::NotFound);
        assert_eq!(classify(Some("ThrottlingException"), "", Some(400)), ErrorKind::Transient);
        assert_eq!(classify(Some("AccessDeniedException"), "", Some(400)), ErrorKind::Permanent);
        assert_eq!(classify(Some("EntityAlreadyExists"), "", Some(409)), ErrorKind::Conflict);
        assert_eq!(classify(None, "", Some(503)), ErrorKind::Transient);
        assert_eq!(classify(None, "", Some(403)), ErrorKind::Permanent);
        assert_eq!(classify(None, "", None), ErrorKind::Transient);
    }

    #[test]
    fn aws_refusals_that_mean_wait_propagate_or_quota_are_told_apart() {
        let backups = "Backups are being enabled for the table: t. Please retry later";
        assert_eq!(classify(Some("ContinuousBackupsUnavailableException"), backups, Some(400)), ErrorKind::Busy);
        let firehose = "Firehose is unable to assume role arn:aws:iam::1:role/r. Please check the role provided.";
        assert_eq!(classify(Some("InvalidArgumentException"), firehose, Some(400)), ErrorKind::IamPropagation);
        let glue = "Service is unable to assume provided role. Please verify role's TrustPolicy";
        assert_eq!(classify(Some("InvalidInputException"), glue, Some(400)), ErrorKind::IamPropagation);
        let quota = "You have already consumed your limit of 50 delivery streams in this account and region.";
        assert_eq!(classify(Some("LimitExceededException"), quota, Some(400)), ErrorKind::Quota);
        assert!(AwsError::new("CreateDeliveryStream", None, quota.into(), Some(400)).is_permanent());
        // Kinesis's request-rate LimitExceededException is throttling.
        let rate = "Rate exceeded for stream s under account 1.";
        assert_eq!(classify(Some("LimitExceededException"), rate, Some(400)), ErrorKind::Transient);
        assert_eq!(classify(Some("InvalidArgumentException"), "bad prefix", Some(400)), ErrorKind::Permanent);
    }
}

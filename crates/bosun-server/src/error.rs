//! Every error a handler can return, and the one place it becomes a Connect/gRPC code.
//!
//! Bad input is `invalid_argument` naming the field; an illegal transition is
//! `failed_precondition` naming the current state; a lost compare-and-set race is
//! `aborted`; a store outage is `unavailable` (retryable). `internal` is kept for bugs and
//! corrupt data, never for anything a caller sent.

use bosun_core::{TransitionError, ValidationError};
use bosun_store::StoreError;
use connectrpc::{ConnectError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Aborted(String),
    /// The server will not take more of this kind of work now; retry later.
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub(crate) fn invalid(field: &str, problem: impl std::fmt::Display) -> Self {
        ApiError::Invalid(ValidationError::new(field, problem))
    }

    /// A lifecycle refusal about a named resource (`node n1: cannot cordon node: ...`).
    pub(crate) fn transition(id: impl std::fmt::Display, error: TransitionError) -> Self {
        ApiError::FailedPrecondition(format!("{} {id}: {error}", error.kind))
    }

    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            ApiError::Invalid(_) => ErrorCode::InvalidArgument,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::AlreadyExists(_) => ErrorCode::AlreadyExists,
            ApiError::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            ApiError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            ApiError::PermissionDenied(_) => ErrorCode::PermissionDenied,
            ApiError::Aborted(_) => ErrorCode::Aborted,
            ApiError::ResourceExhausted(_) => ErrorCode::ResourceExhausted,
            ApiError::Internal(_) => ErrorCode::Internal,
            ApiError::Store(error) => match error {
                StoreError::NotFound { .. } => ErrorCode::NotFound,
                StoreError::AlreadyExists { .. } => ErrorCode::AlreadyExists,
                StoreError::Conflict { .. } | StoreError::LeaseHeld { .. } => ErrorCode::Aborted,
                // A replica that lost its leadership mid-request: the caller may retry,
                // reaching the new leader's work.
                StoreError::Fenced { .. } => ErrorCode::Unavailable,
                StoreError::InvalidTransition { .. } => ErrorCode::FailedPrecondition,
                StoreError::Invalid(_) => ErrorCode::InvalidArgument,
                StoreError::FailedPrecondition { .. } => ErrorCode::FailedPrecondition,
                StoreError::TooLarge { .. } => ErrorCode::ResourceExhausted,
                StoreError::Unavailable { .. } | StoreError::Lost { .. } => ErrorCode::Unavailable,
                StoreError::Corrupt { .. } => ErrorCode::Internal,
            },
        }
    }
}

impl From<ApiError> for ConnectError {
    fn from(error: ApiError) -> Self {
        let code = error.code();
        if code == ErrorCode::Internal {
            tracing::error!(%error, "internal error answering a request");
        }
        ConnectError::new(code, error.to_string())
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use bosun_core::{NodeStatus, NodeTrigger, ResourceKind, Revision};

    use super::*;

    #[test]
    fn store_errors_map_to_codes_callers_can_act_on() {
        let cases = [
            (StoreError::not_found(ResourceKind::Node, "n1"), ErrorCode::NotFound),
            (StoreError::already_exists(ResourceKind::Pool, "p"), ErrorCode::AlreadyExists),
            (
                StoreError::Conflict {
                    kind: ResourceKind::Node,
                    id: "n1".into(),
                    expected: Revision::FIRST,
                    actual: Revision::FIRST.next(),
                },
                ErrorCode::Aborted,
            ),
            (StoreError::Unavailable { message: "down".into() }, ErrorCode::Unavailable),
            (StoreError::invalid("page_token", "bad"), ErrorCode::InvalidArgument),
            (StoreError::corrupt("nodes.labels", "not json"), ErrorCode::Internal),
        ];
        for (error, code) in cases {
            assert_eq!(ApiError::from(error).code(), code);
        }
    }

    #[test]
    fn transitions_name_the_resource_and_its_state() {
        let error = NodeStatus::apply(Some(NodeStatus::Draining), NodeTrigger::Cordon).unwrap_err();
        let connect = ConnectError::from(ApiError::transition("n1", error));
        assert_eq!(connect.code, ErrorCode::FailedPrecondition);
        let message = connect.message.unwrap_or_default();
        assert!(message.starts_with("node n1: cannot cordon node: it is DRAINING"), "{message}");
    }
}

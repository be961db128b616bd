//! The one mapping from [`Error`] to gRPC statuses. Every variant is named, so a new one must be
//! mapped here; database and internal details go to the log, never to the filter.

use tonic::Status;

use crate::error::Error;

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match err {
            Error::BadRequest(m) => Status::invalid_argument(m),
            Error::Unauthorized => Status::unauthenticated(err.to_string()),
            Error::InvalidToken(m) => Status::unauthenticated(m),
            Error::Forbidden(m) => Status::permission_denied(m),
            Error::NotFound(m) => Status::not_found(m),
            // A 409: the state the call assumed changed (decided, used, or written meanwhile).
            Error::Conflict(m) => Status::aborted(m),
            Error::Unavailable(m) => {
                tracing::warn!(error = %m, "dependency unavailable in filter sync");
                Status::unavailable(m)
            }
            Error::Database(e) => {
                tracing::error!(error = %e, "database error in filter sync");
                Status::unavailable("database unavailable")
            }
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "internal error in filter sync");
                Status::internal("internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn each_error_has_its_code_and_internal_detail_stays_in_the_log() {
        let cases = [
            (
                Error::bad_request("counter"),
                Code::InvalidArgument,
                "counter",
            ),
            (
                Error::Unauthorized,
                Code::Unauthenticated,
                "missing or invalid admin token",
            ),
            (
                Error::InvalidToken("bad token".into()),
                Code::Unauthenticated,
                "bad token",
            ),
            (
                Error::Forbidden("superadmin only".into()),
                Code::PermissionDenied,
                "superadmin only",
            ),
            (
                Error::not_found("no approval x"),
                Code::NotFound,
                "no approval x",
            ),
            (
                Error::Conflict("already decided".into()),
                Code::Aborted,
                "already decided",
            ),
            (
                Error::Unavailable("not configured".into()),
                Code::Unavailable,
                "not configured",
            ),
            (
                Error::Database(sqlx::Error::Protocol("password=hunter2 at 10.0.0.5".into())),
                Code::Unavailable,
                "database unavailable",
            ),
            (
                Error::Internal("stored row 42 is corrupt".into()),
                Code::Internal,
                "internal error",
            ),
        ];
        for (error, code, message) in cases {
            let status = Status::from(error);
            assert_eq!(status.code(), code, "{status:?}");
            assert_eq!(status.message(), message);
        }
    }
}

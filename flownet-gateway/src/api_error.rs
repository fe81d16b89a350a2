//! Errors as the gateway answers them: OpenAI's error JSON, with the core's message.
//!
//! Every answer that is not a success has the shape
//! `{"error": {"message", "type", "param", "code"}}`, on the page's API as on the
//! OpenAI-compatible one, so one client-side handler reads both. `code` is the core's
//! error kind (`bad_signature`, `insufficient_funds`, …) or the gateway's own reason.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use flownet_core::{Error, ErrorKind};
use serde_json::json;

/// A refusal or failure, ready to be sent.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// OpenAI's error type: `invalid_request_error`, `authentication_error`, …
    pub kind: &'static str,
    pub code: String,
    pub message: String,
    pub param: Option<String>,
    /// Seconds, for 429 and 503 answers.
    pub retry_after: Option<u64>,
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        let kind = match status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            409 => "conflict_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        };
        Self {
            status,
            kind,
            code: code.into(),
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn with_param(mut self, param: &str) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_type(mut self, kind: &'static str) -> Self {
        self.kind = kind;
        self
    }

    pub fn rate_limited(scope: &str, retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            format!("rate limit exceeded for this {scope}: retry in {retry_after} s"),
        );
        e.retry_after = Some(retry_after);
        e
    }

    /// A core error as the page's API answers it.
    pub fn from_core(e: &Error) -> Self {
        let status = match e.kind() {
            ErrorKind::InvalidInput
            | ErrorKind::Overflow
            | ErrorKind::PromptTooLarge
            | ErrorKind::ParamsTooLarge
            | ErrorKind::ModelNotOffered
            | ErrorKind::PriceAboveMax => StatusCode::BAD_REQUEST,
            ErrorKind::BadSignature => StatusCode::UNAUTHORIZED,
            ErrorKind::InsufficientFunds => StatusCode::PAYMENT_REQUIRED,
            ErrorKind::Unauthorized | ErrorKind::WrongNode => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::BadSequence
            | ErrorKind::AlreadyRated
            | ErrorKind::AlreadyExists
            | ErrorKind::InvalidState
            | ErrorKind::DeadlinePassed
            | ErrorKind::DeadlineNotPassed
            | ErrorKind::NodeInactive
            | ErrorKind::Faucet => StatusCode::CONFLICT,
            ErrorKind::Storage => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Inference | ErrorKind::Blob | ErrorKind::Network => StatusCode::BAD_GATEWAY,
        };
        let code = serde_json::to_value(e.kind())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "error".into());
        Self::new(status, code, e.to_string())
    }

    /// A core error as OpenAI's API would answer it: running out of funds is OpenAI's
    /// `insufficient_quota` (429), so its clients raise the error they know.
    pub fn from_core_openai(e: &Error) -> Self {
        match e.kind() {
            ErrorKind::InsufficientFunds => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                format!("{e}: fund this API key's account"),
            )
            .with_type("insufficient_quota"),
            _ => Self::from_core(e),
        }
    }

    /// A gateway failure that is not the caller's fault; the message is logged, not
    /// shown, when it may reveal internals.
    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!("{context}: {e}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{context}: the gateway could not answer, try again"),
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self::from_core(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flownet_core::{Address, Amount};

    #[test]
    fn core_kinds_map_to_client_errors() {
        let funds = Error::InsufficientFunds {
            needed: Amount(2),
            available: Amount(1),
        };
        assert_eq!(ApiError::from_core(&funds).status, 402);
        assert_eq!(ApiError::from_core(&funds).code, "insufficient_funds");
        let openai = ApiError::from_core_openai(&funds);
        assert_eq!(
            (openai.status.as_u16(), openai.code.as_str()),
            (429, "insufficient_quota")
        );
        let sig = ApiError::from_core(&Error::BadSignature(Address([1; 8])));
        assert_eq!(
            (sig.status.as_u16(), sig.kind, sig.code.as_str()),
            (401, "authentication_error", "bad_signature")
        );
        assert!(sig.message.contains("0x0101010101010101"));
        let seq = Error::BadSequence {
            address: Address([1; 8]),
            expected: 2,
            got: 1,
        };
        assert_eq!(ApiError::from_core(&seq).status, 409);
        assert_eq!(
            ApiError::from_core(&Error::PromptTooLarge { size: 5, max: 4 }).status,
            400
        );
        assert_eq!(
            ApiError::from_core(&Error::Storage("disk".into())).status,
            503
        );
    }
}

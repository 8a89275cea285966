//! Keeps a request's unread payload until its response is written, so actix closes the connection instead of
//! draining the rest of a chunked body, which it would do without any time limit.
//!
//! actix-http 3 decides when a response is written: a payload that is unfinished and not dropped closes the
//! connection; one that was dropped is drained first if it is chunked, and no head, keep-alive or shutdown timer runs
//! meanwhile. Any client could then hold a connection for good with one chunked request to a route that ignores the
//! body (`GET /healthz`), and fill the connection limit.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use actix_web::{
    Error, HttpMessage,
    body::{BodySize, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    middleware::Next,
    web::Bytes,
};

/// A response body that owns the request's payload until the body is written and dropped.
pub struct HoldingBody<B> {
    inner: B,
    _payload: Payload,
}

impl<B> HoldingBody<B> {
    /// `inner`, holding `payload`.
    pub fn new(inner: B, payload: Payload) -> Self {
        Self { inner, _payload: payload }
    }
}

impl<B: MessageBody + Unpin> MessageBody for HoldingBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// Middleware for apps whose routes never read a body: takes the payload before the route runs and hands it to
/// the response body.
pub async fn payload_until_answered<B: MessageBody + Unpin + 'static>(
    mut request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<HoldingBody<B>>, Error> {
    let payload = request.take_payload();
    let response = next.call(request).await?;
    Ok(response.map_body(|_, body| HoldingBody::new(body, payload)))
}

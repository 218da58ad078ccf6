//! ARM's request size limit: a body over 4 MB is refused with 413 `RequestContentTooLarge`,
//! judged by `Content-Length` first and otherwise while reading, never buffering past the limit.

use std::pin::Pin;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::arm_error;

/// 4 MiB. ARM says "4 MB" (RequestContentTooLarge, "The request content size exceeds the maximum
/// size of 4 MB."); whether it counts 10^6 or 2^20 bytes is not documented: the larger is taken,
/// so the emulator never refuses what ARM might accept.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// After refusing, at most this much of the rest is read and thrown away (and for at most
/// [`DRAIN_TIME`]), so the client is done sending and reads the 413 instead of a reset.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(10);

pub fn too_large() -> Response {
    arm_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestContentTooLarge",
        "The request content size exceeds the maximum size of 4 MB.",
    )
}

/// Whether the request declares a body over the limit.
pub fn declared_too_large(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u128>().ok())
        .is_some_and(|n| n > MAX_BODY as u128)
}

/// The next data chunk of `body`: `None` at its end, `Some(None)` for a frame without data.
async fn next_chunk(body: &mut Body) -> Option<Result<Option<Bytes>, ()>> {
    let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await?;
    Some(frame.map(|f| f.into_data().ok()).map_err(|_| ()))
}

/// Reads the body, refusing it (413) as soon as it passes the limit.
pub async fn read(mut body: Body) -> Result<Bytes, Response> {
    let mut buf = Vec::new();
    while let Some(frame) = next_chunk(&mut body).await {
        let Ok(frame) = frame else {
            // A body that breaks off mid-way: handled as the part that arrived, as before.
            break;
        };
        if let Some(data) = frame {
            if buf.len() + data.len() > MAX_BODY {
                drain(body).await;
                return Err(too_large());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Refuses a request that declared too large a body: what it sends is read and thrown away first,
/// unless it waits for `100 Continue` (then it sends nothing and reads the 413 at once).
pub async fn refuse_declared(headers: &HeaderMap, body: Body) -> Response {
    let waits_for_continue = headers
        .get(axum::http::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if !waits_for_continue {
        drain(body).await;
    }
    too_large()
}

/// Reads and discards what is left of `body`, within [`DRAIN_LIMIT`] and [`DRAIN_TIME`].
async fn drain(mut body: Body) {
    let discard = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = next_chunk(&mut body).await {
            if let Some(data) = frame {
                seen += data.len();
                if seen > DRAIN_LIMIT {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, discard).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_up_to_the_limit_pass_and_longer_ones_are_refused() {
        let exact = read(Body::from(vec![b' '; MAX_BODY])).await;
        assert_eq!(exact.map(|b| b.len()).ok(), Some(MAX_BODY));
        let over = read(Body::from(vec![b' '; MAX_BODY + 1])).await;
        assert_eq!(
            over.err().map(|r| r.status()),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
        let mut h = HeaderMap::new();
        h.insert("content-length", "4194305".parse().unwrap());
        assert!(declared_too_large(&h));
        h.insert("content-length", "4194304".parse().unwrap());
        assert!(!declared_too_large(&h));
    }
}

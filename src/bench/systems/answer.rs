//! A cartwheel node's whole answer to one bench request (status, headers, body), the
//! one shape both of the bench's clients return: the plain HTTP/1.1 client (`http`) and
//! the pipelined one (`pipeline`). It lives apart from both because `http` hands
//! requests to `pipeline` with `--protocol pipeline`; it must never grow client logic.

use bytes::Bytes;
use hyper::HeaderMap;

/// A whole answer: status, headers and body.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// A header's value as text, if present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

//! Every request needs the server's token (as Jupyter does): a random 256-bit value printed in the start URL
//! (`/?token=...`), then kept in a cookie (`HttpOnly`, `SameSite=Strict`, named after the port, so two servers on
//! one host keep theirs apart); scripts may send `Authorization: Bearer <token>`. Without it every route answers
//! 401. Every response also carries the page's security headers (the desktop app's CSP, no sniffing, no referrer:
//! the token never leaves in a `Referer`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;

use crate::Shared;

/// A new random token: 32 bytes, hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The server's token and the cookie that carries it.
pub struct Token {
    value: String,
    cookie: String,
}

impl Token {
    pub fn new(value: String, port: u16) -> Self {
        Self { value, cookie: format!("cliplab-token-{port}") }
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// The `Set-Cookie` value that keeps the token for the following requests.
    fn set_cookie(&self) -> String {
        format!("{}={}; Path=/; HttpOnly; SameSite=Strict", self.cookie, self.value)
    }

    fn in_query(&self, query: Option<&str>) -> bool {
        query.unwrap_or("").split('&').filter_map(|kv| kv.strip_prefix("token=")).any(|t| same(t, &self.value))
    }

    fn in_cookie(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .any(|(k, v)| k == self.cookie && same(v, &self.value))
    }

    fn in_bearer(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| same(t.trim(), &self.value))
    }
}

/// The middleware: the token or 401; the start URL's token becomes a cookie and leaves the address bar.
pub async fn guard(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let token = &shared.token;
    let by_cookie = token.in_cookie(req.headers());
    let by_query = token.in_query(req.uri().query());
    let mut response = if !(by_cookie || by_query || token.in_bearer(req.headers())) {
        (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "CLIP Lab: this server needs its token: open the URL `cliplab serve` printed (with ?token=...)\n",
        )
            .into_response()
    } else if by_query && !by_cookie && *req.method() == Method::GET && req.uri().path() == "/" {
        // The start URL: keep the token in a cookie and drop it from the address (history, screenshots).
        (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response()
    } else {
        next.run(req).await
    };
    let headers = response.headers_mut();
    if by_query && !by_cookie {
        if let Ok(v) = HeaderValue::from_str(&token.set_cookie()) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(crate::assets::CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same(&a, &a));
        assert!(!same(&a, &b));
        assert!(!same(&a, &a[..63]));
        let t = Token::new(a.clone(), 8765);
        assert!(t.in_query(Some(&format!("x=1&token={a}"))));
        assert!(!t.in_query(Some(&format!("token={b}"))));
        assert!(!t.in_query(None));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&format!("other=1; cliplab-token-8765={a}")).expect("header"));
        assert!(t.in_cookie(&h));
        // The cookie of a server on another port does not count.
        let other = Token::new(a, 8766);
        assert!(!other.in_cookie(&h));
    }
}

//! The wire under the buyer client: signed POSTs through hyper's pooled client, one pool per
//! sending thread, bodies read up to a bound. The load harness's fan-out ceiling sends through
//! this same code, so the two are compared on the same transport.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::signature;

/// Largest response body read from a buyer; past it the answer is an error.
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024;

/// Idle connections kept per buyer, shared out among the sending threads' pools.
const IDLE_PER_BUYER_MAX: usize = 64;

const TIMESTAMP: HeaderName = HeaderName::from_static("x-pingpost-timestamp");
const SIGNATURE: HeaderName = HeaderName::from_static("x-pingpost-signature");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const AGENT: HeaderValue =
    HeaderValue::from_static(concat!("pingpost/", env!("CARGO_PKG_VERSION")));

/// A buyer URL, parsed once when the configuration is read: the `Url` for people and the
/// `Uri` that requests carry, so no request parses it again.
#[derive(Debug, Clone)]
pub struct Endpoint {
    url: url::Url,
    uri: Uri,
}

impl Endpoint {
    /// An http or https URL with a host; the reason otherwise (without the URL).
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let url = url::Url::parse(text).map_err(|e| format!("is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err("must be an http or https URL".into());
        }
        Endpoint::try_from(url)
    }

    pub fn url(&self) -> &url::Url {
        &self.url
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }
}

impl TryFrom<url::Url> for Endpoint {
    type Error = String;

    fn try_from(url: url::Url) -> Result<Endpoint, String> {
        // A fragment is the client's own: the request URI leaves it out.
        let uri = url
            .as_str()
            .parse::<Uri>()
            .map_err(|e| format!("is not a request URI: {e}"))?;
        Ok(Endpoint { url, uri })
    }
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Threads that send to buyers, each with a pool of its own: the HTTP workers, one per core.
pub(super) fn sending_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[derive(Clone)]
pub struct Transport {
    /// One HTTP client, and so one connection pool, per thread that sends: a connection's
    /// task lives on the thread that opened it, and a request from another thread crossed
    /// to it and back (two wake-ups of another thread per request; see load-tests/RESULTS.md).
    http: Arc<thread_local::ThreadLocal<HttpClient>>,
    idle_timeout: Duration,
}

impl Transport {
    /// Pooled connections close after `idle_timeout` unused: below the keep-alive of common
    /// servers, so a pooled connection is not reused just as the buyer closes it.
    pub fn new(idle_timeout: Duration) -> anyhow::Result<Transport> {
        let transport = Transport {
            http: Arc::new(thread_local::ThreadLocal::new()),
            idle_timeout,
        };
        // Built once here so that a bad setting fails at start-up, not on a request.
        transport.http()?;
        Ok(transport)
    }

    /// This thread's client, built on its first request (with the settings that built one at
    /// start-up, so a failure here would be the machine's).
    fn http(&self) -> anyhow::Result<&HttpClient> {
        self.http.get_or_try(|| {
            let mut http = HttpConnector::new();
            http.set_nodelay(true);
            http.set_connect_timeout(Some(Duration::from_secs(2)));
            http.enforce_http(false);
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .enable_http2()
                .wrap_connector(http);
            Ok(Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(self.idle_timeout)
                // Idle connections kept per buyer after a burst, all pools together: enough
                // for 64 auctions at once without reconnecting, few enough that idle
                // connections to many buyers do not take the descriptors the requests in
                // flight need (nor the buyers').
                .pool_max_idle_per_host((IDLE_PER_BUYER_MAX / sending_threads()).max(8))
                .build(https))
        })
    }

    /// POSTs `body` to `endpoint`, signed with `secret` (`x-pingpost-timestamp`,
    /// `x-pingpost-signature`), and reads the answer's status and body. No redirects are
    /// followed. No timeout here: the caller bounds the whole exchange.
    pub async fn post_signed(
        &self,
        endpoint: &Endpoint,
        secret: &str,
        body: Bytes,
    ) -> Result<(u16, Vec<u8>), String> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let signature = signature(secret, timestamp, &body);
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = endpoint.uri.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, JSON);
        headers.insert(USER_AGENT, AGENT);
        headers.insert(TIMESTAMP, HeaderValue::from(timestamp));
        headers.insert(
            SIGNATURE,
            HeaderValue::from_str(&signature).expect("a signature is ASCII"),
        );
        let client = self
            .http()
            .map_err(|_| "the HTTP client could not be built".to_string())?;
        let response = client.request(request).await.map_err(|e| {
            if e.is_connect() {
                "connection failed".to_string()
            } else {
                "request failed".to_string()
            }
        })?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| "response body could not be read".to_string())?;
            if let Ok(chunk) = frame.into_data() {
                if bytes.len() + chunk.len() > RESPONSE_BYTES_MAX {
                    return Err("response body too large".into());
                }
                bytes.extend_from_slice(&chunk);
            }
        }
        Ok((status, bytes))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    use super::*;

    /// A buyer on 127.0.0.1 that answers one request with `response` as written, and hands
    /// back the request it read (head and body).
    async fn buyer_answering(response: Vec<u8>) -> (Endpoint, oneshot::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::parse(&format!(
            "http://{}/b/ping?x=1",
            listener.local_addr().unwrap()
        ))
        .unwrap();
        let (sent, received) = oneshot::channel();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            loop {
                let n = socket.read(&mut buffer).await.unwrap();
                request.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |v| v.parse::<usize>().unwrap());
                    if body.len() >= length || n == 0 {
                        let _ = sent.send(text);
                        break;
                    }
                }
            }
            socket.write_all(&response).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        (endpoint, received)
    }

    fn answer(status: &str, body: &[u8]) -> Vec<u8> {
        let mut response = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        response.extend_from_slice(body);
        response
    }

    #[tokio::test]
    async fn a_request_is_signed_and_its_answer_read_whole() {
        let (endpoint, request) = buyer_answering(answer("200 OK", b"{\"bid\":\"1.00\"}")).await;
        let transport = Transport::new(Duration::from_secs(1)).unwrap();
        let (status, body) = transport
            .post_signed(&endpoint, "secret", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"{\"bid\":\"1.00\"}"[..]));
        let request = request.await.unwrap();
        assert!(
            request.starts_with("POST /b/ping?x=1 HTTP/1.1\r\n"),
            "{request}"
        );
        let timestamp: u64 = request
            .lines()
            .find_map(|l| l.strip_prefix("x-pingpost-timestamp: "))
            .expect("a timestamp header")
            .parse()
            .unwrap();
        let expected = format!(
            "x-pingpost-signature: {}",
            signature("secret", timestamp, b"{}")
        );
        assert!(request.lines().any(|l| l == expected), "{request}");
        assert!(request.contains("content-type: application/json\r\n"));
        assert!(request.ends_with("\r\n\r\n{}"));
    }

    #[tokio::test]
    async fn an_answer_past_the_bound_is_an_error() {
        let body = vec![b' '; RESPONSE_BYTES_MAX + 1];
        let (endpoint, _request) = buyer_answering(answer("200 OK", &body)).await;
        let transport = Transport::new(Duration::from_secs(1)).unwrap();
        let result = transport
            .post_signed(&endpoint, "secret", Bytes::from_static(b"{}"))
            .await;
        assert_eq!(result, Err("response body too large".to_string()));
        // At the bound exactly, the answer is read.
        let body = vec![b' '; RESPONSE_BYTES_MAX];
        let (endpoint, _request) = buyer_answering(answer("200 OK", &body)).await;
        let (_, read) = transport
            .post_signed(&endpoint, "secret", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!(read.len(), RESPONSE_BYTES_MAX);
    }

    #[tokio::test]
    async fn a_redirect_is_the_answer_not_followed() {
        let (endpoint, _request) = buyer_answering(
            b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:1/elsewhere\r\ncontent-length: 0\r\n\r\n"
                .to_vec(),
        )
        .await;
        let transport = Transport::new(Duration::from_secs(1)).unwrap();
        let (status, body) = transport
            .post_signed(&endpoint, "secret", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!((status, body.len()), (302, 0));
    }

    #[tokio::test]
    async fn failures_are_named_without_the_url() {
        // A port nothing listens on: bound, then closed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let endpoint = Endpoint::parse(&format!("http://{addr}/secret-path")).unwrap();
        let transport = Transport::new(Duration::from_secs(1)).unwrap();
        let result = transport
            .post_signed(&endpoint, "secret", Bytes::from_static(b"{}"))
            .await;
        assert_eq!(result, Err("connection failed".to_string()));
        // A buyer that closes without an answer.
        let (endpoint, _request) = buyer_answering(Vec::new()).await;
        let result = transport
            .post_signed(&endpoint, "secret", Bytes::from_static(b"{}"))
            .await;
        assert_eq!(result, Err("request failed".to_string()));
        // A buyer whose body ends before its length.
        let (endpoint, _request) =
            buyer_answering(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}".to_vec()).await;
        let result = transport
            .post_signed(&endpoint, "secret", Bytes::from_static(b"{}"))
            .await;
        assert_eq!(result, Err("response body could not be read".to_string()));
    }

    #[test]
    fn only_http_and_https_urls_with_a_host_are_endpoints() {
        assert!(Endpoint::parse("https://buyer.example/ping?a=1").is_ok());
        assert_eq!(
            Endpoint::parse("ftp://buyer.example/ping").unwrap_err(),
            "must be an http or https URL"
        );
        assert!(Endpoint::parse("not a url")
            .unwrap_err()
            .starts_with("is not a URL"));
        let endpoint = Endpoint::parse("http://127.0.0.1:9/a b").unwrap();
        assert_eq!(endpoint.as_str(), "http://127.0.0.1:9/a%20b");
        let endpoint = Endpoint::parse("http://127.0.0.1:9/a?b=1#c").unwrap();
        assert_eq!(endpoint.uri.to_string(), "http://127.0.0.1:9/a?b=1");
    }
}

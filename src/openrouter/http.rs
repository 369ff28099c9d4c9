//! The key-management API over HTTP(S): ureq with rustls (ring) and the web
//! PKI roots compiled in, or the roots of SSL_CERT_FILE instead; a proxy
//! from HTTPS_PROXY with a NO_PROXY that behaves like curl's; one deadline
//! for every call of the run; and the retry rules of `retry`, with the one
//! exception that matters: a create that was sent is never sent again.

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use ureq::Agent;
use ureq::http::Response;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use super::api::{ApiError, CreatedKey, KeyApi, KeyInfo, KeyPatch, NewKey};
use super::redact::redact;
use super::retry::{self, Deadline};
use crate::secret::Secret;

/// A connection (DNS, TCP, proxy, TLS) that takes longer than this is
/// given up and tried again, within the deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Larger answers are not OpenRouter's: a page of 100 keys is ~60 KiB.
const MAX_BODY_BYTES: u64 = 4 << 20;
const SSL_CERT_FILE_FIX: &str = "Point SSL_CERT_FILE at a PEM file with the CA certificates to trust (it replaces the \
     bundled web PKI roots), or unset it.";

/// Everything the client needs from the configuration.
pub struct ClientSettings<'a> {
    /// OPENROUTER_HOST, e.g. `https://openrouter.ai/api/v1`.
    pub base_url: &'a str,
    pub management_key: &'a Secret,
    /// The variable that holds the management key, for messages.
    pub key_var: &'static str,
    /// OPENROUTER_TIMEOUT: one budget for every call of the run.
    pub timeout: Duration,
    pub ssl_cert_file: Option<&'a Path>,
    pub https_proxy: Option<&'a str>,
    pub no_proxy: Option<&'a str>,
}

/// The HTTP client. It holds the management key (in the `Authorization`
/// header it sends), so it has no `Debug`.
pub struct HttpKeyApi {
    agent: Agent,
    base: String,
    authorization: Secret,
    management_key: Secret,
    key_var: &'static str,
    deadline: Deadline,
    budget: Duration,
    requests: Cell<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

/// An answer with its status: every status is an answer here, the caller
/// decides what it means.
struct Answer {
    status: u16,
    body: String,
    retry_after: Option<Duration>,
}

impl HttpKeyApi {
    /// The client, with its deadline starting now. Fails (a configuration
    /// error) on an unusable SSL_CERT_FILE or HTTPS_PROXY.
    pub fn new(settings: &ClientSettings<'_>) -> Result<Self, ApiError> {
        let base = settings.base_url.trim_end_matches('/').to_owned();
        let tls = TlsConfig::builder()
            .root_certs(root_certs(settings.ssl_cert_file)?)
            .build();
        let proxy = if is_loopback_url(&base) {
            None
        } else {
            proxy(settings.https_proxy, settings.no_proxy)?
        };
        let agent: Agent = Agent::config_builder()
            .tls_config(tls)
            // Set even when None: ureq would otherwise read ALL_PROXY and
            // friends itself, with other rules than the documented ones.
            .proxy(proxy)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .http_status_as_error(false)
            // A fresh connection for every call: a create is never sent
            // over a pooled connection the server may already have closed,
            // which would make its outcome unknown for no reason.
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .max_redirects(0)
            .user_agent(concat!("mai-provision/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Self {
            agent,
            base,
            authorization: Secret::new(format!("Bearer {}", settings.management_key.expose())),
            management_key: settings.management_key.clone(),
            key_var: settings.key_var,
            deadline: Deadline::after(settings.timeout),
            budget: settings.timeout,
            requests: Cell::new(0),
        })
    }

    /// How many requests were sent so far, retries included.
    pub fn requests(&self) -> usize {
        self.requests.get()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One call, retried by the rules of `retry` until the deadline: the
    /// answer of a success, or the refusal any other final answer means.
    fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, ApiError> {
        let mut attempt = 0;
        let mut last = String::from("no attempt was made");
        loop {
            let Some(timeout) = self.deadline.attempt_timeout() else {
                return Err(self.gave_up(&last));
            };
            self.requests.set(self.requests.get() + 1);
            let started = Instant::now();
            let retry_after = match self.send(method, path, body, timeout) {
                Ok(answer) => {
                    tracing::debug!(
                        "OpenRouter: {} {path} answered {} in {} ms",
                        method.as_str(),
                        answer.status,
                        started.elapsed().as_millis()
                    );
                    if (200..300).contains(&answer.status) {
                        return Ok(answer);
                    }
                    if !is_retryable(answer.status) {
                        return Err(self.refusal(method, path, &answer));
                    }
                    last = format!("{} {}", answer.status, self.message(&answer.body));
                    // A 429 refused the create before doing it; any other
                    // failure after sending may have created the key.
                    if method == Method::Post && answer.status != 429 {
                        return Err(ApiError::OutcomeUnknown { reason: last });
                    }
                    answer.retry_after
                }
                Err(error) => {
                    last = self.describe(&error, timeout);
                    tracing::debug!("OpenRouter: {} {path} failed: {last}", method.as_str());
                    if method == Method::Post && may_have_been_sent(&error) {
                        return Err(ApiError::OutcomeUnknown { reason: last });
                    }
                    None
                }
            };
            attempt += 1;
            let wait = retry::backoff(attempt, retry_after, retry::jitter());
            if !self.deadline.allows_wait(wait) {
                return Err(self.gave_up(&last));
            }
            tracing::info!(
                "OpenRouter: {} {path}: {last}; trying again in {} ms",
                method.as_str(),
                wait.as_millis()
            );
            crate::signals::sleep(wait)?;
        }
    }

    fn gave_up(&self, last: &str) -> ApiError {
        ApiError::Unreachable {
            url: self.base.clone(),
            reason: format!(
                "{last}; no answer within OPENROUTER_TIMEOUT ({} s)",
                self.budget.as_secs_f64()
            ),
        }
    }

    fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Result<Answer, ureq::Error> {
        let url = self.url(path);
        let response = match method {
            Method::Get => self.prepared(self.agent.get(&url), timeout).call(),
            Method::Delete => self.prepared(self.agent.delete(&url), timeout).call(),
            Method::Post => self
                .prepared(self.agent.post(&url), timeout)
                .send_json(body.unwrap_or(&serde_json::Value::Null)),
            Method::Patch => self
                .prepared(self.agent.patch(&url), timeout)
                .send_json(body.unwrap_or(&serde_json::Value::Null)),
        }?;
        read_answer(response)
    }

    /// Every request: its own timeout, the management key, JSON answers.
    fn prepared<B>(
        &self,
        request: ureq::RequestBuilder<B>,
        timeout: Duration,
    ) -> ureq::RequestBuilder<B> {
        request
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("Authorization", self.authorization.expose())
            .header("Accept", "application/json")
    }

    /// The refusal an answer that is neither a success nor retryable means.
    fn refusal(&self, method: Method, path: &str, answer: &Answer) -> ApiError {
        let reason = self.message(&answer.body);
        match answer.status {
            401 | 403 => ApiError::Unauthorized {
                key_var: self.key_var,
                status: answer.status,
                reason,
            },
            404 => ApiError::NotFound {
                hash: path.rsplit('/').next().unwrap_or(path).to_owned(),
            },
            status @ 400..=499 => ApiError::Invalid {
                request: format!("{} {path}", method.as_str()),
                status,
                reason,
            },
            status => ApiError::Protocol {
                reason: format!("{} {path} answered {status}: {reason}", method.as_str()),
            },
        }
    }

    /// The error's message in OpenRouter's documented shape
    /// (`{"error":{"code":…,"message":…}}`), else the body itself; redacted.
    fn message(&self, body: &str) -> String {
        #[derive(Deserialize)]
        struct Shape {
            error: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            message: String,
        }
        let text = match serde_json::from_str::<Shape>(body) {
            Ok(shape) => shape.error.message,
            Err(_) if body.trim().is_empty() => "no message".to_owned(),
            Err(_) => body.trim().to_owned(),
        };
        redact(&text, &[&self.management_key])
    }

    fn describe(&self, error: &ureq::Error, timeout: Duration) -> String {
        let text = match error {
            ureq::Error::Timeout(which) => {
                format!("no answer within {:.1} s ({which})", timeout.as_secs_f64())
            }
            ureq::Error::HostNotFound => "the host name does not resolve".to_owned(),
            other => other.to_string(),
        };
        let mut text = redact(&text, &[&self.management_key]);
        if text.contains("certificate") {
            text.push_str(
                " (the server's TLS certificate is not trusted: if OpenRouter is reached through a proxy \
                 or a private CA, set SSL_CERT_FILE to its CA certificate)",
            );
        }
        text
    }

    /// A successful answer's JSON, or what makes it unreadable (redacted:
    /// a parser's message may quote the body).
    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        answer: &Answer,
        what: &str,
    ) -> Result<T, String> {
        serde_json::from_str(&answer.body)
            .map_err(|e| redact(&format!("{what}: {e}"), &[&self.management_key]))
    }

    /// A call whose success carries JSON, read as `T`; an unreadable one is
    /// a protocol error.
    fn call_for<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        what: &str,
    ) -> Result<T, ApiError> {
        let answer = self.call(method, path, body)?;
        self.parse(&answer, what)
            .map_err(|reason| ApiError::Protocol { reason })
    }
}

#[derive(Deserialize)]
struct One {
    data: KeyInfo,
}

#[derive(Deserialize)]
struct Many {
    data: Vec<KeyInfo>,
}

#[derive(Deserialize)]
struct Created {
    data: KeyInfo,
    key: String,
}

impl KeyApi for HttpKeyApi {
    fn list(&self, offset: usize) -> Result<Vec<KeyInfo>, ApiError> {
        let path = format!("/keys?include_disabled=true&offset={offset}");
        self.call_for::<Many>(Method::Get, &path, None, "GET /keys")
            .map(|many| many.data)
    }

    fn get(&self, hash: &str) -> Result<KeyInfo, ApiError> {
        let path = format!("/keys/{}", path_segment(hash)?);
        self.call_for::<One>(Method::Get, &path, None, "GET /keys/{hash}")
            .map(|one| one.data)
    }

    fn create(&self, request: &NewKey) -> Result<CreatedKey, ApiError> {
        let answer = self.call(Method::Post, "/keys", Some(&json_body(request)?))?;
        // A success whose body cannot be read created a key whose secret
        // is lost: that is an unknown outcome, not a protocol error.
        let created = self
            .parse::<Created>(&answer, "POST /keys")
            .map_err(|reason| ApiError::OutcomeUnknown { reason })?;
        // A key the job cannot address by its hash could never be managed.
        if created.key.trim().is_empty() || path_segment(&created.data.hash).is_err() {
            return Err(ApiError::OutcomeUnknown {
                reason: "POST /keys answered without the key or a usable hash".to_owned(),
            });
        }
        Ok(CreatedKey {
            key: Secret::new(created.key),
            info: created.data,
        })
    }

    fn update(&self, hash: &str, patch: &KeyPatch) -> Result<KeyInfo, ApiError> {
        let path = format!("/keys/{}", path_segment(hash)?);
        let body = json_body(patch)?;
        self.call_for::<One>(Method::Patch, &path, Some(&body), "PATCH /keys/{hash}")
            .map(|one| one.data)
    }

    fn delete(&self, hash: &str) -> Result<(), ApiError> {
        let path = format!("/keys/{}", path_segment(hash)?);
        match self.call(Method::Delete, &path, None) {
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A request's JSON body.
fn json_body(value: &impl serde::Serialize) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::Protocol {
        reason: e.to_string(),
    })
}

/// A hash from OpenRouter (or from the key store) goes into a URL path:
/// it must be a plain token, never `../` or a query.
fn path_segment(hash: &str) -> Result<&str, ApiError> {
    let plain = !hash.is_empty()
        && hash.len() <= 256
        && hash
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if plain {
        Ok(hash)
    } else {
        Err(ApiError::Protocol {
            reason: format!(
                "the key hash {:?} is not a plain token",
                hash.escape_debug()
            ),
        })
    }
}

fn read_answer(mut response: Response<ureq::Body>) -> Result<Answer, ureq::Error> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(retry::parse_retry_after);
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY_BYTES)
        .read_to_string()?;
    Ok(Answer {
        status,
        body,
        retry_after,
    })
}

/// 408, 429 and 5xx: the server may answer differently in a moment.
fn is_retryable(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// Whether a failed call may have reached the server. Only failures before
/// the request left (name resolution, connecting, the proxy, the TLS
/// handshake) are certain not to have; a create is retried only then.
fn may_have_been_sent(error: &ureq::Error) -> bool {
    use std::io::ErrorKind;
    use ureq::Timeout;
    match error {
        ureq::Error::HostNotFound
        | ureq::Error::BadUri(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::ConnectProxyFailed(_)
        | ureq::Error::RequireHttpsOnly(_)
        | ureq::Error::Tls(_)
        | ureq::Error::Rustls(_)
        | ureq::Error::Pem(_)
        | ureq::Error::Http(_)
        | ureq::Error::Timeout(Timeout::Resolve | Timeout::Connect) => false,
        ureq::Error::Io(e) => {
            !matches!(
                e.kind(),
                ErrorKind::ConnectionRefused | ErrorKind::AddrNotAvailable
            ) && !e.to_string().contains("certificate")
        }
        _ => true,
    }
}

/// `http://` to a loopback address: the tests' stand-in, never proxied.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    is_loopback_host(url_host(rest))
}

/// The host of a URL's remainder after `scheme://`: without user info,
/// port, path, query or fragment.
pub fn url_host(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    match host_port.strip_prefix('[') {
        Some(ipv6) => ipv6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    }
}

/// 127.0.0.0/8, ::1 and `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The roots a server certificate must chain to: the web PKI's, compiled
/// in, or those of SSL_CERT_FILE instead (as OpenSSL and curl read it:
/// the file replaces the default bundle).
fn root_certs(ssl_cert_file: Option<&Path>) -> Result<RootCerts, ApiError> {
    let Some(path) = ssl_cert_file else {
        return Ok(RootCerts::WebPki);
    };
    let setup = |problem: String| ApiError::Setup {
        var: "SSL_CERT_FILE",
        problem,
        fix: SSL_CERT_FILE_FIX,
    };
    let pem = std::fs::read(path).map_err(|e| {
        setup(format!(
            "names {}, which cannot be read ({})",
            path.display(),
            io_reason(&e)
        ))
    })?;
    let mut certs: Vec<Certificate<'static>> = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => {
                return Err(setup(format!(
                    "names {}, which is not PEM ({e})",
                    path.display()
                )));
            }
        }
    }
    if certs.is_empty() {
        return Err(setup(format!(
            "names {}, which holds no certificate",
            path.display()
        )));
    }
    Ok(RootCerts::Specific(Arc::new(certs)))
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "it does not exist".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

/// HTTPS_PROXY with a NO_PROXY read the way curl reads it: entries
/// trimmed, `example.com` covering its subdomains too, `*` for everything.
/// (Loopback is never proxied: `new` sets no proxy for a loopback base, the
/// only host the agent ever calls.)
fn proxy(
    https_proxy: Option<&str>,
    no_proxy: Option<&str>,
) -> Result<Option<ureq::Proxy>, ApiError> {
    let Some(url) = https_proxy.map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let setup = |problem: String| ApiError::Setup {
        var: "HTTPS_PROXY",
        problem,
        fix: "Use a proxy URL such as http://proxy.example:3128, or unset HTTPS_PROXY.",
    };
    // Never quote the URL: it may hold the proxy's password.
    let parsed =
        ureq::Proxy::new(url).map_err(|e| setup(format!("is not a usable proxy URL ({e})")))?;
    let mut builder = ureq::Proxy::builder(parsed.protocol())
        .host(parsed.host())
        .port(parsed.port());
    if let Some(user) = parsed.username() {
        builder = builder.username(user);
    }
    if let Some(password) = parsed.password() {
        builder = builder.password(password);
    }
    for entry in no_proxy.unwrap_or("").split(',').map(str::trim) {
        match entry {
            "" => {}
            "*" => builder = builder.no_proxy("*"),
            entry => {
                let domain = entry.trim_start_matches('*').trim_start_matches('.');
                builder = builder.no_proxy(domain).no_proxy(&format!(".{domain}"));
            }
        }
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| setup(format!("is not a usable proxy URL ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_127_slash_8_ipv6_one_and_localhost() {
        for url in [
            "http://127.0.0.1:8080/api/v1",
            "http://127.1.2.3/",
            "http://[::1]:9/x",
            "http://LOCALHOST:1",
            "http://user@localhost/x",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "http://128.0.0.1/",
            "http://localhost.evil.example/",
            "http://10.0.0.1/",
            "https://openrouter.ai/api/v1",
            "http://[::2]/",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }

    #[test]
    fn only_failures_before_sending_are_certain() {
        use std::io::{Error, ErrorKind};
        assert!(!may_have_been_sent(&ureq::Error::HostNotFound));
        assert!(!may_have_been_sent(&ureq::Error::Io(Error::from(
            ErrorKind::ConnectionRefused
        ))));
        assert!(!may_have_been_sent(&ureq::Error::Timeout(
            ureq::Timeout::Connect
        )));
        assert!(may_have_been_sent(&ureq::Error::Io(Error::from(
            ErrorKind::ConnectionReset
        ))));
        assert!(may_have_been_sent(&ureq::Error::Io(Error::from(
            ErrorKind::UnexpectedEof
        ))));
        assert!(may_have_been_sent(&ureq::Error::Timeout(
            ureq::Timeout::Global
        )));
    }

    #[test]
    fn hashes_must_be_plain_tokens() {
        assert!(path_segment("f01d52606dc8f0a8").is_ok());
        for bad in ["", "../keys", "a?b", "a/b", "a b"] {
            assert!(path_segment(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_bad_ca_file_is_a_setup_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        for (path, words) in [
            (empty.clone(), "holds no certificate"),
            (dir.path().join("missing.pem"), "cannot be read"),
        ] {
            let Err(ApiError::Setup { var, problem, .. }) = root_certs(Some(&path)) else {
                panic!("{path:?} was accepted");
            };
            assert_eq!(var, "SSL_CERT_FILE");
            assert!(problem.contains(words), "{problem}");
        }
    }

    #[test]
    fn a_proxy_url_is_checked_without_being_quoted() {
        let Err(ApiError::Setup { var, problem, .. }) =
            proxy(Some("ftp://user:hunter2@proxy.example"), None)
        else {
            panic!("accepted");
        };
        assert_eq!(var, "HTTPS_PROXY");
        assert!(!problem.contains("hunter2"), "{problem}");
        assert!(
            proxy(
                Some("http://proxy.example:3128"),
                Some("a.example, b.example")
            )
            .unwrap()
            .is_some()
        );
        assert!(proxy(None, Some("x")).unwrap().is_none());
    }
}

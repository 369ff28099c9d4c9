//! A stand-in for OpenRouter's key-management API, for the tests and the
//! end-to-end test (tests/e2e/openrouter-standin/ includes this file). It
//! follows the documented shapes (the OpenAPI spec of OpenRouterTeam/docs;
//! see /work/notes/openrouter-api.md in the project's research): every
//! answer is `{"data": …}`, a create answers 201 with the secret at the top
//! level (`key`) and never shows it again, a list holds 100 keys a page,
//! newest first, without disabled keys unless `include_disabled=true`, an
//! unknown or deleted hash is 404, and errors are
//! `{"error":{"code":…,"message":…}}`.
//!
//! It keeps its keys in memory, logs every request (method and path), and
//! can be told to fail: answer with a status (429 with `Retry-After`, 500,
//! 401…), answer slowly, or drop the connection after it created a key. It
//! serves plain HTTP on a loopback port, or HTTPS with a certificate of its
//! own test CA.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// OpenRouter's page size for `GET /keys`.
pub const PAGE_SIZE: usize = 100;
/// The stand-in's API base path, as OpenRouter's (`/api/v1`).
pub const BASE_PATH: &str = "/api/v1";

/// One key as the stand-in holds it; `secret` is for the tests' checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub hash: String,
    pub name: String,
    pub secret: String,
    pub disabled: bool,
    pub limit: Option<f64>,
    pub limit_reset: Option<String>,
    pub deleted: bool,
    pub created_at: String,
}

/// What a fault does to the request it matches.
#[derive(Debug, Clone)]
pub enum FaultKind {
    /// Answer this status with the documented error shape, and this
    /// `Retry-After` header when given.
    Status { code: u16, retry_after: Option<u64> },
    /// Answer this status with this message, as OpenRouter refuses a
    /// request it finds invalid.
    Refuse { code: u16, message: String },
    /// Wait this long before handling the request.
    Slow(Duration),
    /// Handle the request (a create creates its key), then close the
    /// connection without an answer.
    DropAfterHandling,
}

/// A fault for the next `times` requests whose method and path match.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: Option<&'static str>,
    pub path_contains: Option<String>,
    pub times: usize,
    pub kind: FaultKind,
}

impl Fault {
    pub fn new(method: Option<&'static str>, times: usize, kind: FaultKind) -> Self {
        Self {
            method,
            path_contains: None,
            times,
            kind,
        }
    }

    pub fn status(method: Option<&'static str>, times: usize, code: u16) -> Self {
        Self::new(
            method,
            times,
            FaultKind::Status {
                code,
                retry_after: None,
            },
        )
    }

    pub fn refuse(method: Option<&'static str>, code: u16, message: &str) -> Self {
        Self::new(
            method,
            usize::MAX,
            FaultKind::Refuse {
                code,
                message: message.to_owned(),
            },
        )
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.times > 0
            && self.method.is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }
}

#[derive(Default)]
struct State {
    keys: Vec<Key>,
    log: Vec<String>,
    faults: VecDeque<Fault>,
}

/// A running stand-in; dropping it stops it.
pub struct StandIn {
    addr: SocketAddr,
    tls: bool,
    ca_pem: Option<String>,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl StandIn {
    /// Plain HTTP on a free loopback port.
    pub fn start(management_key: &str) -> Self {
        Self::start_on("127.0.0.1:0", management_key, None)
    }

    /// HTTPS, with a certificate for `localhost` and 127.0.0.1 from a CA
    /// made for this stand-in alone (`ca_pem`).
    pub fn start_tls(management_key: &str) -> Self {
        let (ca_pem, config) = tls_config();
        let mut standin = Self::start_on("127.0.0.1:0", management_key, Some(config));
        standin.ca_pem = Some(ca_pem);
        standin
    }

    /// Plain HTTP on `addr` (the end-to-end test's fixed port).
    pub fn start_on(
        addr: &str,
        management_key: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let listener = TcpListener::bind(addr).expect("bind the OpenRouter stand-in");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let is_tls = tls.is_some();
        let acceptor = {
            let (state, stop) = (state.clone(), stop.clone());
            let auth = format!("Bearer {management_key}");
            std::thread::spawn(move || accept(listener, &state, &stop, &auth, tls))
        };
        Self {
            addr,
            tls: is_tls,
            ca_pem: None,
            state,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// OPENROUTER_HOST for the job.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let host = if self.tls { "localhost" } else { "127.0.0.1" };
        format!("{scheme}://{host}:{}{BASE_PATH}", self.addr.port())
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The test CA's certificate (PEM), for SSL_CERT_FILE.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every request so far, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state().log.clone()
    }

    pub fn clear_log(&self) {
        self.state().log.clear();
    }

    /// The requests whose method is one of `methods`.
    pub fn requests_of(&self, methods: &[&str]) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| methods.iter().any(|m| r.starts_with(&format!("{m} "))))
            .collect()
    }

    /// Every key ever created, deleted ones included.
    pub fn all_keys(&self) -> Vec<Key> {
        self.state().keys.clone()
    }

    /// The keys that exist and are enabled.
    pub fn live_keys(&self) -> Vec<Key> {
        self.all_keys()
            .into_iter()
            .filter(|k| !k.deleted && !k.disabled)
            .collect()
    }

    /// The keys that exist (enabled or not).
    pub fn existing_keys(&self) -> Vec<Key> {
        self.all_keys().into_iter().filter(|k| !k.deleted).collect()
    }

    /// A key made behind the job's back (an orphan, another key).
    pub fn add_key(&self, name: &str) -> Key {
        let mut state = self.state();
        let key = new_key(name, None, None);
        state.keys.push(key.clone());
        key
    }

    pub fn set_disabled(&self, hash: &str, disabled: bool) {
        if let Some(key) = self.state().keys.iter_mut().find(|k| k.hash == hash) {
            key.disabled = disabled;
        }
    }

    pub fn delete_key(&self, hash: &str) {
        if let Some(key) = self.state().keys.iter_mut().find(|k| k.hash == hash) {
            key.deleted = true;
        }
    }

    pub fn fail(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept(
    listener: TcpListener,
    state: &Arc<Mutex<State>>,
    stop: &AtomicBool,
    auth: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let (state, auth, tls) = (state.clone(), auth.to_owned(), tls.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    match tls {
                        None => serve(stream, &state, &auth),
                        Some(config) => {
                            let Ok(conn) = rustls::ServerConnection::new(config) else {
                                return;
                            };
                            serve(rustls::StreamOwned::new(conn, stream), &state, &auth);
                        }
                    }
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// A parsed request.
struct Request {
    method: String,
    path: String,
    query: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

/// One request per connection: read it, answer it (or not), close.
fn serve<S: Read + Write>(stream: S, state: &Arc<Mutex<State>>, auth: &str) {
    let mut reader = BufReader::new(stream);
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let target = if request.query.is_empty() {
        request.path.clone()
    } else {
        format!("{}?{}", request.path, request.query)
    };
    let fault = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.log.push(format!("{} {target}", request.method));
        let found = state
            .faults
            .iter_mut()
            .find(|f| f.matches(&request.method, &target));
        found.map(|fault| {
            fault.times = fault.times.saturating_sub(1);
            fault.kind.clone()
        })
    };
    let answer = match fault {
        Some(FaultKind::Status { code, retry_after }) => {
            Some(error(code, "injected failure", retry_after))
        }
        Some(FaultKind::Refuse { code, message }) => Some(error(code, &message, None)),
        Some(FaultKind::Slow(wait)) => {
            std::thread::sleep(wait);
            Some(handle(&request, state, auth))
        }
        Some(FaultKind::DropAfterHandling) => {
            let _ = handle(&request, state, auth);
            None
        }
        None => Some(handle(&request, state, auth)),
    };
    let mut stream = reader.into_inner();
    if let Some((status, headers, body)) = answer {
        let mut text = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            reason(status),
            body.len()
        );
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        text.push_str(&body);
        let _ = stream.write_all(text.as_bytes());
        let _ = stream.flush();
    }
}

fn read_request<R: BufRead>(reader: &mut R) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (mut length, mut chunked, mut authorization) = (0usize, false, None);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().ok()?,
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "authorization" => authorization = Some(value.to_owned()),
            _ => {}
        }
    }
    let body = if chunked {
        read_chunked(reader)?
    } else {
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        body
    };
    Some(Request {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        authorization,
        body,
    })
}

fn read_chunked<R: BufRead>(reader: &mut R) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

type Answer = (u16, Vec<(&'static str, String)>, String);

fn handle(request: &Request, state: &Arc<Mutex<State>>, auth: &str) -> Answer {
    if request.authorization.as_deref() != Some(auth) {
        let message = match request.authorization {
            None => "Missing Authentication header",
            Some(_) => "Invalid management key",
        };
        return error(401, message, None);
    }
    let Some(rest) = request.path.strip_prefix(BASE_PATH) else {
        return error(404, "Not Found", None);
    };
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    match (request.method.as_str(), rest) {
        ("GET", "/keys") => list(&state.keys, &request.query),
        ("POST", "/keys") => create(&mut state.keys, &request.body),
        (method, path) => match path.strip_prefix("/keys/") {
            Some(hash) if !hash.is_empty() && !hash.contains('/') => {
                let Some(key) = state.keys.iter_mut().find(|k| k.hash == hash && !k.deleted) else {
                    return error(404, "Resource not found", None);
                };
                match method {
                    "GET" => ok(200, json!({ "data": view(key) })),
                    "PATCH" => update(key, &request.body),
                    "DELETE" => {
                        key.deleted = true;
                        ok(200, json!({ "deleted": true }))
                    }
                    _ => error(405, "Method not allowed", None),
                }
            }
            _ => error(404, "Not Found", None),
        },
    }
}

fn list(keys: &[Key], query: &str) -> Answer {
    let mut include_disabled = false;
    let mut offset = 0usize;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "include_disabled" => match value {
                "true" => include_disabled = true,
                "false" => include_disabled = false,
                _ => return error(400, "include_disabled must be true or false", None),
            },
            "offset" => match value.parse() {
                Ok(n) => offset = n,
                Err(_) => return error(400, "offset must be a non-negative integer", None),
            },
            _ => {}
        }
    }
    let page: Vec<Value> = keys
        .iter()
        .rev()
        .filter(|k| !k.deleted && (include_disabled || !k.disabled))
        .skip(offset)
        .take(PAGE_SIZE)
        .map(view)
        .collect();
    ok(200, json!({ "data": page }))
}

fn create(keys: &mut Vec<Key>, body: &[u8]) -> Answer {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return error(400, "Invalid JSON body", None);
    };
    let Some(name) = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return error(400, "name is required", None);
    };
    let limit = match limit_of(body.get("limit")) {
        Ok(limit) => limit,
        Err(answer) => return answer,
    };
    let reset = match reset_of(body.get("limit_reset")) {
        Ok(reset) => reset,
        Err(answer) => return answer,
    };
    let key = new_key(name, limit, reset);
    let answer = json!({ "data": view(&key), "key": key.secret });
    keys.push(key);
    ok(201, answer)
}

fn update(key: &mut Key, body: &[u8]) -> Answer {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return error(400, "Invalid JSON body", None);
    };
    let known = [
        "name",
        "disabled",
        "limit",
        "limit_reset",
        "include_byok_in_limit",
    ];
    if !known.iter().any(|field| body.contains_key(*field)) {
        return error(400, "No update fields provided", None);
    }
    if body.contains_key("limit") {
        match limit_of(body.get("limit")) {
            Ok(limit) => key.limit = limit,
            Err(answer) => return answer,
        }
    }
    if body.contains_key("limit_reset") {
        match reset_of(body.get("limit_reset")) {
            Ok(reset) => key.limit_reset = reset,
            Err(answer) => return answer,
        }
    }
    if let Some(name) = body.get("name").and_then(Value::as_str) {
        key.name = name.to_owned();
    }
    if let Some(disabled) = body.get("disabled").and_then(Value::as_bool) {
        key.disabled = disabled;
    }
    ok(200, json!({ "data": view(key) }))
}

fn limit_of(value: Option<&Value>) -> Result<Option<f64>, Answer> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(limit) if limit >= 0.0 => Ok(Some(limit)),
            _ => Err(error(400, "limit must be a non-negative number", None)),
        },
        Some(_) => Err(error(400, "limit must be a number or null", None)),
    }
}

fn reset_of(value: Option<&Value>) -> Result<Option<String>, Answer> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if matches!(s.as_str(), "daily" | "weekly" | "monthly") => {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(error(
            400,
            "limit_reset must be daily, weekly, monthly or null",
            None,
        )),
    }
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn new_key(name: &str, limit: Option<f64>, limit_reset: Option<String>) -> Key {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{n}-{nanos}-{}", std::process::id());
    let hex = |salt: &str| {
        Sha256::digest(format!("{salt}{seed}").as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    Key {
        hash: hex("hash"),
        name: name.to_owned(),
        secret: format!("sk-or-v1-{}", hex("secret")),
        disabled: false,
        limit,
        limit_reset,
        deleted: false,
        created_at: format!("2026-11-30T12:{:02}:{:02}Z", (n / 60) % 60, n % 60),
    }
}

/// The documented key object, every required field included; the label is
/// the masked secret, as OpenRouter shows it.
fn view(key: &Key) -> Value {
    let body = &key.secret["sk-or-v1-".len()..];
    json!({
        "hash": key.hash,
        "name": key.name,
        "label": format!("sk-or-v1-{}...{}", &body[..3], &body[body.len() - 3..]),
        "disabled": key.disabled,
        "limit": key.limit,
        "limit_remaining": key.limit,
        "limit_reset": key.limit_reset,
        "include_byok_in_limit": false,
        "usage": 0, "usage_daily": 0, "usage_weekly": 0, "usage_monthly": 0,
        "byok_usage": 0, "byok_usage_daily": 0, "byok_usage_weekly": 0, "byok_usage_monthly": 0,
        "created_at": key.created_at,
        "updated_at": null,
        "expires_at": null,
        "creator_user_id": null,
        "workspace_id": "0df9e665-d932-5740-b2c7-b52af166bc11",
    })
}

fn ok(status: u16, body: Value) -> Answer {
    (status, Vec::new(), body.to_string())
}

fn error(code: u16, message: &str, retry_after: Option<u64>) -> Answer {
    let headers = retry_after
        .map(|s| vec![("Retry-After", s.to_string())])
        .unwrap_or_default();
    let body = json!({ "error": { "code": code, "message": message } }).to_string();
    (code, headers, body)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A CA made now, and a server configuration with a certificate it signed
/// for `localhost` and 127.0.0.1.
fn tls_config() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        SanType,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mai-provision test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let cert = params
        .signed_by(&server_key, &issuer)
        .expect("server certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::from(server_key),
        )
        .expect("server config");
    (ca_cert.pem(), Arc::new(config))
}

/// A plain TCP client for the stand-in's own checks, without the job.
pub fn raw_request(port: u16, text: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.write_all(text.as_bytes()).expect("write");
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

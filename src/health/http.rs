//! HTTP_GET and SSL_GET: one `GET` per URL over HTTP/1.0 with
//! `Connection: close`, optionally over TLS (rustls). The response is read
//! up to [`MAX_HEADER`] bytes of header and, when a digest or a regular
//! expression needs it, [`MAX_BODY`] bytes of body, all within the
//! attempt's `connect_timeout`; anything that does not parse as HTTP is a
//! failed check saying so.

use std::sync::Arc;

use md5::{Digest, Md5};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::check::{self, Context, Outcome, io_reason};
use crate::config::{CheckConfig, HttpCheck, UrlCheck};

/// The most header bytes read.
pub const MAX_HEADER: usize = 64 * 1024;
/// The most body bytes read.
pub const MAX_BODY: usize = 1024 * 1024;

/// All URLs in order; the first failure is the check's.
pub async fn get(
    ctx: &Context,
    cfg: &CheckConfig,
    http: &HttpCheck,
    tls: bool,
) -> Result<Outcome, String> {
    let mut last = String::new();
    for (i, url) in http.urls.iter().enumerate() {
        let regex = ctx.regexes.get(i).and_then(Option::as_ref);
        let status = one(ctx, cfg, http, url, regex, tls)
            .await
            .map_err(|e| format!("{}: {e}", url.path))?;
        last = format!("{}: status {status}", url.path);
    }
    Ok(Outcome::pass(last))
}

async fn one(
    ctx: &Context,
    cfg: &CheckConfig,
    http: &HttpCheck,
    url: &UrlCheck,
    regex: Option<&regex::bytes::Regex>,
    tls: bool,
) -> Result<u16, String> {
    let stream = check::connect(cfg).await?;
    let host = http.virtualhost.clone().unwrap_or_else(|| {
        let ip = &cfg.connect_ip;
        let ip = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.clone()
        };
        let default_port = if tls { 443 } else { 80 };
        if cfg.connect_port == default_port {
            ip
        } else {
            format!("{ip}:{}", cfg.connect_port)
        }
    });
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: xdpvs-health\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path
    );
    let need_body = url.digest.is_some() || regex.is_some();
    let response = if tls {
        let config = ctx.tls.clone().ok_or("TLS is not set up")?;
        let name = server_name(cfg, http, stream.peer_addr().ok())?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let stream = connector
            .connect(name, stream)
            .await
            .map_err(|e| io_reason("TLS handshake", &e))?;
        exchange(stream, &request, need_body).await?
    } else {
        exchange(stream, &request, need_body).await?
    };
    judge(url, regex, &response)?;
    Ok(response.status)
}

/// The name the TLS client presents (SNI) and verifies.
fn server_name(
    cfg: &CheckConfig,
    http: &HttpCheck,
    peer: Option<std::net::SocketAddr>,
) -> Result<ServerName<'static>, String> {
    let name = http.virtualhost.as_deref().unwrap_or(&cfg.connect_ip);
    let ip = || -> Result<ServerName<'static>, String> {
        let ip = cfg
            .connect_ip
            .parse::<std::net::IpAddr>()
            .ok()
            .or(peer.map(|p| p.ip()))
            .ok_or("no address for the TLS server name")?;
        Ok(ServerName::IpAddress(ip.into()))
    };
    if !http.sni {
        return ip();
    }
    match ServerName::try_from(name.to_owned()) {
        Ok(name) => Ok(name),
        Err(_) => ip(),
    }
}

struct Response {
    status: u16,
    body: Vec<u8>,
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
    need_body: bool,
) -> Result<Response, String> {
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| io_reason("send", &e))?;
    stream.flush().await.map_err(|e| io_reason("send", &e))?;
    let mut buf = Vec::with_capacity(4096);
    let header_end = loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() >= MAX_HEADER {
            return Err(format!("no end of header in {MAX_HEADER} bytes"));
        }
        let n = read_some(&mut stream, &mut buf, MAX_HEADER).await?;
        if n == 0 {
            return Err(if buf.is_empty() {
                "connection closed without a response".to_owned()
            } else if !buf.starts_with(b"HTTP/") {
                garbage(&buf)
            } else {
                "connection closed inside the header".to_owned()
            });
        }
        if buf.len() >= 5 && !buf.starts_with(b"HTTP/") {
            return Err(garbage(&buf));
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = parse_status(status_line).ok_or_else(|| garbage(status_line.as_bytes()))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let mut body = buf.split_off(header_end);
    if !need_body {
        return Ok(Response { status, body });
    }
    let want = match (chunked, length) {
        (false, Some(n)) if n > MAX_BODY => {
            return Err(format!("body of {n} bytes, more than {MAX_BODY}"));
        }
        (false, Some(n)) => Some(n),
        _ => None,
    };
    loop {
        if want.is_some_and(|n| body.len() >= n) {
            body.truncate(want.unwrap_or(0));
            break;
        }
        if body.len() > MAX_BODY {
            return Err(format!("body longer than {MAX_BODY} bytes"));
        }
        let n = read_some(&mut stream, &mut body, MAX_BODY + 1).await?;
        if n == 0 {
            if let Some(n) = want {
                return Err(format!(
                    "connection closed after {} of {n} body bytes",
                    body.len()
                ));
            }
            break;
        }
    }
    if chunked {
        body = dechunk(&body).ok_or("malformed chunked body")?;
    }
    Ok(Response { status, body })
}

/// Reads more into `buf` (at most up to `limit` bytes in all).
async fn read_some<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<usize, String> {
    let mut chunk = [0u8; 8192];
    let room = limit.saturating_sub(buf.len()).clamp(1, chunk.len());
    let n = stream
        .read(&mut chunk[..room])
        .await
        .map_err(|e| io_reason("receive", &e))?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn garbage(bytes: &[u8]) -> String {
    let shown: String = String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    format!("not an HTTP response: {shown:?}")
}

/// `HTTP/1.x NNN ...`.
fn parse_status(line: &str) -> Option<u16> {
    let mut words = line.split(' ');
    let version = words.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code = words.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok().filter(|c| (100..=599).contains(c))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A chunked body's data (RFC 9112 §7.1), trailers ignored.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 || &data[size..size + 2] != b"\r\n" {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn judge(
    url: &UrlCheck,
    regex: Option<&regex::bytes::Regex>,
    response: &Response,
) -> Result<(), String> {
    let status = response.status;
    if !url
        .status
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&status))
    {
        let ranges: Vec<String> = url
            .status
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        return Err(format!("status {status} not in {}", ranges.join(",")));
    }
    if let Some(want) = url.digest {
        let got: [u8; 16] = Md5::digest(&response.body).into();
        if got != want {
            return Err(format!("digest {} is not {}", hex(&got), hex(&want)));
        }
    }
    if let Some(re) = regex
        && !re.is_match(&response.body)
    {
        return Err(format!("body does not match regex {:?}", re.as_str()));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The TLS client of an SSL_GET: ring's primitives; with
/// `verify_certificate` the chain is checked against `ca_file` (PEM) or
/// the built-in Mozilla roots and the name against virtualhost or
/// connect_ip; without it any certificate is accepted, as keepalived does.
pub fn tls_config(http: &HttpCheck) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let mut config = if http.verify_certificate {
        let mut roots = rustls::RootCertStore::empty();
        match &http.ca_file {
            Some(path) => {
                use rustls::pki_types::pem::PemObject;
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                for cert in certs {
                    let cert = cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                }
                if roots.is_empty() {
                    return Err(format!("ca_file {}: no certificate", path.display()));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    config.enable_sni = http.sni;
    Ok(Arc::new(config))
}

/// Accepts any certificate (keepalived's SSL_GET does not verify) but
/// still checks the handshake's signatures, so the exchange is sound.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status("HTTP/1.0 500"), Some(500));
        assert_eq!(parse_status("SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status("HTTP/1.1 2000 OK"), None);
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\n").as_deref(),
            Some(&b"Wikipedia"[..])
        );
        assert_eq!(dechunk(b"zz\r\n"), None);
        assert_eq!(dechunk(b"10\r\nshort\r\n"), None);
    }
}

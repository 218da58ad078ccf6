//! The emulator's private CA and its serving certificate (IP:127.0.0.1, DNS:localhost and the
//! exec host), kept in the state dir.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub struct Material {
    pub ca_pem: String,
    pub ca_path: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca-key.pem";
const CERT_FILE: &str = "server.pem";
const KEY_FILE: &str = "server-key.pem";
/// The names the serving certificate was issued for, one a line: a changed `--exec-host` gets a
/// new certificate.
const NAMES_FILE: &str = "server-names.txt";

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name
        .push(DnType::CommonName, "kubeinvoke-emulator CA");
    p.distinguished_name
        .push(DnType::OrganizationName, "kubeinvoke");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    Ok(p)
}

/// The serving certificate's names: always `localhost` and 127.0.0.1, plus `extra`.
fn serving_names(extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    for n in extra {
        let n = n.trim_end_matches('.').to_ascii_lowercase();
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

fn serving_params(names: &[String]) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    for n in names {
        p.subject_alt_names
            .push(match n.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(n.clone().try_into()?),
            });
    }
    p.distinguished_name
        .push(DnType::CommonName, "kubeinvoke-emulator");
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(825);
    Ok(p)
}

fn read(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

/// Loads the CA and serving certificate from `dir`, creating whatever is missing; the serving
/// certificate is issued again when it does not cover `extra_names` (e.g. the exec host).
pub fn load_or_create(dir: &Path, extra_names: &[String]) -> Result<Material, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let err = |e: rcgen::Error| e.to_string();
    let (ca_pem, ca_key) = match (read(dir, CA_FILE), read(dir, CA_KEY_FILE)) {
        (Some(cert), Some(key)) => (cert, KeyPair::from_pem(&key).map_err(err)?),
        _ => {
            let key = KeyPair::generate().map_err(err)?;
            let cert = ca_params().map_err(err)?.self_signed(&key).map_err(err)?;
            write(dir, CA_FILE, &cert.pem())?;
            write(dir, CA_KEY_FILE, &key.serialize_pem())?;
            // A new CA invalidates any old serving certificate.
            let _ = std::fs::remove_file(dir.join(CERT_FILE));
            (cert.pem(), key)
        }
    };
    let names = serving_names(extra_names).join("\n");
    let same_names = read(dir, NAMES_FILE).is_some_and(|n| n.trim() == names);
    let (cert_pem, key_pem) = match (read(dir, CERT_FILE), read(dir, KEY_FILE)) {
        (Some(c), Some(k)) if same_names => (c, k),
        _ => {
            let issuer = Issuer::new(ca_params().map_err(err)?, ca_key);
            let key = KeyPair::generate().map_err(err)?;
            let cert = serving_params(&serving_names(extra_names))
                .map_err(err)?
                .signed_by(&key, &issuer)
                .map_err(err)?;
            write(dir, CERT_FILE, &cert.pem())?;
            write(dir, KEY_FILE, &key.serialize_pem())?;
            write(dir, NAMES_FILE, &names)?;
            (cert.pem(), key.serialize_pem())
        }
    };
    let ca_path = std::path::absolute(dir.join(CA_FILE)).map_err(|e| e.to_string())?;
    Ok(Material {
        ca_pem,
        ca_path,
        cert_pem,
        key_pem,
    })
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    std::fs::write(dir.join(name), text).map_err(|e| format!("write {name}: {e}"))
}

/// ALPN of the ARM and Entra port: HTTP/2 first, as ARM's front door offers it (the Azure SDK for
/// Go's default transport attempts HTTP/2 on every call), HTTP/1.1 for clients that do not speak it
/// (the Azure CLI and the Python SDK, through `requests`).
pub const ARM_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];
/// ALPN of the ACI exec port: HTTP/1.1 only, so websockets upgrade the classic way.
pub const EXEC_ALPN: &[&[u8]] = &[b"http/1.1"];

/// A rustls server config offering `alpn`.
pub fn server_config(m: &Material, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(m.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("serving cert: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(m.key_pem.as_bytes())
        .map_err(|e| format!("serving key: {e}"))?;
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

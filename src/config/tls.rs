//! The TLS identity of `tls:` listeners: `server.tls_cert` (a PEM chain,
//! leaf first) and `server.tls_key` (its PEM private key). Read by
//! `sipacd check` and reload (so a bad pair is refused with the old one
//! kept) and by the daemon, which builds its acceptor from the same call.

use rustls::crypto::ring::default_provider;
use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// The certificate chain and key files, as resolved against the config
/// file's directory. Only the paths: the files are read again at start
/// and at every reload, so a renewed certificate is taken up by a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Which of the two files a [`TlsError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    Cert,
    Key,
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("{path}: not PEM: {why}")]
    NotPem { path: PathBuf, why: String },
    #[error("the private key does not match the certificate: {0}")]
    Mismatch(String),
}

/// A rustls server configuration for `files`: the chain and key are read,
/// parsed and checked to belong together. No client certificates are asked
/// for (phones authenticate with digest, as over UDP and TCP).
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, (TlsFile, TlsError)> {
    let certs = read_certs(&files.cert).map_err(|e| (TlsFile::Cert, e))?;
    let key = read_key(&files.key).map_err(|e| (TlsFile::Key, e))?;
    let cfg = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| (TlsFile::Key, TlsError::Mismatch(e.to_string())))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| (TlsFile::Key, TlsError::Mismatch(e.to_string())))?;
    Ok(Arc::new(cfg))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Unreadable {
        path: path.to_path_buf(),
        source,
    })
}

fn not_pem(path: &Path, e: pem::Error) -> TlsError {
    TlsError::NotPem {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_pem(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = read(path)?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        e => not_pem(path, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> TlsFiles {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write");
        std::fs::write(&files.key, key.serialize_pem()).expect("write");
        files
    }

    #[test]
    fn a_matching_pair_loads() {
        let dir = tempfile::tempdir().expect("dir");
        let files = pair(dir.path(), "a");
        assert!(server_config(&files).is_ok());
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_as_a_key_error() {
        let dir = tempfile::tempdir().expect("dir");
        let a = pair(dir.path(), "a");
        let b = pair(dir.path(), "b");
        let mixed = TlsFiles {
            cert: a.cert,
            key: b.key,
        };
        let (which, e) = server_config(&mixed).expect_err("mismatch");
        assert_eq!(which, TlsFile::Key);
        assert!(matches!(e, TlsError::Mismatch(_)), "{e}");
    }

    #[test]
    fn missing_and_non_pem_files_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let a = pair(dir.path(), "a");
        let missing = TlsFiles {
            cert: dir.path().join("nope.crt"),
            key: a.key.clone(),
        };
        let (which, e) = server_config(&missing).expect_err("missing");
        assert_eq!(which, TlsFile::Cert);
        assert!(matches!(e, TlsError::Unreadable { .. }), "{e}");

        let junk = dir.path().join("junk.crt");
        std::fs::write(&junk, "hello, not a certificate\n").expect("write");
        let (which, e) = server_config(&TlsFiles {
            cert: junk,
            key: a.key.clone(),
        })
        .expect_err("junk");
        assert_eq!(which, TlsFile::Cert);
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");

        // A certificate where the key should be.
        let (which, e) = server_config(&TlsFiles {
            cert: a.cert.clone(),
            key: a.cert,
        })
        .expect_err("cert as key");
        assert_eq!(which, TlsFile::Key);
        assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
    }
}

//! The service account signing key: one P-256 key kept in the PKI directory (`sa.key`), or one for the process
//! when the server has no directory. Below `state`, which holds it; the token API above it (`token`) signs
//! and verifies with it.

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

const KEY_FILE: &str = "sa.key";

/// Signs and verifies tokens with one P-256 key.
pub struct TokenKeys {
    key: EcdsaKeyPair,
    pub(super) key_id: String,
}

/// Why the service account signing key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read, parsed or written.
    #[error("service account key {path}: {message}")]
    File {
        /// The key file (`<dir>/sa.key`).
        path: String,
        /// What went wrong with it.
        message: String,
    },
}

impl TokenKeys {
    /// The key kept in `dir/sa.key` (created on first use), or, with no directory (plain HTTP servers), a key
    /// for this process only: its tokens stop verifying at restart.
    pub fn load_or_create(dir: Option<&Path>) -> Result<TokenKeys, KeyError> {
        let rng = SystemRandom::new();
        let err = |path: &Path, message: String| KeyError::File { path: path.display().to_string(), message };
        let pkcs8 = match dir.map(|d| d.join(KEY_FILE)) {
            Some(path) if path.exists() => {
                crate::private_files::check_file(&path).map_err(|e| err(&path, e.to_string()))?;
                let pem = std::fs::read_to_string(&path).map_err(|e| err(&path, e.to_string()))?;
                let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
                STANDARD.decode(b64).map_err(|e| err(&path, format!("not PEM: {e}")))?
            }
            target => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| err(Path::new(KEY_FILE), "key generation failed".into()))?;
                if let Some(path) = target {
                    let pem = pem_wrap(doc.as_ref());
                    if let Some(parent) = path.parent() {
                        crate::private_files::ensure_dir(parent).map_err(|e| err(parent, e.to_string()))?;
                    }
                    crate::kubeconfig::write_content(&path, &pem).map_err(|e| err(&path, e.to_string()))?;
                }
                doc.as_ref().to_vec()
            }
        };
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|e| err(Path::new(KEY_FILE), format!("not a P-256 PKCS#8 key: {e}")))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        Ok(TokenKeys { key, key_id: URL_SAFE_NO_PAD.encode(digest.as_ref()) })
    }

    pub(super) fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": self.key_id});
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = self.key.sign(&SystemRandom::new(), signing_input.as_bytes()).expect("ECDSA signing with a valid key");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// The claims of a token this key signed, if the signature holds.
    pub(super) fn verified_claims(&self, token: &str) -> Option<Value> {
        let (signing_input, sig) = token.rsplit_once('.')?;
        let (header, claims) = signing_input.split_once('.')?;
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header["alg"] != "ES256" {
            return None;
        }
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref()).verify(signing_input.as_bytes(), &sig).ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
    }
}

fn pem_wrap(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))
}

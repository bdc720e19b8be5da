//! CertificateSigningRequests.

use serde_json::Value;

use super::{validate_with, Strategy};
use crate::registry::ResourceInfo;
use crate::status::Cause;
use crate::validation::certificates;

/// CertificateSigningRequests: the request, signer and usages checked (`validation::certificates`).
pub struct CertificateSigningRequests;

impl Strategy for CertificateSigningRequests {
    fn validate(&self, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validate_with(self, info, obj, |causes| certificates::validate_csr(obj, old, causes))
    }
}

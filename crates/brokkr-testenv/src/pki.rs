//! A throw-away certificate authority: serving certificate, client identities, service-account key.

use std::net::{IpAddr, Ipv4Addr};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};

use crate::{Error, Result};

/// A PEM certificate and its PEM private key.
pub(crate) struct Pair {
    pub(crate) cert: String,
    pub(crate) key: String,
}

/// The test CA. Everything it signs is valid for the whole run and for loopback only.
pub(crate) struct Pki {
    pub(crate) ca_cert: String,
    ca: Issuer<'static, KeyPair>,
}

impl Pki {
    pub(crate) fn new() -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(Error::Pki)?;
        params.distinguished_name.push(DnType::CommonName, "brokkr-testenv-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(Error::Pki)?;
        let ca_cert = params.self_signed(&key).map_err(Error::Pki)?.pem();
        Ok(Self { ca_cert, ca: Issuer::new(params, key) })
    }

    fn sign(&self, params: &CertificateParams) -> Result<Pair> {
        let key = KeyPair::generate().map_err(Error::Pki)?;
        let cert = params.signed_by(&key, &self.ca).map_err(Error::Pki)?.pem();
        Ok(Pair { cert, key: key.serialize_pem() })
    }

    /// The API server's certificate for `localhost` and `127.0.0.1`.
    pub(crate) fn serving(&self) -> Result<Pair> {
        self.serving_for(&[])
    }

    /// The API server's certificate for `localhost`, `127.0.0.1` and `more`.
    pub(crate) fn serving_for(&self, more: &[Ipv4Addr]) -> Result<Pair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(Error::Pki)?;
        params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        params.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into().map_err(Error::Pki)?),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ];
        params.subject_alt_names.extend(more.iter().map(|ip| SanType::IpAddress(IpAddr::V4(*ip))));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        self.sign(&params)
    }

    /// A client certificate: the API server sees user `user` in group `group` (if any).
    pub(crate) fn client(&self, user: &str, group: Option<&str>) -> Result<Pair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(Error::Pki)?;
        params.distinguished_name.push(DnType::CommonName, user);
        if let Some(group) = group {
            params.distinguished_name.push(DnType::OrganizationName, group);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.sign(&params)
    }
}

/// A key to sign service-account tokens (private) and to verify them (public).
pub(crate) fn service_account_key() -> Result<Pair> {
    let key = KeyPair::generate().map_err(Error::Pki)?;
    Ok(Pair { cert: key.public_key_pem(), key: key.serialize_pem() })
}

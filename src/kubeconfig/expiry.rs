//! When credentials stop working: a client certificate's NotAfter and a JWT's `exp`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::jiff::Timestamp;

use super::parse::decode_base64;

/// NotAfter of the first certificate in `client-certificate-data` (base64 of PEM, or of DER).
/// `None` when it is not a certificate.
pub fn certificate_not_after(client_certificate_data: &str) -> Option<Timestamp> {
    let bytes = decode_base64(client_certificate_data)?;
    let seconds = match x509_parser::pem::parse_x509_pem(&bytes) {
        Ok((_, pem)) => pem.parse_x509().ok()?.validity().not_after.timestamp(),
        Err(_) => {
            let (_, cert) = x509_parser::parse_x509_certificate(&bytes).ok()?;
            cert.validity().not_after.timestamp()
        }
    };
    Timestamp::from_second(seconds).ok()
}

/// The `exp` claim of a bearer token that is a JWT (`header.payload.signature`), unverified:
/// it only schedules a refresh. `None` for opaque tokens.
pub fn jwt_expiry(token: &str) -> Option<Timestamp> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let json = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let exp = claims.get("exp")?;
    let seconds = exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))?;
    Timestamp::from_second(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubeconfig::testdata::{client_cert, jwt};

    #[test]
    fn certificate_expiry() {
        let (pem, _key) = client_cert(2031, 1, 2);
        let pem_b64 = base64::engine::general_purpose::STANDARD.encode(&pem);
        let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents;
        let der_b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let wrapped: String = pem_b64
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let want: Timestamp = "2031-01-02T00:00:00Z".parse().unwrap();
        let cases: [(&str, &str, Option<Timestamp>); 5] = [
            ("pem", &pem_b64, Some(want)),
            ("pem wrapped over lines", &wrapped, Some(want)),
            ("der", &der_b64, Some(want)),
            ("not base64", "!!!", None),
            ("base64 of garbage", "aGVsbG8=", None),
        ];
        for (name, input, want) in cases {
            assert_eq!(certificate_not_after(input), want, "{name}");
        }
    }

    #[test]
    fn token_expiry() {
        let want = Timestamp::from_second(1_900_000_000).unwrap();
        let cases: [(&str, String, Option<Timestamp>); 6] = [
            ("jwt", jwt(r#"{"exp":1900000000,"aud":"x"}"#), Some(want)),
            (
                "jwt with float exp",
                jwt(r#"{"exp":1900000000.0}"#),
                Some(want),
            ),
            ("jwt without exp", jwt(r#"{"aud":"x"}"#), None),
            ("opaque token", "0123456789abcdef".into(), None),
            ("static token with dots", "a.b.c.d".into(), None),
            (
                "payload not json",
                "eyJhbGciOiJub25lIn0.bm90anNvbg.sig".into(),
                None,
            ),
        ];
        for (name, token, want) in cases {
            assert_eq!(jwt_expiry(&token), want, "{name}");
        }
    }
}

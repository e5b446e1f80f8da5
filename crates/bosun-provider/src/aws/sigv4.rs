//! AWS Signature Version 4, the header form (`Authorization: AWS4-HMAC-SHA256 ...`).
//!
//! Written here rather than taken from the AWS SDK, which would bring hundreds of crates
//! for three EC2 calls. The algorithm is AWS's published one; the tests check it against
//! vectors from AWS's SigV4 test suite and the IAM example of its documentation.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::http::{Secret, hex};

/// The `x-amz-date` format.
pub(crate) const AMZ_DATE: &str = "%Y%m%dT%H%M%SZ";

/// An access key pair, with the session token of temporary credentials.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: Secret,
    pub(crate) session_token: Option<Secret>,
}

/// What is signed of a request.
#[derive(Debug)]
pub(crate) struct Signable<'a> {
    pub(crate) method: &'a str,
    /// The path, already URI-encoded (`/` for EC2).
    pub(crate) path: &'a str,
    /// Query parameters, not encoded.
    pub(crate) query: &'a [(&'a str, &'a str)],
    /// Every header to sign; `host` and `x-amz-date` must be among them.
    pub(crate) headers: &'a [(&'a str, &'a str)],
    pub(crate) payload: &'a [u8],
}

/// The `Authorization` header value for `request` at `time`.
pub(crate) fn authorization(
    credentials: &Credentials,
    region: &str,
    service: &str,
    request: &Signable<'_>,
    time: DateTime<Utc>,
) -> String {
    let (canonical, signed_headers) = canonical_request(request);
    let amz_date = time.format(AMZ_DATE).to_string();
    let date = time.format("%Y%m%d").to_string();
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
    let key = signing_key(credentials.secret_access_key.expose(), &date, region, service);
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    )
}

/// The canonical request and the signed-headers list.
fn canonical_request(request: &Signable<'_>) -> (String, String) {
    let mut query: Vec<(String, String)> = request.query.iter().map(|(k, v)| (uri_encode(k), uri_encode(v))).collect();
    query.sort();
    let query: Vec<String> = query.into_iter().map(|(k, v)| format!("{k}={v}")).collect();

    // Header names lowercased and sorted; values trimmed with inner runs of spaces
    // collapsed; repeated headers joined with commas.
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut canonical_headers = String::new();
    let mut names: Vec<&str> = Vec::new();
    for (name, value) in &headers {
        if names.last() == Some(&name.as_str()) {
            canonical_headers.pop();
            canonical_headers.push(',');
        } else {
            names.push(name);
            canonical_headers.push_str(name);
            canonical_headers.push(':');
        }
        canonical_headers.push_str(value);
        canonical_headers.push('\n');
    }
    let signed_headers = names.join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        request.method,
        request.path,
        query.join("&"),
        hex(&Sha256::digest(request.payload))
    );
    (canonical, signed_headers)
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// AWS's URI encoding: everything but `A-Z a-z 0-9 - _ . ~` as `%XX`, uppercase.
fn uri_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn example() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: None,
        }
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2015, 8, 30, 12, 36, 0).unwrap()
    }

    fn signature(header: &str) -> &str {
        header.rsplit("Signature=").next().unwrap()
    }

    const HOST: (&str, &str) = ("Host", "example.amazonaws.com");
    const DATE: (&str, &str) = ("X-Amz-Date", "20150830T123600Z");

    /// `get-vanilla` of AWS's SigV4 test suite, checked header and all.
    #[test]
    fn signs_get_vanilla() {
        let request = Signable { method: "GET", path: "/", query: &[], headers: &[HOST, DATE], payload: b"" };
        assert_eq!(
            authorization(&example(), "us-east-1", "service", &request, at()),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    /// `get-vanilla-query-order-key-case`: parameters are sorted before signing.
    #[test]
    fn sorts_the_query() {
        let query = [("Param2", "value2"), ("Param1", "value1")];
        let request = Signable { method: "GET", path: "/", query: &query, headers: &[HOST, DATE], payload: b"" };
        let header = authorization(&example(), "us-east-1", "service", &request, at());
        assert_eq!(signature(&header), "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
    }

    /// `post-vanilla`.
    #[test]
    fn signs_post_vanilla() {
        let request = Signable { method: "POST", path: "/", query: &[], headers: &[HOST, DATE], payload: b"" };
        let header = authorization(&example(), "us-east-1", "service", &request, at());
        assert_eq!(signature(&header), "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
    }

    /// `post-x-www-form-urlencoded`: the shape of every EC2 call (form body, content type signed).
    #[test]
    fn signs_a_form_body() {
        let headers = [("Content-Type", "application/x-www-form-urlencoded"), HOST, DATE];
        let request = Signable { method: "POST", path: "/", query: &[], headers: &headers, payload: b"Param1=value1" };
        let header = authorization(&example(), "us-east-1", "service", &request, at());
        assert!(header.contains("SignedHeaders=content-type;host;x-amz-date,"), "{header}");
        assert_eq!(signature(&header), "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
    }

    /// The IAM `ListUsers` example of AWS's SigV4 documentation, derived key included.
    #[test]
    fn signs_the_documented_iam_example() {
        assert_eq!(
            hex(&signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "iam")),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let headers =
            [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("Host", "iam.amazonaws.com"), DATE];
        let query = [("Action", "ListUsers"), ("Version", "2010-05-08")];
        let request = Signable { method: "GET", path: "/", query: &query, headers: &headers, payload: b"" };
        let header = authorization(&example(), "us-east-1", "iam", &request, at());
        assert_eq!(signature(&header), "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
    }

    #[test]
    fn canonical_headers_trim_and_join_repeats() {
        let headers = [("X-B", " two   words "), ("x-a", "1"), ("x-b", "3"), HOST];
        let request = Signable { method: "GET", path: "/", query: &[], headers: &headers, payload: b"" };
        let (canonical, signed) = canonical_request(&request);
        assert_eq!(signed, "host;x-a;x-b");
        assert!(canonical.contains("x-a:1\nx-b:two words,3\n"), "{canonical}");
        assert_eq!(uri_encode("a b/c~*"), "a%20b%2Fc~%2A");
    }
}

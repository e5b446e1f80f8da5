use std::collections::BTreeMap;

use bosun_core::FakeClock;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::{Value, json};

use super::*;
use crate::mock::{MockApi, Reply, closed_address};

/// A throwaway 2048-bit key made for these tests (`openssl genpkey -algorithm RSA`).
const TEST_KEY: &str = include_str!("../testdata/test-service-account-key.pem");
const TOKEN_ROUTE: &str = "POST /token";
const METADATA_ROUTE: &str = "GET /computeMetadata/v1/instance/service-accounts/default/token";

struct Env {
    dir: tempfile::TempDir,
    vars: BTreeMap<String, String>,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let vars = BTreeMap::from([("HOME".to_owned(), dir.path().display().to_string())]);
        Self { dir, vars }
    }

    fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Writes `json` to `relative` (under the home directory) and returns its path.
    fn write(&self, relative: &str, json: &Value) -> String {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, json.to_string()).expect("write");
        path.display().to_string()
    }

    fn resolve_at(&self, clock: Arc<FakeClock>) -> Result<GcpCredentials, ProviderError> {
        GcpCredentials::resolve_with_clock("gcp-main", &|name: &str| self.vars.get(name).cloned(), clock)
    }

    fn resolve(&self) -> Result<GcpCredentials, ProviderError> {
        self.resolve_at(Arc::new(FakeClock::at_default_epoch()))
    }
}

fn service_account(token_uri: &str) -> Value {
    json!({
        "type": "service_account",
        "project_id": "proj-1",
        "private_key_id": "key-id-1",
        "private_key": TEST_KEY,
        "client_email": "bosun@proj-1.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    })
}

fn token_reply(token: &str) -> Reply {
    Reply::json(200, json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))
}

fn decode(segment: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segment).expect("base64url")
}

#[test]
fn the_chain_takes_the_first_source_configured() {
    let env = Env::new();
    let sa = env.write("keys/sa.json", &service_account("https://oauth2.googleapis.com/token"));
    let user = json!({"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"});
    env.write(".config/gcloud/application_default_credentials.json", &user);

    let metadata = Env::new().resolve().expect("metadata");
    assert!(metadata.describe().starts_with("the machine's service account, from the GCE metadata server"));
    let described = |env: &Env| env.resolve().expect("credentials").describe();
    assert!(described(&env).starts_with("the user credentials of gcloud application-default login"));
    let env = env.var(APPLICATION_CREDENTIALS_ENV, &sa);
    assert_eq!(described(&env), format!("service account bosun@proj-1.iam.gserviceaccount.com (key file {sa})"));
    let env = env.var(TOKEN_FILE_ENV, "/run/token");
    assert_eq!(described(&env), "the access token file /run/token (GOOGLE_OAUTH_ACCESS_TOKEN_FILE)");
    let env = env.var(TOKEN_ENV, "ya29.static");
    assert!(described(&env).starts_with("the access token in GOOGLE_OAUTH_ACCESS_TOKEN"));
}

#[tokio::test]
async fn a_service_account_signs_an_assertion_and_caches_the_token() {
    let mock = MockApi::start().await;
    mock.on(TOKEN_ROUTE, token_reply("ya29.first"));
    mock.on(TOKEN_ROUTE, token_reply("ya29.second"));
    let token_uri = format!("{}/token", mock.url);
    let env = Env::new();
    let path = env.write("sa.json", &service_account(&token_uri));
    let env = env.var(APPLICATION_CREDENTIALS_ENV, &path);
    let clock = Arc::new(FakeClock::at_default_epoch());
    let credentials = env.resolve_at(Arc::clone(&clock)).expect("service account");

    assert_eq!(credentials.token().await.expect("token").expose(), "ya29.first");
    let sent = &mock.requests_to(TOKEN_ROUTE)[0];
    assert_eq!(sent.header("content-type"), Some("application/x-www-form-urlencoded"));
    let form = sent.form();
    assert_eq!(form["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
    let assertion: Vec<&str> = form["assertion"].split('.').collect();
    assert_eq!(assertion.len(), 3, "a JWT");
    let header: Value = serde_json::from_slice(&decode(assertion[0])).expect("header");
    assert_eq!(header, json!({"alg": "RS256", "typ": "JWT", "kid": "key-id-1"}));
    let claims: Value = serde_json::from_slice(&decode(assertion[1])).expect("claims");
    let issued = clock.now().as_datetime().timestamp();
    assert_eq!(
        claims,
        json!({"iss": "bosun@proj-1.iam.gserviceaccount.com", "scope": "https://www.googleapis.com/auth/compute",
               "aud": token_uri, "iat": issued, "exp": issued + 3600})
    );
    // The signature verifies with the key's public half, as Google checks it.
    let der = PrivatePkcs8KeyDer::from_pem_slice(TEST_KEY.as_bytes()).expect("pem");
    let public = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).expect("key").public().as_ref().to_vec();
    let signed = format!("{}.{}", assertion[0], assertion[1]);
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
        .verify(signed.as_bytes(), &decode(assertion[2]))
        .expect("a valid RS256 signature");

    clock.advance(Duration::from_secs(50 * 60));
    assert_eq!(credentials.token().await.expect("cached").expose(), "ya29.first");
    assert_eq!(mock.requests_to(TOKEN_ROUTE).len(), 1);
    clock.advance(Duration::from_secs(5 * 60));
    assert_eq!(credentials.token().await.expect("refreshed").expose(), "ya29.second");
    assert_eq!(mock.requests_to(TOKEN_ROUTE).len(), 2, "fetched again five minutes before expiry");
}

#[tokio::test]
async fn gcloud_user_credentials_trade_their_refresh_token() {
    let mock = MockApi::start().await;
    mock.on(TOKEN_ROUTE, token_reply("ya29.user"));
    let env = Env::new();
    env.write(
        "gcloud/application_default_credentials.json",
        &json!({"type": "authorized_user", "client_id": "client-1", "client_secret": "client-secret-1",
                "refresh_token": "refresh-1", "token_uri": format!("{}/token", mock.url)}),
    );
    let config_dir = env.dir.path().join("gcloud").display().to_string();
    let env = env.var("CLOUDSDK_CONFIG", &config_dir);
    let credentials = env.resolve().expect("user credentials");
    assert_eq!(credentials.token().await.expect("token").expose(), "ya29.user");
    let form = mock.requests_to(TOKEN_ROUTE)[0].form();
    assert_eq!(
        form.into_iter().collect::<Vec<_>>(),
        [
            ("client_id".to_owned(), "client-1".to_owned()),
            ("client_secret".to_owned(), "client-secret-1".to_owned()),
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("refresh_token".to_owned(), "refresh-1".to_owned()),
        ]
    );
    assert!(!format!("{credentials:?}").contains("client-secret-1"));
}

#[tokio::test]
async fn on_gce_the_metadata_server_gives_the_machines_token() {
    let mock = MockApi::start().await;
    mock.on(METADATA_ROUTE, token_reply("ya29.machine"));
    let host = mock.url.trim_start_matches("http://").to_owned();
    let env = Env::new().var("GCE_METADATA_HOST", &host);
    let credentials = env.resolve().expect("metadata");
    assert_eq!(credentials.token().await.expect("token").expose(), "ya29.machine");
    assert_eq!(mock.requests_to(METADATA_ROUTE)[0].header("metadata-flavor"), Some("Google"));

    let closed = closed_address().await;
    let env = Env::new().var("GCE_METADATA_HOST", closed.trim_start_matches("http://"));
    let error = env.resolve().expect("metadata").token().await.unwrap_err();
    assert!(matches!(error, ProviderError::Unavailable { .. }), "{error}");
    assert!(error.to_string().contains("is this a Google Cloud VM?"), "{error}");
}

#[tokio::test]
async fn refused_grants_are_unauthorized_and_name_the_reason() {
    let mock = MockApi::start().await;
    mock.on(
        TOKEN_ROUTE,
        Reply::json(400, json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})),
    );
    let env = Env::new();
    let path = env.write("sa.json", &service_account(&format!("{}/token", mock.url)));
    let error = env.var(APPLICATION_CREDENTIALS_ENV, &path).resolve().expect("sa").token().await.unwrap_err();
    assert!(matches!(error, ProviderError::Unauthorized { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("Invalid JWT Signature. (invalid_grant)"), "{message}");
    assert!(message.contains("service account bosun@proj-1.iam.gserviceaccount.com"), "{message}");
}

#[test]
fn unusable_credential_files_are_refused_naming_the_file_not_the_secret() {
    let env = Env::new();
    let cases = [
        (json!({"type": "service_account", "client_email": "a@b", "private_key_id": "k"}), "private_key is missing"),
        (
            json!({"type": "service_account", "client_email": "a@b", "private_key_id": "k",
                   "private_key": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n"}),
            "private_key is not a usable RSA key",
        ),
        (
            json!({"type": "service_account", "client_email": "a@b", "private_key_id": "k", "private_key": "secret-junk"}),
            "private_key is not a PEM-encoded PKCS#8 key",
        ),
        (json!({"type": "external_account"}), "credentials of type external_account are not supported"),
        (json!({"client_email": "a@b"}), "it has no type"),
        (json!({"type": "authorized_user", "client_id": "c", "refresh_token": "r"}), "client_secret is missing"),
    ];
    for (file, message) in cases {
        let path = env.write("bad.json", &file);
        let error = Env { dir: tempfile::tempdir().expect("dir"), vars: env.vars.clone() }
            .var(APPLICATION_CREDENTIALS_ENV, &path)
            .resolve()
            .unwrap_err();
        assert!(matches!(error, ProviderError::Unauthorized { .. }), "{error}");
        let text = error.to_string();
        assert!(text.contains(&path) && text.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{text}");
        assert!(text.contains(message), "{message}: {text}");
        assert!(!text.contains("c2VjcmV0") && !text.contains("secret-junk"), "{text}");
    }
    std::fs::write(env.dir.path().join("bad.json"), "{\"type\": \"service_account\", \"private_key\": \"sec")
        .expect("write");
    let bad = env.dir.path().join("bad.json").display().to_string();
    let text = env.var(APPLICATION_CREDENTIALS_ENV, &bad).resolve().unwrap_err().to_string();
    assert!(text.contains("not a credentials JSON file"), "{text}");
    let missing = Env::new().var(APPLICATION_CREDENTIALS_ENV, "/nonexistent/sa.json").resolve().unwrap_err();
    assert!(missing.to_string().contains("/nonexistent/sa.json (GOOGLE_APPLICATION_CREDENTIALS): cannot read it"));
}

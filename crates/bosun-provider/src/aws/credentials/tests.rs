use std::collections::BTreeMap;

use bosun_core::FakeClock;
use serde_json::json;

use super::*;
use crate::mock::{MockApi, Reply, closed_address};

const TOKEN: &str = "PUT /latest/api/token";
const ROLES: &str = "GET /latest/meta-data/iam/security-credentials/";
const ROLE: &str = "GET /latest/meta-data/iam/security-credentials/bosun-node";

/// A home directory with optional `~/.aws/credentials` and `~/.aws/config`, and an
/// environment over it.
struct Home {
    dir: tempfile::TempDir,
    vars: BTreeMap<String, String>,
}

impl Home {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let vars = BTreeMap::from([("HOME".to_owned(), dir.path().display().to_string())]);
        Self { dir, vars }
    }

    fn file(self, name: &str, text: &str) -> Self {
        let aws = self.dir.path().join(".aws");
        std::fs::create_dir_all(&aws).expect("mkdir");
        std::fs::write(aws.join(name), text).expect("write");
        self
    }

    fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    fn env(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |name: &str| self.vars.get(name).cloned()
    }

    fn resolve(&self) -> Result<Resolved, ProviderError> {
        AwsCredentials::resolve("aws-main", &self.env())
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(".aws").join(name).display().to_string()
    }
}

fn static_keys(resolved: &Resolved) -> (String, String, Option<String>) {
    let Source::Static { credentials, .. } = &resolved.credentials.source else { panic!("static keys expected") };
    (
        credentials.access_key_id.clone(),
        credentials.secret_access_key.expose().to_owned(),
        credentials.session_token.as_ref().map(|t| t.expose().to_owned()),
    )
}

fn unauthorized(result: Result<Resolved, ProviderError>) -> String {
    match result {
        Err(error @ ProviderError::Unauthorized { .. }) => error.to_string(),
        other => panic!("expected refused credentials, got {other:?}"),
    }
}

const PROFILES: &str = "\
# bosun's test profiles
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = secret/default+key

[dev]
aws_access_key_id=AKIDDEV
aws_secret_access_key=secret-dev
aws_session_token = token-dev
";

#[test]
fn the_environment_comes_first() {
    let home = Home::new()
        .file("credentials", PROFILES)
        .var(ACCESS_KEY_ENV, "AKIDENV")
        .var(SECRET_KEY_ENV, "secret-env")
        .var(SESSION_TOKEN_ENV, "token-env");
    let resolved = home.resolve().expect("credentials");
    assert_eq!(static_keys(&resolved), ("AKIDENV".into(), "secret-env".into(), Some("token-env".into())));
    assert_eq!(resolved.credentials.describe(), "the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)");

    let half = Home::new().var(ACCESS_KEY_ENV, "AKIDENV");
    assert!(unauthorized(half.resolve()).contains("only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"));
}

#[test]
fn the_default_profile_of_the_credentials_file_is_read_literally() {
    let home = Home::new().file("credentials", PROFILES).file("config", "[default]\nregion = eu-central-1\n");
    let resolved = home.resolve().expect("credentials");
    assert_eq!(static_keys(&resolved), ("AKIDDEFAULT".into(), "secret/default+key".into(), None));
    assert_eq!(resolved.profile_region.as_deref(), Some("eu-central-1"));
    let described = resolved.credentials.describe();
    assert_eq!(described, format!("profile default in {} and {}", home.path("credentials"), home.path("config")));
    assert!(!format!("{:?}", resolved.credentials).contains("secret/default+key"));
}

#[test]
fn aws_profile_selects_a_profile_in_either_file() {
    let home = Home::new().file("credentials", PROFILES).var(PROFILE_ENV, "dev");
    assert_eq!(
        static_keys(&home.resolve().expect("dev")),
        ("AKIDDEV".into(), "secret-dev".into(), Some("token-dev".into()))
    );

    // In the config file a profile is `[profile NAME]`, and nested settings stay nested.
    let config = "[profile  ci]\nregion = us-west-2\ns3 =\n  aws_access_key_id = NOT-A-KEY\naws_access_key_id = AKIDCI\n\
                  aws_secret_access_key = secret-ci\n";
    let home = Home::new().file("config", config).var(PROFILE_ENV, "ci");
    let resolved = home.resolve().expect("ci");
    assert_eq!(static_keys(&resolved), ("AKIDCI".into(), "secret-ci".into(), None));
    assert_eq!(resolved.profile_region.as_deref(), Some("us-west-2"));

    // The file locations can be moved.
    let elsewhere = Home::new().file("moved", PROFILES);
    let moved = elsewhere.path("moved");
    let home = elsewhere.var("AWS_SHARED_CREDENTIALS_FILE", &moved);
    assert_eq!(static_keys(&home.resolve().expect("moved")).0, "AKIDDEFAULT");
}

#[test]
fn a_profile_bosun_cannot_use_is_refused_by_name() {
    let home = Home::new().var(PROFILE_ENV, "prod");
    let message = unauthorized(home.resolve());
    assert!(message.contains("profile prod (AWS_PROFILE) is in neither"), "{message}");

    let home = Home::new()
        .file("config", "[profile prod]\nrole_arn = arn:aws:iam::123456789012:role/bosun\nsource_profile = default\n")
        .var(PROFILE_ENV, "prod");
    let message = unauthorized(home.resolve());
    assert!(message.contains("gets its credentials through role_arn, which bosun does not read"), "{message}");

    let home = Home::new().file("config", "[profile prod]\nregion = us-east-1\n").var(PROFILE_ENV, "prod");
    assert!(unauthorized(home.resolve()).contains("has no aws_access_key_id and aws_secret_access_key"));

    let home = Home::new().file("credentials", "[default]\naws_access_key_id = AKID\n");
    assert!(unauthorized(home.resolve()).contains("has only one of aws_access_key_id and aws_secret_access_key"));

    let home = Home::new().file("credentials", "[default\naws_access_key_id = AKID\n");
    let message = unauthorized(home.resolve());
    assert!(message.contains("is not a valid AWS profile file (near line"), "{message}");
}

#[test]
fn without_keys_the_instance_role_is_used_unless_disabled() {
    // A default profile that only sets the region is common on EC2.
    let home = Home::new().file("config", "[default]\nregion = us-east-2\n");
    let resolved = home.resolve().expect("instance role");
    assert!(matches!(resolved.credentials.source, Source::InstanceRole(_)));
    assert_eq!(resolved.profile_region.as_deref(), Some("us-east-2"));
    assert!(resolved.credentials.describe().contains("IMDSv2) at http://169.254.169.254/"));

    let home = Home::new().var("AWS_EC2_METADATA_DISABLED", "true");
    let message = unauthorized(home.resolve());
    assert!(message.contains("no AWS credentials") && message.contains("AWS_EC2_METADATA_DISABLED"), "{message}");
}

fn role_credentials(secret: &str, expiration: &str) -> Reply {
    Reply::json(
        200,
        json!({"Code": "Success", "LastUpdated": "2026-01-01T00:00:00Z", "Type": "AWS-HMAC",
               "AccessKeyId": "ASIAROLE", "SecretAccessKey": secret, "Token": "role-session-token",
               "Expiration": expiration}),
    )
}

fn imds(url: &str, clock: Arc<FakeClock>) -> AwsCredentials {
    let home = Home::new().var("AWS_EC2_METADATA_SERVICE_ENDPOINT", url);
    AwsCredentials::resolve_with_clock("aws-main", &home.env(), clock).expect("instance role").credentials
}

#[tokio::test]
async fn role_credentials_come_from_imdsv2_and_are_refreshed_before_they_expire() {
    let mock = MockApi::start().await;
    mock.on(TOKEN, Reply::text(200, "imds-session-token"));
    mock.on(ROLES, Reply::text(200, "bosun-node\n"));
    // The default epoch is 2026-01-01T00:00Z: the first credentials expire an hour later.
    mock.on(ROLE, role_credentials("role-secret-1", "2026-01-01T01:00:00Z"));
    mock.on(ROLE, role_credentials("role-secret-2", "2026-01-01T02:00:00Z"));
    let clock = Arc::new(FakeClock::at_default_epoch());
    let credentials = imds(&mock.url, Arc::clone(&clock));

    let first = credentials.current().await.expect("credentials");
    assert_eq!(first.access_key_id, "ASIAROLE");
    assert_eq!(first.secret_access_key.expose(), "role-secret-1");
    assert_eq!(first.session_token.as_ref().map(Secret::expose), Some("role-session-token"));
    let put = &mock.requests_to(TOKEN)[0];
    assert_eq!(put.header("x-aws-ec2-metadata-token-ttl-seconds"), Some("300"));
    for get in mock.requests_to(ROLES).iter().chain(&mock.requests_to(ROLE)) {
        assert_eq!(get.header("x-aws-ec2-metadata-token"), Some("imds-session-token"), "IMDSv2 only");
    }

    clock.advance(Duration::from_secs(50 * 60));
    assert_eq!(credentials.current().await.expect("cached").secret_access_key.expose(), "role-secret-1");
    assert_eq!(mock.requests_to(ROLE).len(), 1, "still valid for 10 minutes: no call");
    clock.advance(Duration::from_secs(6 * 60));
    assert_eq!(credentials.current().await.expect("fresh").secret_access_key.expose(), "role-secret-2");
    assert_eq!(mock.requests_to(ROLE).len(), 2, "refreshed five minutes before expiry");
}

#[tokio::test]
async fn imds_failures_say_what_is_wrong() {
    let mock = MockApi::start().await;
    mock.on(TOKEN, Reply::text(200, "t"));
    mock.on(ROLES, Reply::text(404, "Not Found"));
    let clock = Arc::new(FakeClock::at_default_epoch());
    let error = imds(&mock.url, Arc::clone(&clock)).current().await.unwrap_err();
    assert!(matches!(error, ProviderError::Unauthorized { .. }), "{error}");
    assert!(error.to_string().contains("list the instance role: HTTP 404"), "{error}");

    let mock = MockApi::start().await;
    mock.on(TOKEN, Reply::text(200, "t"));
    mock.on(ROLES, Reply::text(200, ""));
    let error = imds(&mock.url, Arc::clone(&clock)).current().await.unwrap_err();
    assert!(error.to_string().contains("no IAM instance profile attached"), "{error}");

    let mock = MockApi::start().await;
    mock.on(TOKEN, Reply::text(200, "t"));
    mock.on(ROLES, Reply::text(200, "bosun-node"));
    mock.on(ROLE, Reply::json(200, json!({"Code": "Success", "AccessKeyId": "A"})));
    let error = imds(&mock.url, Arc::clone(&clock)).current().await.unwrap_err();
    assert!(matches!(error, ProviderError::Unavailable { .. }), "{error}");
    assert!(error.to_string().contains("not the JSON expected"), "{error}");

    let error = imds(&closed_address().await, clock).current().await.unwrap_err();
    assert!(matches!(error, ProviderError::Unavailable { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("cannot connect") && message.contains("is this an EC2 machine?"), "{message}");
    assert_eq!(message.matches("aws-main").count(), 1, "{message}");
}

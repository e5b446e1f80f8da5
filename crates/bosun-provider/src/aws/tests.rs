use std::collections::BTreeMap;

use chrono::{NaiveDateTime, TimeZone};

use super::sigv4::Credentials;
use super::*;
use crate::http::Secret;
use crate::mock::{MockApi, Recorded, Reply, aws_config, closed_address, provision_request};

const RUN: &str = "POST / RunInstances";
const TERMINATE: &str = "POST / TerminateInstances";
const DESCRIBE: &str = "POST / DescribeInstances";

fn env_with(extra: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    let mut vars: BTreeMap<&str, &str> =
        [(ACCESS_KEY_ENV, "AKIDEXAMPLE"), (SECRET_KEY_ENV, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")].into();
    vars.extend(extra.iter().copied());
    move |var: &str| vars.get(var).map(|v| (*v).to_owned())
}

fn provider_with(url: &str, extra: &[(&'static str, &'static str)]) -> AwsProvider {
    let config = aws_config("{type: aws, region: us-east-1}");
    AwsProvider::from_config("aws-main", &config, env_with(extra)).unwrap().with_base_url(url).unwrap()
}

fn provider(url: &str) -> AwsProvider {
    provider_with(url, &[])
}

fn kind(err: &ProviderError) -> &'static str {
    match err {
        ProviderError::Capacity { .. } => "capacity",
        ProviderError::Unauthorized { .. } => "unauthorized",
        ProviderError::Invalid { .. } => "invalid",
        ProviderError::Unavailable { .. } => "unavailable",
        ProviderError::NotFound { .. } => "not found",
    }
}

fn ec2_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::xml(
        status,
        &format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
             <Message>{message}</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>"
        ),
    )
}

fn instance_xml(id: &str, state: &str, zone: &str, tags: &[(&str, &str)]) -> String {
    let tags: String = tags.iter().map(|(k, v)| format!("<item><key>{k}</key><value>{v}</value></item>")).collect();
    format!(
        "<item><instanceId>{id}</instanceId><imageId>ami-0abcdef1234567890</imageId>\
         <instanceState><code>16</code><name>{state}</name></instanceState>\
         <instanceType>p5.48xlarge</instanceType>\
         <placement><availabilityZone>{zone}</availabilityZone><groupName/><tenancy>default</tenancy></placement>\
         <groupSet><item><groupId>sg-1</groupId><groupName>default</groupName></item></groupSet>\
         <tagSet>{tags}</tagSet></item>"
    )
}

fn run_reply(id: &str, zone: &str) -> Reply {
    Reply::xml(
        200,
        &format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <RunInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
             <requestId>req-1</requestId><reservationId>r-1</reservationId><ownerId>123456789012</ownerId>\
             <groupSet/><instancesSet>{}</instancesSet></RunInstancesResponse>",
            instance_xml(id, "pending", zone, &[])
        ),
    )
}

fn describe_reply(reservations: &[&[String]], next_token: Option<&str>) -> Reply {
    let reservations: String = reservations
        .iter()
        .map(|instances| {
            format!(
                "<item><reservationId>r-1</reservationId><ownerId>123456789012</ownerId><groupSet/>\
                 <instancesSet>{}</instancesSet></item>",
                instances.concat()
            )
        })
        .collect();
    let token = next_token.map(|t| format!("<nextToken>{t}</nextToken>")).unwrap_or_default();
    Reply::xml(
        200,
        &format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
             <requestId>req-2</requestId><reservationSet>{reservations}</reservationSet>{token}\
             </DescribeInstancesResponse>"
        ),
    )
}

/// Signs the recorded request again, as EC2 would to check it, with the credentials the
/// provider was given, and compares with what it sent.
fn assert_signed(recorded: &Recorded, session_token: Option<&str>) {
    let authorization = recorded.header("authorization").expect("an Authorization header");
    let amz_date = recorded.header("x-amz-date").expect("an x-amz-date header");
    let time = Utc.from_utc_datetime(&NaiveDateTime::parse_from_str(amz_date, sigv4::AMZ_DATE).unwrap());
    let mut headers = vec![
        ("content-type", recorded.header("content-type").unwrap()),
        ("host", recorded.header("host").unwrap()),
        ("x-amz-date", amz_date),
    ];
    if let Some(token) = session_token {
        assert_eq!(recorded.header("x-amz-security-token"), Some(token));
        headers.push(("x-amz-security-token", token));
    }
    let credentials = Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token: session_token.map(Secret::new),
    };
    let signable = Signable { method: "POST", path: "/", query: &[], headers: &headers, payload: &recorded.body };
    assert_eq!(authorization, sigv4::authorization(&credentials, "us-east-1", "ec2", &signable, time));
    assert!(authorization.contains("/us-east-1/ec2/aws4_request"), "{authorization}");
}

#[tokio::test]
async fn provision_runs_one_tagged_instance_with_a_valid_signature() {
    let mock = MockApi::start().await;
    mock.on(RUN, run_reply("i-0123456789abcdef0", "us-east-1b"));
    let aws = provider(&mock.url);

    let provisioned = aws.provision(&provision_request("inst-1", "p5.48xlarge", "us-east-1", "")).await.unwrap();
    assert_eq!(
        provisioned,
        Provisioned {
            provider_instance_id: "i-0123456789abcdef0".into(),
            region: "us-east-1".into(),
            zone: "us-east-1b".into()
        }
    );

    let sent = &mock.requests_to(RUN)[0];
    assert_signed(sent, None);
    assert_eq!(sent.header("content-type"), Some(CONTENT_TYPE));
    assert!(sent.header("x-amz-security-token").is_none());
    let form = sent.form();
    let field = |k: &str| form.get(k).map(String::as_str);
    assert_eq!(field("Version"), Some(API_VERSION));
    assert_eq!(field("ImageId"), Some(bosun_config::DEFAULT_AWS_IMAGE));
    assert_eq!(field("InstanceType"), Some("p5.48xlarge"));
    assert_eq!((field("MinCount"), field("MaxCount")), (Some("1"), Some("1")));
    assert_eq!(field("ClientToken"), Some("inst-1"));
    assert_eq!(field("InstanceInitiatedShutdownBehavior"), Some("terminate"));
    assert_eq!(field("MetadataOptions.HttpTokens"), Some("required"));
    assert_eq!(field("Placement.AvailabilityZone"), None, "EC2 picks the zone");
    for spec in ["TagSpecification.1", "TagSpecification.2"] {
        let tags: BTreeMap<&str, &str> = (1..=5)
            .filter_map(|i| Some((field(&format!("{spec}.Tag.{i}.Key"))?, field(&format!("{spec}.Tag.{i}.Value"))?)))
            .collect();
        assert_eq!(
            tags,
            BTreeMap::from([
                ("bosun-instance-id", "inst-1"),
                ("Name", "bosun-inst-1"),
                ("bosun-pool", "training"),
                ("team", "ml")
            ]),
            "{spec}"
        );
    }
    assert_eq!(field("TagSpecification.1.ResourceType"), Some("instance"));
    assert_eq!(field("TagSpecification.2.ResourceType"), Some("volume"));
    let user_data = base64::engine::general_purpose::STANDARD.decode(field("UserData").unwrap()).unwrap();
    let user_data = String::from_utf8(user_data).unwrap();
    assert!(user_data.contains("BOSUN_TOKEN=\"agent-token-123\""), "{user_data}");
    assert!(user_data.contains("--provider \"aws\" --region \"us-east-1\""), "{user_data}");
}

#[tokio::test]
async fn session_tokens_are_sent_and_signed() {
    let mock = MockApi::start().await;
    mock.on(RUN, run_reply("i-1", "us-east-1a"));
    let aws = provider_with(&mock.url, &[(SESSION_TOKEN_ENV, "FwoGZXIvYXdzEXAMPLE")]);
    aws.provision(&provision_request("inst-1", "g5.xlarge", "", "us-east-1a")).await.unwrap();
    let sent = &mock.requests_to(RUN)[0];
    assert_signed(sent, Some("FwoGZXIvYXdzEXAMPLE"));
    assert_eq!(sent.form().get("Placement.AvailabilityZone").map(String::as_str), Some("us-east-1a"));
}

/// Every option of the configuration entry reaches RunInstances.
#[tokio::test]
async fn configured_options_reach_run_instances() {
    let mock = MockApi::start().await;
    mock.on(RUN, run_reply("i-1", "us-east-1a"));
    let config = aws_config(&format!(
        "{{type: aws, region: us-east-1, endpoint: '{}', image_id: ami-0abcdef1234567890, subnet_id: subnet-1, \
         security_group_ids: [sg-1, sg-2], key_name: ops, instance_profile: bosun-node, \
         tags: {{team: research, Name: gpu-box}}}}",
        mock.url
    ));
    let aws = AwsProvider::from_config("aws-main", &config, env_with(&[])).unwrap();
    aws.provision(&provision_request("inst-1", "g5.xlarge", "", "")).await.unwrap();
    let sent = &mock.requests_to(RUN)[0];
    assert_signed(sent, None);
    let form = sent.form();
    let field = |k: &str| form.get(k).map(String::as_str);
    assert_eq!(field("ImageId"), Some("ami-0abcdef1234567890"));
    assert_eq!(field("KeyName"), Some("ops"));
    assert_eq!(field("SubnetId"), Some("subnet-1"));
    assert_eq!((field("SecurityGroupId.1"), field("SecurityGroupId.2")), (Some("sg-1"), Some("sg-2")));
    assert_eq!(field("IamInstanceProfile.Name"), Some("bosun-node"));
    let tags: BTreeMap<&str, &str> = (1..=6)
        .filter_map(|i| {
            Some((
                field(&format!("TagSpecification.1.Tag.{i}.Key"))?,
                field(&format!("TagSpecification.1.Tag.{i}.Value"))?,
            ))
        })
        .collect();
    assert_eq!(
        tags,
        BTreeMap::from([
            ("bosun-instance-id", "inst-1"),
            ("Name", "gpu-box"),
            ("bosun-pool", "training"),
            ("team", "research"),
        ]),
        "configured tags rename the machine and win over labels"
    );
    for reserved in bosun_config::AWS_RESERVED_TAGS {
        assert!([TAG_INSTANCE_ID, TAG_POOL].contains(&reserved), "the configuration reserves bosun's own tags");
    }
}

/// A pool's image and key pair replace the provider's; an instance profile ARN is sent as one.
#[tokio::test]
async fn the_pool_image_and_key_pair_win() {
    let mock = MockApi::start().await;
    mock.on(RUN, run_reply("i-1", "us-east-1a"));
    let config = aws_config(
        "{type: aws, region: us-east-1, key_name: ops, \
         instance_profile: 'arn:aws:iam::123456789012:instance-profile/bosun'}",
    );
    let aws = AwsProvider::from_config("aws-main", &config, env_with(&[])).unwrap().with_base_url(&mock.url).unwrap();
    let mut request = provision_request("inst-1", "g5.xlarge", "", "");
    request.image = Some("resolve:ssm:/team/gpu-ami".into());
    request.ssh.keys = vec!["team-key".into()];
    aws.provision(&request).await.unwrap();
    let form = mock.requests_to(RUN)[0].form();
    let field = |k: &str| form.get(k).map(String::as_str);
    assert_eq!(field("ImageId"), Some("resolve:ssm:/team/gpu-ami"));
    assert_eq!(field("KeyName"), Some("team-key"));
    assert_eq!(field("IamInstanceProfile.Arn"), Some("arn:aws:iam::123456789012:instance-profile/bosun"));
    assert_eq!(field("IamInstanceProfile.Name"), None);
}

#[tokio::test]
async fn another_region_is_refused_without_a_call() {
    let mock = MockApi::start().await;
    let err =
        provider(&mock.url).provision(&provision_request("inst-1", "p5.48xlarge", "eu-west-1", "")).await.unwrap_err();
    assert_eq!(kind(&err), "invalid", "{err}");
    assert!(err.to_string().contains("eu-west-1"), "{err}");
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn ec2_errors_map_to_what_the_reconciler_does_next() {
    let cases = [
        (
            ec2_error(500, "InsufficientInstanceCapacity", "We currently do not have sufficient p5.48xlarge capacity"),
            "capacity",
        ),
        (
            ec2_error(400, "VcpuLimitExceeded", "You have requested more vCPU capacity than your current limit"),
            "capacity",
        ),
        (ec2_error(401, "AuthFailure", "AWS was not able to validate the provided access credentials"), "unauthorized"),
        (ec2_error(403, "UnauthorizedOperation", "You are not authorized to perform this operation."), "unauthorized"),
        (ec2_error(400, "RequestExpired", "Request has expired."), "unauthorized"),
        (ec2_error(503, "RequestLimitExceeded", "Request limit exceeded."), "unavailable"),
        (ec2_error(500, "InternalError", "An internal error has occurred"), "unavailable"),
        (ec2_error(400, "InvalidParameterValue", "Invalid value 'p9.huge' for InstanceType."), "invalid"),
        (ec2_error(400, "InvalidAMIID.NotFound", "The image id '[ami-1]' does not exist"), "invalid"),
        (
            Reply::xml(
                400,
                "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
            ),
            "unavailable",
        ),
        (Reply::text(502, "<html>Bad Gateway</html>"), "unavailable"),
        (Reply::text(403, "Forbidden"), "unauthorized"),
    ];
    for (reply, expected) in cases {
        let mock = MockApi::start().await;
        mock.on(RUN, reply.clone());
        let err = provider(&mock.url).provision(&provision_request("inst-1", "p5.48xlarge", "", "")).await.unwrap_err();
        assert_eq!(kind(&err), expected, "{reply:?}: {err}");
        assert!(err.to_string().starts_with("aws-main: "), "{err}");
        assert!(err.to_string().contains("RunInstances p5.48xlarge in us-east-1"), "{err}");
    }
    let mock = MockApi::start().await;
    mock.on(RUN, ec2_error(500, "InsufficientInstanceCapacity", "We currently do not have sufficient capacity"));
    let err = provider(&mock.url).provision(&provision_request("inst-1", "p5.48xlarge", "", "")).await.unwrap_err();
    assert!(err.to_string().contains("sufficient capacity (InsufficientInstanceCapacity)"), "{err}");
    let mock = MockApi::start().await;
    mock.on(RUN, ec2_error(401, "AuthFailure", "not valid"));
    let err = provider(&mock.url).provision(&provision_request("inst-1", "p5.48xlarge", "", "")).await.unwrap_err();
    assert!(err.to_string().contains(ACCESS_KEY_ENV), "{err}");
    assert!(!err.to_string().contains("wJalrXUtnFEMI"), "{err}");
}

#[tokio::test]
async fn unexpected_success_bodies_are_unavailable() {
    for body in ["not xml at all", "<RunInstancesResponse><instancesSet/></RunInstancesResponse>", "<unclosed>"] {
        let mock = MockApi::start().await;
        mock.on(RUN, Reply::xml(200, body));
        let err = provider(&mock.url).provision(&provision_request("inst-1", "p5.48xlarge", "", "")).await.unwrap_err();
        assert_eq!(kind(&err), "unavailable", "{body}: {err}");
    }
    let err = provider(&closed_address().await).list().await.unwrap_err();
    assert_eq!(kind(&err), "unavailable", "{err}");
    assert!(err.to_string().contains("DescribeInstances: cannot connect"), "{err}");
}

#[tokio::test]
async fn terminate_names_the_instance_and_treats_unknown_ids_as_gone() {
    let mock = MockApi::start().await;
    mock.on(
        TERMINATE,
        Reply::xml(
            200,
            "<TerminateInstancesResponse><requestId>r</requestId><instancesSet/></TerminateInstancesResponse>",
        ),
    );
    provider(&mock.url).terminate("i-1").await.unwrap();
    let sent = &mock.requests_to(TERMINATE)[0];
    assert_eq!(sent.form().get("InstanceId.1").map(String::as_str), Some("i-1"));
    assert_signed(sent, None);

    let mock = MockApi::start().await;
    mock.on(TERMINATE, ec2_error(400, "InvalidInstanceID.NotFound", "The instance ID 'i-1' does not exist"));
    provider(&mock.url).terminate("i-1").await.unwrap();

    let mock = MockApi::start().await;
    mock.on(TERMINATE, ec2_error(400, "InvalidInstanceID.Malformed", "Invalid id: \"x\""));
    let err = provider(&mock.url).terminate("x").await.unwrap_err();
    assert_eq!(kind(&err), "invalid", "{err}");
    let mock = MockApi::start().await;
    mock.on(TERMINATE, ec2_error(503, "RequestLimitExceeded", "slow down"));
    let err = provider(&mock.url).terminate("i-1").await.unwrap_err();
    assert_eq!(kind(&err), "unavailable", "{err}");
}

#[tokio::test]
async fn list_reads_every_page_and_maps_tags_and_states() {
    let mock = MockApi::start().await;
    mock.on(
        DESCRIBE,
        describe_reply(
            &[
                &[
                    instance_xml(
                        "i-1",
                        "pending",
                        "us-east-1a",
                        &[("bosun-instance-id", "inst-1"), ("Name", "bosun-inst-1")],
                    ),
                    instance_xml("i-2", "running", "us-east-1b", &[("Name", "x"), ("bosun-instance-id", "inst-2")]),
                ],
                &[instance_xml("i-3", "shutting-down", "us-east-1a", &[("bosun-instance-id", "Pool.A:7")])],
            ],
            Some("token-2"),
        ),
    );
    mock.on(
        DESCRIBE,
        describe_reply(
            &[&[
                instance_xml("i-4", "terminated", "us-east-1c", &[("bosun-instance-id", "inst-4")]),
                instance_xml("i-5", "running", "us-east-1c", &[("Name", "hand-made")]),
                instance_xml("i-6", "stopped", "us-east-1c", &[("bosun-instance-id", "not valid!")]),
            ]],
            None,
        ),
    );
    let listed = provider(&mock.url).list().await.unwrap();
    let summary: Vec<(&str, Option<&str>, ProviderInstanceState, &str)> = listed
        .iter()
        .map(|i| {
            (i.provider_instance_id.as_str(), i.instance_id.as_ref().map(InstanceId::as_str), i.state, i.zone.as_str())
        })
        .collect();
    use ProviderInstanceState::*;
    assert_eq!(
        summary,
        [
            ("i-1", Some("inst-1"), Pending, "us-east-1a"),
            ("i-2", Some("inst-2"), Running, "us-east-1b"),
            ("i-3", Some("Pool.A:7"), Terminating, "us-east-1a"),
            ("i-4", Some("inst-4"), Terminated, "us-east-1c"),
            ("i-5", None, Running, "us-east-1c"),
            ("i-6", None, Terminated, "us-east-1c"),
        ]
    );
    assert!(listed.iter().all(|i| i.region == "us-east-1" && i.instance_type == "p5.48xlarge"));

    let pages = mock.requests_to(DESCRIBE);
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].form().get("MaxResults").map(String::as_str), Some("1000"));
    assert_eq!(pages[0].form().get("NextToken"), None);
    assert_eq!(pages[1].form().get("NextToken").map(String::as_str), Some("token-2"));
}

#[tokio::test]
async fn list_reports_the_public_else_private_ip_for_ssh() {
    let with_ips = |id: &str, public: Option<&str>, private: Option<&str>| {
        let ips = format!(
            "{}{}",
            private.map(|ip| format!("<privateIpAddress>{ip}</privateIpAddress>")).unwrap_or_default(),
            public.map(|ip| format!("<ipAddress>{ip}</ipAddress>")).unwrap_or_default()
        );
        instance_xml(id, "running", "us-east-1a", &[]).replace("<tagSet>", &format!("{ips}<tagSet>"))
    };
    let mock = MockApi::start().await;
    mock.on(
        DESCRIBE,
        describe_reply(
            &[&[
                with_ips("i-1", Some("203.0.113.7"), Some("10.0.0.7")),
                with_ips("i-2", None, Some("10.0.0.8")),
                with_ips("i-3", None, None),
            ]],
            None,
        ),
    );
    let listed = provider(&mock.url).list().await.unwrap();
    let addresses: Vec<Option<String>> = listed.iter().map(|i| i.ssh_address.map(|a| a.to_string())).collect();
    assert_eq!(addresses, [Some("203.0.113.7:22".to_owned()), Some("10.0.0.8:22".to_owned()), None]);
}

#[tokio::test]
async fn list_errors_and_repeated_tokens_are_errors_not_short_lists() {
    let mock = MockApi::start().await;
    mock.on(DESCRIBE, describe_reply(&[], Some("same")));
    let err = provider(&mock.url).list().await.unwrap_err();
    assert!(err.to_string().contains("repeated a page token"), "{err}");

    let mock = MockApi::start().await;
    mock.on(DESCRIBE, ec2_error(403, "UnauthorizedOperation", "not allowed"));
    let err = provider(&mock.url).list().await.unwrap_err();
    assert_eq!(kind(&err), "unauthorized", "{err}");
}

#[test]
fn from_config_reads_region_and_credentials_and_names_what_is_missing() {
    let none = aws_config("{type: aws}");
    let err = AwsProvider::from_config("aws-main", &none, env_with(&[])).unwrap_err();
    assert_eq!(kind(&err), "invalid", "{err}");
    assert!(err.to_string().contains("AWS_REGION"), "{err}");

    let aws = AwsProvider::from_config("aws-main", &none, env_with(&[("AWS_REGION", "eu-west-1")])).unwrap();
    assert_eq!(aws.region, "eu-west-1");
    assert_eq!(aws.endpoint.as_str(), "https://ec2.eu-west-1.amazonaws.com/");
    let aws = AwsProvider::from_config("aws-main", &none, env_with(&[("AWS_DEFAULT_REGION", "us-west-2")])).unwrap();
    assert_eq!(aws.region, "us-west-2");

    let config = aws_config("{type: aws, region: us-east-1}");
    let aws = AwsProvider::from_config("aws-main", &config, |_| None).unwrap();
    assert!(aws.credential_source().starts_with("the instance role"), "without keys: {}", aws.credential_source());
    let err =
        AwsProvider::from_config("aws-main", &config, |var| (var == PROFILE_ENV).then(|| "prod".into())).unwrap_err();
    assert_eq!(kind(&err), "unauthorized", "{err}");
    assert!(err.to_string().contains("profile prod"), "{err}");

    let bad = aws_config("{type: aws, region: us-east-1/../x}");
    assert_eq!(kind(&AwsProvider::from_config("a", &bad, env_with(&[])).unwrap_err()), "invalid");
    let endpoint = aws_config("{type: aws, region: eu-west-1, endpoint: 'https://ec2.vpce.example/'}");
    let aws = AwsProvider::from_config("a", &endpoint, env_with(&[])).unwrap();
    assert_eq!((aws.endpoint.as_str(), aws.region.as_str()), ("https://ec2.vpce.example/", "eu-west-1"));

    let aws =
        AwsProvider::from_config("aws-main", &config, env_with(&[(SESSION_TOKEN_ENV, "FwoGZXIvYXdzEXAMPLE")])).unwrap();
    let debug = format!("{aws:?}");
    assert!(!debug.contains("wJalrXUtnFEMI") && !debug.contains("FwoGZXIvYXdzEXAMPLE"), "{debug}");
    assert_eq!(aws.kind(), ProviderType::Aws);
}

/// On EC2 without keys, calls are signed with the instance role's temporary credentials.
#[tokio::test]
async fn instance_role_credentials_sign_the_calls() {
    let imds = MockApi::start().await;
    imds.on("PUT /latest/api/token", Reply::text(200, "imds-token"));
    imds.on("GET /latest/meta-data/iam/security-credentials/", Reply::text(200, "bosun-node"));
    imds.on(
        "GET /latest/meta-data/iam/security-credentials/bosun-node",
        Reply::json(
            200,
            serde_json::json!({"Code": "Success", "AccessKeyId": "AKIDEXAMPLE",
                "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "Token": "role-token",
                "Expiration": "2999-01-01T00:00:00Z"}),
        ),
    );
    let ec2 = MockApi::start().await;
    ec2.on(TERMINATE, Reply::xml(200, "<TerminateInstancesResponse/>"));
    let config = aws_config(&format!("{{type: aws, region: us-east-1, endpoint: '{}'}}", ec2.url));
    let endpoint = imds.url.clone();
    let env = move |var: &str| (var == "AWS_EC2_METADATA_SERVICE_ENDPOINT").then(|| endpoint.clone());
    let aws = AwsProvider::from_config("aws-main", &config, env).unwrap();
    aws.terminate("i-1").await.unwrap();
    aws.terminate("i-2").await.unwrap();
    for sent in ec2.requests_to(TERMINATE) {
        assert_signed(&sent, Some("role-token"));
    }
    assert_eq!(imds.requests_to("PUT /latest/api/token").len(), 1, "the role's credentials are reused");
}

#[test]
fn long_ids_get_a_hashed_client_token() {
    let long: InstanceId = "x".repeat(100).parse().unwrap();
    let token = client_token(&long);
    assert_eq!(token.len(), 64);
    assert_ne!(token, client_token(&"y".repeat(100).parse().unwrap()));
    assert_eq!(client_token(&"inst-1".parse().unwrap()), "inst-1");
}

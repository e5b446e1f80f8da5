//! TLS on the API port: clients verify the server against a CA, agents prove themselves
//! with client certificates when the server asks, a wrong CA is refused both ways, and a
//! reloaded certificate is served to new connections.

use bosun_agent::ControlPlane;
use bosun_api::{AgentClient, ClientTls, v1};
use bosun_config::TlsFiles;
use bosun_store::Backend;
use connectrpc::ErrorCode;

use crate::harness::*;
use crate::pki::{Leaf, Pki};

on_sql_backends!(tls_with_client_certificates_for_agents);

fn trusting(ca: &std::path::Path) -> ClientTls {
    ClientTls { ca_file: Some(ca.to_owned()), ..ClientTls::default() }
}

fn with_client_cert(ca: &std::path::Path, client: &Leaf) -> ClientTls {
    ClientTls { client_cert: Some(client.cert_file.clone()), client_key: Some(client.key_file.clone()), ..trusting(ca) }
}

async fn tls_with_client_certificates_for_agents(backend: Backend) {
    let pki = Pki::new();
    let server_ca = pki.ca("server-ca");
    let agent_ca = pki.ca("agent-ca");
    let stranger_ca = pki.ca("stranger-ca");
    let server = server_ca.server(&pki, "server");
    let mut settings = settings();
    settings.tls = Some(TlsFiles {
        cert_file: server.cert_file.clone(),
        key_file: server.key_file.clone(),
        client_ca_file: Some(agent_ca.cert_file.clone()),
    });
    let Some(mut h) = Harness::start_with(backend, settings).await else { return };
    assert!(h.url().starts_with("https://"), "{}", h.url());

    // Operators need no client certificate.
    h.client_tls = trusting(&server_ca.cert_file);
    h.root().list_nodes(v1::ListNodesRequest::default()).await.expect("ListNodes over TLS");

    // An agent without a client certificate is refused, naming what it lacks.
    let error = h.agent_client().register(&registration("n1"), None).await.expect_err("no client certificate");
    assert!(error.to_string().contains("client certificate"), "{error}");

    // With one signed by the agent CA it registers, over HTTP/2 (ALPN h2, as gRPC needs)
    // as well as HTTP/1.1.
    let agent = agent_ca.client(&pki, "agent-n1");
    let tls = with_client_cert(&server_ca.cert_file, &agent);
    let client = AgentClient::with_tls(&h.url(), Some(AGENTS.to_owned()), &tls).expect("client");
    client.register(&registration("n1"), None).await.expect("register with a client certificate");
    let h2 = AgentClient::new_http2_only(&h.url(), Some(AGENTS.to_owned()), &tls).expect("client");
    h2.register(&registration("n2"), None).await.expect("register over h2");

    // A client certificate from another CA fails the handshake.
    let stranger = stranger_ca.client(&pki, "stranger");
    let unknown =
        AgentClient::with_tls(&h.url(), Some(AGENTS.to_owned()), &with_client_cert(&server_ca.cert_file, &stranger))
            .expect("client");
    assert!(unknown.register(&registration("n3"), None).await.is_err(), "a certificate of an unknown CA");

    // A client that trusts another CA does not talk to this server.
    h.client_tls = trusting(&stranger_ca.cert_file);
    let (code, message) = refused(h.root().list_nodes(v1::ListNodesRequest::default()).await);
    assert_eq!(code, ErrorCode::Unavailable, "{message}");
    // Nor does a plain HTTP client.
    let plain = format!("http://{}", h.server().local_addr());
    let config = connectrpc::client::ClientConfig::new(plain.parse().expect("uri"));
    let transport = bosun_api::Transport::new(config.base_uri(), &ClientTls::default(), false).expect("transport");
    let plain_client = v1::AdminServiceClient::new(transport, config);
    assert!(plain_client.list_nodes(v1::ListNodesRequest::default()).await.is_err());

    // A new certificate from another CA, reloaded: new connections get it.
    let rotated_ca = pki.ca("rotated-ca");
    let rotated = rotated_ca.server(&pki, "server-rotated");
    std::fs::copy(&rotated.cert_file, &server.cert_file).expect("replace certificate");
    std::fs::copy(&rotated.key_file, &server.key_file).expect("replace key");
    h.server().reload_tls().expect("reload");
    h.client_tls = trusting(&rotated_ca.cert_file);
    h.root().list_nodes(v1::ListNodesRequest::default()).await.expect("the rotated certificate is served");
    h.client_tls = trusting(&server_ca.cert_file);
    assert!(h.root().list_nodes(v1::ListNodesRequest::default()).await.is_err(), "the old one no longer");

    // A broken file is refused and the current certificate kept.
    std::fs::write(&server.key_file, "not a key").expect("break key");
    assert!(h.server().reload_tls().is_err());
    h.client_tls = trusting(&rotated_ca.cert_file);
    h.root().list_nodes(v1::ListNodesRequest::default()).await.expect("still serving");
    h.stop().await;
}

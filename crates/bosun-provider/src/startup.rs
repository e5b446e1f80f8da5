//! The script a new cloud machine runs at boot to start its agent.
//!
//! Every cloud here runs a shell script at boot (EC2 and Lambda user data through
//! cloud-init, GCE's `startup-script` metadata key). The script writes the agent's
//! environment to `/etc/bosun/agent.env` (mode 600), installs a systemd unit and starts it,
//! so the agent restarts on crash and on reboot. The `bosun` binary must already be on the
//! image (or be installed by the pool's setup commands): a missing binary shows in the unit's
//! status and in the cloud-init log.
//!
//! Where the secret comes from differs: EC2 and Lambda get it embedded in the user data; on
//! GCE the script reads `bosun-server-url`, `bosun-token` and `bosun-instance-id` from the
//! instance metadata, so the token is in one place an operator can rotate or strip.

use std::fmt::Write as _;

use bosun_config::ProviderType;

use crate::provider::ProvisionRequest;

/// Metadata keys (GCE) holding the bootstrap.
pub(crate) const META_SERVER_URL: &str = "bosun-server-url";
pub(crate) const META_TOKEN: &str = "bosun-token";
pub(crate) const META_INSTANCE_ID: &str = "bosun-instance-id";

const ENV_FILE: &str = "/etc/bosun/agent.env";

/// Where the script finds the server URL, token and instance id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Written into the script itself.
    Embedded,
    /// Read from the GCE metadata server at boot.
    GceMetadata,
}

/// Where the machine is, as far as the provider knows at provisioning time (the zone may
/// still be empty when the cloud picks it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement<'a> {
    pub(crate) provider: ProviderType,
    pub(crate) region: &'a str,
    pub(crate) zone: &'a str,
}

pub(crate) fn agent_script(request: &ProvisionRequest, placement: Placement<'_>, source: Source) -> String {
    let mut script = String::from(
        "#!/bin/sh\n\
         # Written by bosun when it provisioned this machine: starts the bosun node agent.\n\
         set -eu\n\
         umask 077\n\
         mkdir -p /etc/bosun\n",
    );
    match source {
        Source::Embedded => {
            let mut lines = vec![
                format!("BOSUN_SERVER={}", env_file_quote(&request.bootstrap.server_url)),
                format!("BOSUN_INSTANCE_ID={}", env_file_quote(request.instance_id.as_str())),
            ];
            if let Some(token) = &request.bootstrap.token {
                lines.push(format!("BOSUN_TOKEN={}", env_file_quote(token)));
            }
            script.push_str("printf '%s\\n'");
            for line in &lines {
                script.push(' ');
                script.push_str(&shell_quote(line));
            }
            let _ = writeln!(script, " > {ENV_FILE}");
        }
        Source::GceMetadata => {
            let _ = write!(
                script,
                "md() {{ curl -fsS --retry 5 -H 'Metadata-Flavor: Google' \
                 \"http://metadata.google.internal/computeMetadata/v1/instance/attributes/$1\"; }}\n\
                 # Quotes the value for a systemd environment file.\n\
                 esc() {{ printf '\"%s\"' \"$(printf '%s' \"$1\" | sed 's/[\\\\\"$`]/\\\\&/g')\"; }}\n\
                 # Plain assignments, so that set -e stops the script if the metadata is unreachable.\n\
                 server=$(md {META_SERVER_URL})\n\
                 instance=$(md {META_INSTANCE_ID})\n\
                 {{\n\
                 \x20 printf 'BOSUN_SERVER=%s\\n' \"$(esc \"$server\")\"\n\
                 \x20 printf 'BOSUN_INSTANCE_ID=%s\\n' \"$(esc \"$instance\")\"\n\
                 \x20 if token=$(md {META_TOKEN} 2>/dev/null); then printf 'BOSUN_TOKEN=%s\\n' \"$(esc \"$token\")\"; fi\n\
                 }} > {ENV_FILE}\n"
            );
        }
    }
    let mut exec = String::from("/usr/bin/env bosun agent");
    let mut arg = |flag: &str, value: &str| {
        if !value.is_empty() {
            let _ = write!(exec, " --{flag} {}", systemd_quote(value));
        }
    };
    arg("provider", placement.provider.as_str());
    arg("region", placement.region);
    arg("zone", placement.zone);
    arg("instance-type", &request.instance_type);
    if let Some(pool) = &request.pool {
        arg("pool", pool.as_str());
    }
    let _ = write!(
        script,
        "cat > /etc/systemd/system/bosun-agent.service <<'BOSUN_UNIT'\n\
         [Unit]\n\
         Description=bosun node agent\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         EnvironmentFile={ENV_FILE}\n\
         ExecStart={exec}\n\
         Restart=always\n\
         RestartSec=5\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n\
         BOSUN_UNIT\n\
         systemctl daemon-reload\n\
         systemctl enable --now bosun-agent.service\n"
    );
    script
}

/// `value` as one single-quoted shell word.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `value` double-quoted for a systemd `EnvironmentFile`.
fn env_file_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `value` as one argument of a systemd `ExecStart=` line: double-quoted, with `$` and `%`
/// doubled so systemd neither expands variables nor specifiers in it.
fn systemd_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' | '"' => {
                out.push('\\');
                out.push(c);
            }
            '$' => out.push_str("$$"),
            '%' => out.push_str("%%"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use bosun_core::Labels;

    use super::*;
    use crate::provider::Bootstrap;

    fn request(token: Option<&str>) -> ProvisionRequest {
        ProvisionRequest {
            instance_id: "inst-1".parse().unwrap(),
            pool: Some("training".parse().unwrap()),
            instance_type: "p5.48xlarge".into(),
            region: "us-east-1".into(),
            zone: String::new(),
            labels: Labels::new(),
            bootstrap: Bootstrap { server_url: "https://bosun.example:6443".into(), token: token.map(str::to_owned) },
            image: None,
            ssh: Default::default(),
        }
    }

    const PLACEMENT: Placement<'static> = Placement { provider: ProviderType::Aws, region: "us-east-1", zone: "" };

    #[test]
    fn embedded_script_carries_the_bootstrap_quoted() {
        let script = agent_script(&request(Some("to'k\"en$x")), PLACEMENT, Source::Embedded);
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("'BOSUN_SERVER=\"https://bosun.example:6443\"'"), "{script}");
        assert!(script.contains("'BOSUN_INSTANCE_ID=\"inst-1\"'"), "{script}");
        // Shell single quotes around systemd double quotes around the escaped token.
        assert!(script.contains(r#"'BOSUN_TOKEN="to'\''k\"en\$x"'"#), "{script}");
        assert!(script.contains(
            "ExecStart=/usr/bin/env bosun agent --provider \"aws\" --region \"us-east-1\" \
             --instance-type \"p5.48xlarge\" --pool \"training\"\n"
        ));
        assert!(!script.contains("--zone"), "an unknown zone is left to the agent");
    }

    #[test]
    fn embedded_script_without_a_token_sets_none() {
        let script = agent_script(&request(None), PLACEMENT, Source::Embedded);
        assert!(!script.contains("BOSUN_TOKEN"));
    }

    #[test]
    fn gce_script_reads_the_bootstrap_from_metadata_and_embeds_no_secret() {
        let placement = Placement { provider: ProviderType::Gcp, region: "us-central1", zone: "us-central1-a" };
        let script = agent_script(&request(Some("secret-token")), placement, Source::GceMetadata);
        assert!(!script.contains("secret-token"));
        assert!(!script.contains("bosun.example"));
        assert!(script.contains("attributes/$1"));
        assert!(script.contains("md bosun-token"));
        assert!(script.contains("--zone \"us-central1-a\""));
    }

    /// The scripts parse as shell, and the GCE one's escaping survives hostile values.
    #[test]
    fn scripts_are_valid_shell() {
        let gce = Placement { provider: ProviderType::Gcp, region: "r", zone: "z" };
        for (placement, source) in [(PLACEMENT, Source::Embedded), (gce, Source::GceMetadata)] {
            let script = agent_script(&request(Some("t'o\"k$e`n")), placement, source);
            let status = std::process::Command::new("sh").args(["-n", "-c", &script]).status().unwrap();
            assert!(status.success(), "{script}");
        }
        let script = agent_script(&request(None), gce, Source::GceMetadata);
        let esc = script.lines().find(|l| l.starts_with("esc()")).unwrap();
        let output = std::process::Command::new("sh")
            .args(["-c", &format!("{esc}\nesc \"$1\"",), "sh", r#"a"b$c`d\e"#])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), r#""a\"b\$c\`d\\e""#);
    }

    #[test]
    fn systemd_arguments_cannot_expand() {
        assert_eq!(systemd_quote("a$b%c\"d"), "\"a$$b%%c\\\"d\"");
    }
}

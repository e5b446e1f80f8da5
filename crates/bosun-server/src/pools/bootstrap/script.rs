//! What one setup command becomes on the machine, and what is kept of its output.
//!
//! Each command runs as a script read from standard input by the login user's shell
//! (`exec "${SHELL:-/bin/sh}" -s`): the script exports the bootstrap's values
//! (`BOSUN_SERVER`, `BOSUN_TOKEN`, `BOSUN_NODE_ID`, ...; the agent reads the first four
//! itself) and then runs the command with its placeholders replaced by shell-quoted values.
//! Sent on standard input, neither the token nor the command appears in the machine's
//! process list, and the command keeps the shell its author wrote it for.

use bosun_config::{Placeholder, SETUP_PLACEHOLDERS, SetupPart, parse_setup_command};
use bosun_core::bootstrap::MAX_BOOTSTRAP_OUTPUT;

/// What the SSH session executes; the script arrives on its standard input.
pub(super) const REMOTE_COMMAND: &str = "exec \"${SHELL:-/bin/sh}\" -s";

/// The values a machine's setup commands are given.
#[derive(Clone)]
pub(super) struct Values {
    pub control_plane: String,
    pub token: Option<String>,
    pub instance_id: String,
    pub pool: String,
    pub provider: String,
    pub region: String,
    pub zone: String,
    pub instance_type: String,
}

impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Values")
            .field("control_plane", &self.control_plane)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("instance_id", &self.instance_id)
            .finish_non_exhaustive()
    }
}

impl Values {
    fn get(&self, placeholder: Placeholder) -> &str {
        match placeholder {
            Placeholder::ControlPlane => &self.control_plane,
            Placeholder::Token => self.token.as_deref().unwrap_or_default(),
            // The agent registers as the instance id, so its node and its logs share a key.
            Placeholder::NodeId | Placeholder::InstanceId => &self.instance_id,
            Placeholder::Pool => &self.pool,
            Placeholder::Provider => &self.provider,
            Placeholder::Region => &self.region,
            Placeholder::Zone => &self.zone,
            Placeholder::InstanceType => &self.instance_type,
        }
    }

    /// The script for `command`: the exports, then the command filled in. The
    /// configuration refused unknown placeholders, so a parse error here means the
    /// command changed under us; it is reported, not run.
    pub(super) fn script(&self, command: &str) -> Result<String, String> {
        let mut script = String::from("export");
        for (placeholder, _) in SETUP_PLACEHOLDERS {
            if placeholder == Placeholder::Token && self.token.is_none() {
                continue;
            }
            script.push_str(&format!(" {}={}", placeholder.env_var(), shell_quote(self.get(placeholder))));
        }
        script.push('\n');
        for part in parse_setup_command(command)? {
            match part {
                SetupPart::Text(text) => script.push_str(text),
                SetupPart::Value(placeholder) => script.push_str(&shell_quote(self.get(placeholder))),
            }
        }
        script.push('\n');
        Ok(script)
    }

    /// `text` with the token blanked out, for output that is stored and shown.
    pub(super) fn scrub(&self, text: &str) -> String {
        match self.token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => text.replace(token, "***"),
            None => text.to_owned(),
        }
    }
}

/// One shell word: plain values as they are (as Navarch quotes), anything else in single
/// quotes.
fn shell_quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '@' | '=' | ','));
    if plain { value.to_owned() } else { format!("'{}'", value.replace('\'', r"'\''")) }
}

/// A command's output as it is kept: at most [`MAX_BOOTSTRAP_OUTPUT`] bytes, the end kept
/// (where installers print their errors), as text.
#[derive(Debug, Default)]
pub(super) struct Output {
    bytes: Vec<u8>,
    dropped: usize,
}

impl Output {
    pub(super) fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        // Trim in large steps, so a chatty command costs amortized constant work.
        if self.bytes.len() > 2 * MAX_BOOTSTRAP_OUTPUT {
            let excess = self.bytes.len() - MAX_BOOTSTRAP_OUTPUT;
            self.bytes.drain(..excess);
            self.dropped += excess;
        }
    }

    pub(super) fn into_text(mut self) -> String {
        if self.bytes.len() > MAX_BOOTSTRAP_OUTPUT {
            let excess = self.bytes.len() - MAX_BOOTSTRAP_OUTPUT;
            self.bytes.drain(..excess);
            self.dropped += excess;
        }
        let text = String::from_utf8_lossy(&self.bytes).into_owned();
        if self.dropped == 0 { text } else { format!("[{} earlier bytes not kept]\n{text}", self.dropped) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(token: Option<&str>) -> Values {
        Values {
            control_plane: "https://bosun.example:50051".into(),
            token: token.map(str::to_owned),
            instance_id: "i-0193".into(),
            pool: "training".into(),
            provider: "lambda".into(),
            region: "us-east-1".into(),
            zone: String::new(),
            instance_type: "gpu_8x_h100_sxm5".into(),
        }
    }

    /// The script runs in a real shell: the exports and the quoting survive hostile values.
    #[test]
    fn scripts_export_the_values_and_fill_in_placeholders_quoted() {
        let mut hostile = values(Some("to'k en$(x)"));
        hostile.pool = "a b;c".into();
        let script = hostile
            .script("printf '%s|' {{.ControlPlane}} {{.Pool}} {{.Token}} {{.NodeID}} \"$BOSUN_TOKEN\" \"$BOSUN_ZONE\"")
            .expect("script");
        let output = std::process::Command::new("sh").arg("-c").arg(&script).output().expect("sh");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "https://bosun.example:50051|a b;c|to'k en$(x)|i-0193|to'k en$(x)||"
        );
        let plain = values(None).script("echo {{.Pool}}").expect("script");
        assert!(!plain.contains("BOSUN_TOKEN"), "no token, no variable: {plain}");
        assert!(plain.ends_with("\necho training\n"), "{plain}");
    }

    #[test]
    fn the_token_is_scrubbed_from_output() {
        assert_eq!(values(Some("s3cret")).scrub("token=s3cret ok"), "token=*** ok");
        assert_eq!(values(None).scrub("token=s3cret"), "token=s3cret");
    }

    #[test]
    fn output_keeps_its_end() {
        let mut output = Output::default();
        for _ in 0..5 {
            output.push(&vec![b'a'; MAX_BOOTSTRAP_OUTPUT / 2]);
        }
        output.push(b"the error");
        let text = output.into_text();
        assert!(text.starts_with(&format!("[{} earlier bytes not kept]\n", 3 * MAX_BOOTSTRAP_OUTPUT / 2 + 9)));
        assert!(text.ends_with("the error"));
        assert_eq!(text.lines().nth(1).map(str::len), Some(MAX_BOOTSTRAP_OUTPUT));
    }
}

//! Helpers for tests that run the `bosun` binary.

#![allow(dead_code)] // Each test file uses a different subset.

use std::process::{Command, Output};

/// The `bosun` binary with a clean environment: no store chosen by the caller's shell.
pub fn bosun() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bosun"));
    for var in [
        "BOSUN_STORE",
        "STORE_TYPE",
        "DATABASE_URL",
        "BOSUN_LOG",
        "RUST_LOG",
        "BOSUN_SERVER",
        "BOSUN_TOKEN",
        "BOSUN_CONFIG",
    ] {
        command.env_remove(var);
    }
    command
}

pub fn run(command: &mut Command) -> Output {
    command.output().expect("run bosun")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(command: &mut Command) -> String {
    let output = run(command);
    assert!(output.status.success(), "bosun failed: {}\n{}", stderr(&output), stdout(&output));
    stdout(&output)
}

/// Asserts exit code 1 with exactly one line on stderr, `error: ...`, and no panic;
/// returns that line.
pub fn fails_with_one_line(command: &mut Command) -> String {
    let output = run(command);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "expected exit 1, stderr: {err}");
    assert!(!err.contains("panicked"), "bosun panicked: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_owned()
}

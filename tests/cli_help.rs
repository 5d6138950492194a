//! Every command and every flag of the command line explains itself: `seedance-gateway
//! <command> --help` has a line for each. Walks the clap command tree the binary parses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

use clap::CommandFactory;
use seedance_gateway::cli::Cli;

/// The path of every command (`seedance-gateway tenants create`) and every argument
/// (`… --tenant`) that has no help text.
fn missing_help(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
    if command.get_about().is_none() && command.get_long_about().is_none() {
        missing.push(path.to_string());
    }
    for arg in command.get_arguments() {
        if arg.get_help().is_none() && arg.get_long_help().is_none() {
            let name = match arg.get_long() {
                Some(long) => format!("--{long}"),
                None => format!("<{}>", arg.get_id()),
            };
            missing.push(format!("{path} {name}"));
        }
        for value in arg.get_possible_values() {
            // `true` and `false` of a boolean flag explain themselves.
            let boolean = matches!(value.get_name(), "true" | "false");
            if !boolean && !value.is_hide_set() && value.get_help().is_none() {
                missing.push(format!(
                    "{path} {} value {}",
                    arg.get_id(),
                    value.get_name()
                ));
            }
        }
    }
    for sub in command.get_subcommands() {
        missing_help(sub, &format!("{path} {}", sub.get_name()), missing);
    }
}

#[test]
fn every_command_and_flag_has_help_text() {
    let mut command = Cli::command();
    // Built as `--help` shows it: global flags on every subcommand, `help` and `--version`.
    command.build();
    let mut missing = Vec::new();
    missing_help(&command, "seedance-gateway", &mut missing);
    assert!(
        missing.is_empty(),
        "commands and flags without help text: {missing:#?}"
    );
}

#[test]
fn the_command_line_definition_is_consistent() {
    // clap's own checks: no clashing names, defaults that parse, valid relations.
    Cli::command().debug_assert();
}

#[test]
fn the_binarys_help_for_a_subcommand_explains_each_flag() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_seedance-gateway"))
        .args(["routing", "set", "--help"])
        .env_remove("SEEDANCE_GW_CONFIG")
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--tenant",
        "--key",
        "--strategy",
        "--providers",
        "--fallback",
        "--resubmit-failed",
        "--config",
        "--log-format",
    ] {
        let lines: Vec<&str> = help.lines().map(str::trim).collect();
        let at = lines.iter().position(|line| line.starts_with(flag));
        // Short help puts the words on the flag's line, long help on the next one.
        let explained = at.is_some_and(|at| {
            lines[at].split_whitespace().count() >= 4
                || lines
                    .get(at + 1)
                    .is_some_and(|next| next.split_whitespace().count() >= 3)
        });
        assert!(explained, "`routing set --help` explains {flag}:\n{help}");
    }
}

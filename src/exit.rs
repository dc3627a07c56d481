//! How the binaries end: an error is printed as one line (`psp-app: error: loading server
//! config x.yml: server config: psp.rx_burst = 0: must be ...`), with its causes joined by `: `
//! and no backtrace, whatever `RUST_BACKTRACE` says (scripts/test.sh sets it, and anyhow would
//! print a stack trace under each config error). `PSP_BACKTRACE=1` prints the full report with
//! the backtrace instead. A closed stdout (`psp sim ... | head`) ends the program quietly.
//!
//! Tested by the end-to-end tests, which run the binaries with `RUST_BACKTRACE=1`.

use std::process::ExitCode;

/// Environment variable that turns backtraces of errors on.
pub const BACKTRACE_ENV: &str = "PSP_BACKTRACE";

/// Prepares error reporting; call first in `main`, before any thread starts.
pub fn init() {
    // anyhow captures a backtrace when RUST_LIB_BACKTRACE (else RUST_BACKTRACE) asks for one;
    // capture only when it will be printed. Single-threaded here, so setting it is sound.
    let wanted = backtrace_wanted();
    std::env::set_var("RUST_LIB_BACKTRACE", if wanted { "1" } else { "0" });
}

fn backtrace_wanted() -> bool {
    std::env::var(BACKTRACE_ENV).is_ok_and(|v| v == "1")
}

/// Whether `error` comes from writing to a closed pipe.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Ends a binary: `Ok` → success; a broken pipe → success, silently; any other error → one
/// line on stderr (the full report with `PSP_BACKTRACE=1`) and exit status 1.
pub fn finish(program: &str, result: anyhow::Result<()>) -> ExitCode {
    finish_with_code(program, result.map(|()| ExitCode::SUCCESS))
}

/// [`finish`] for a program whose success has its own exit code (psp-client's "server lost").
pub fn finish_with_code(program: &str, result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) if backtrace_wanted() => {
            eprintln!("{program}: error: {error:?}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{program}: error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by `: `, leaving out a cause whose text its parent already
/// holds (`#[error("... {source}")]` messages embed their source).
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_join_on_one_line_without_repeats() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = anyhow::Error::new(io)
            .context("cannot read x.yml: no such file")
            .context("loading server config x.yml");
        assert_eq!(
            one_line(&error),
            "loading server config x.yml: cannot read x.yml: no such file"
        );
        let pipe = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing the table");
        assert!(is_broken_pipe(&pipe));
        assert!(!is_broken_pipe(&error));
    }
}

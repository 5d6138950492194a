//! Command output on stdout.

/// Writes command output; a closed pipe ends the process quietly (exit 0), any other write
/// error too, with a line on stderr.
pub(crate) fn out_raw(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if error.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: writing the output: {error}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
}

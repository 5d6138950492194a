//! PostgreSQL and Redis for the tests that need them (replicas, shared rate limits), found or
//! started so that `cargo test` works on a fresh machine:
//!
//! 1. the server named by `TEST_DATABASE_URL` (a `postgres://` URL) / `TEST_REDIS_URL`;
//! 2. else one answering at its usual address (127.0.0.1:5432 / 127.0.0.1:6379), as on CI;
//! 3. else a private one started from Debian's binaries (`postgresql`, `redis-server`) on a
//!    free port in a temporary directory, stopped when the test process exits;
//! 4. else none: the test prints one loud `SKIPPED` line naming what is missing and how to
//!    get it, and passes, unless `SGW_REQUIRE_SERVICES=1` (set by `.ci/run`) makes it fail.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A PostgreSQL server URL (its `postgres` database), or `None` after the loud skip line.
pub fn postgres_server(test: &str) -> Option<String> {
    static FOUND: OnceLock<Option<String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
            if url.starts_with("postgres") {
                return Some(url);
            }
        }
        if answers(5432) {
            return Some("postgres://postgres@127.0.0.1:5432/postgres".into());
        }
        start_private_postgres()
    });
    found.clone().or_else(|| {
        missing(
            test,
            "PostgreSQL",
            "install Debian's `postgresql` (the test then starts a private server), start one at \
             127.0.0.1:5432, or set TEST_DATABASE_URL=postgres://…; `bash .ci/run` does all of it",
        )
    })
}

/// A Redis URL, or `None` after the loud skip line.
pub fn redis(test: &str) -> Option<String> {
    static FOUND: OnceLock<Option<String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        if let Ok(url) = std::env::var("TEST_REDIS_URL") {
            return Some(url);
        }
        if answers(6379) {
            return Some("redis://127.0.0.1:6379".into());
        }
        start_private_redis()
    });
    found.clone().or_else(|| {
        missing(
            test,
            "Redis",
            "install Debian's `redis-server` (the test then starts a private server), start one \
             at 127.0.0.1:6379, or set TEST_REDIS_URL=redis://…; `bash .ci/run` does all of it",
        )
    })
}

fn missing(test: &str, what: &str, how: &str) -> Option<String> {
    let line = format!("SKIPPED {test}: needs {what}, none found: {how}");
    if std::env::var("SGW_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("{line} (SGW_REQUIRE_SERVICES=1 forbids skipping)");
    }
    eprintln!("\n!!!!! {line}\n");
    None
}

fn answers(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .is_ok()
}

fn free_port() -> Option<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
    Some(listener.local_addr().ok()?.port())
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(name))
        .find(|path| path.is_file())
}

/// Runs `command` (a shell line) in the background until this test process exits.
fn run_until_exit(command: &str) -> Option<()> {
    let parent = std::process::id();
    let script = format!(
        "{command} & server=$!; while kill -0 {parent} 2>/dev/null && kill -0 $server 2>/dev/null; \
         do sleep 1; done; kill -TERM $server 2>/dev/null"
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some(())
}

fn wait_for(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if answers(port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn start_private_redis() -> Option<String> {
    let server = which("redis-server")?;
    let port = free_port()?;
    let dir = tempfile::tempdir().ok()?.keep();
    run_until_exit(&format!(
        "'{}' --port {port} --bind 127.0.0.1 --save '' --appendonly no --dir '{}'",
        server.display(),
        dir.display()
    ))?;
    wait_for(port).then(|| {
        eprintln!("started a private Redis on 127.0.0.1:{port}");
        format!("redis://127.0.0.1:{port}")
    })
}

fn start_private_postgres() -> Option<String> {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file())
        .max()?;
    let port = free_port()?;
    let dir = tempfile::tempdir().ok()?.keep();
    // PostgreSQL refuses to run as root: as root, run it as the `postgres` user.
    let as_postgres = if is_root() {
        "runuser -u postgres -- "
    } else {
        ""
    };
    if is_root() {
        Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .ok()?;
    }
    let data = dir.join("data");
    let initdb = Command::new("sh")
        .args([
            "-c",
            &format!(
                "{as_postgres}'{}' -D '{}' -U postgres --auth=trust",
                bin.join("initdb").display(),
                data.display()
            ),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    if !initdb.success() {
        return None;
    }
    run_until_exit(&format!(
        "{as_postgres}'{}' -D '{}' -p {port} -k '{}' -c listen_addresses=127.0.0.1 -c fsync=off",
        bin.join("postgres").display(),
        data.display(),
        dir.display()
    ))?;
    wait_for(port).then(|| {
        eprintln!("started a private PostgreSQL on 127.0.0.1:{port}");
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

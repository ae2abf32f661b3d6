//! The `spanhouse` binary as users run it, in a child process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The binary cargo built for this test run. `option_env!`: the harness is also compiled into
/// the tests of `spanhouse-otel`, a package without the binary, which never start it.
pub fn binary() -> &'static str {
    match option_env!("CARGO_BIN_EXE_spanhouse") {
        Some(path) => path,
        None => panic!("the spanhouse binary is not built for this test"),
    }
}

/// A `spanhouse serve` child process and the addresses it reported.
pub struct Served {
    pub child: Child,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
}

impl Served {
    /// Starts `spanhouse serve` on ephemeral ports over `data_dir`, with extra environment
    /// variables (`SPANHOUSE_STORAGE`, say), and waits until it says it is ready.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(binary())
            .arg("serve")
            .args([
                "--http-listen",
                "127.0.0.1:0",
                "--grpc-listen",
                "127.0.0.1:0",
            ])
            .env("SPANHOUSE_DATA_DIR", data_dir)
            .env("SPANHOUSE_LOG", "info")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let (http, grpc) = loop {
            let line = lines
                .next()
                .expect("serve exited before it was ready")
                .unwrap();
            if line.contains("spanhouse ready") {
                let address = |name: &str| -> SocketAddr {
                    line.split_whitespace()
                        .find_map(|word| word.strip_prefix(name))
                        .unwrap_or_else(|| panic!("ready line names the {name} address: {line}"))
                        .parse()
                        .unwrap()
                };
                break (address("http="), address("grpc="));
            }
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, http, grpc }
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// The token the first start wrote to `DATA_DIR/bootstrap-token`.
pub fn bootstrap_token(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("bootstrap-token"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Runs `spanhouse project configure default ARGS…` on a store (`TestServer::store_env`).
pub fn project_configure(
    store_env: &[(&'static str, String)],
    arguments: &[&str],
) -> std::process::Output {
    Command::new(binary())
        .args(["project", "configure", "default"])
        .args(arguments)
        .envs(
            store_env
                .iter()
                .map(|(name, value)| (*name, value.as_str())),
        )
        .output()
        .unwrap()
}

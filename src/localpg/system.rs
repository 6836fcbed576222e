//! What the private PostgreSQL server needs from the host: the server binaries, the `postgres`
//! system user (when running as root), directory ownership and permissions, a free TCP port.

use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
};

use super::error::{LocalPgError, io_error};

/// `pg_config --bindir` when it holds the server, else the newest `/usr/lib/postgresql/*/bin`.
pub(super) fn find_bin_dir() -> Result<PathBuf, LocalPgError> {
    let has_server = |dir: &Path| dir.join("postgres").is_file() && dir.join("initdb").is_file();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && has_server(&dir) {
            return Ok(dir);
        }
    }
    let versions = fs::read_dir("/usr/lib/postgresql").into_iter().flatten().flatten();
    versions
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
        .ok_or(LocalPgError::NotInstalled)
}

/// `(uid, gid)` of the `postgres` system user, from `/etc/passwd`.
pub(super) fn postgres_user() -> Result<(u32, u32), LocalPgError> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(io_error("read /etc/passwd"))?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&"postgres"))
        .and_then(|fields| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
        .ok_or(LocalPgError::NoPostgresUser)
}

pub(super) fn free_port() -> Result<u16, LocalPgError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io_error("find a free TCP port"))?;
    let port = listener.local_addr().map_err(io_error("find a free TCP port"))?;
    Ok(port.port())
}

/// Lets other users (the `postgres` user) traverse every ancestor of `dir`, without granting
/// them the right to list or read it.
pub(super) fn make_parents_traversable(dir: &Path) -> Result<(), LocalPgError> {
    for parent in dir.ancestors().skip(1) {
        let Ok(meta) = fs::metadata(parent) else {
            continue;
        };
        let mode = meta.permissions().mode();
        if mode & 0o001 == 0 {
            fs::set_permissions(parent, fs::Permissions::from_mode(mode | 0o001))
                .map_err(io_error(format!("make {} traversable", parent.display())))?;
        }
    }
    Ok(())
}

pub(super) fn chown_all(path: &Path, uid: u32, gid: u32) -> Result<(), LocalPgError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(io_error(format!("give {} to the postgres user", path.display())))?;
    if fs::symlink_metadata(path).map(|m| m.is_dir()).unwrap_or(false) {
        let entries = fs::read_dir(path).map_err(io_error(format!("list {}", path.display())))?;
        for entry in entries.flatten() {
            chown_all(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// The last lines of a log, for error messages.
pub(super) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Writes a file only its owner can read (mode 0600), owned by `owner` when given.
pub(super) fn write_private(path: &Path, text: &str, owner: Option<(u32, u32)>) -> Result<(), LocalPgError> {
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
        file.write_all(text.as_bytes())?;
        // `mode` applies only to a new file; an old one may have been more open.
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
        }
        Ok(())
    };
    write().map_err(io_error(format!("write {}", path.display())))
}

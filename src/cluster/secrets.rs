//! The cluster's secret files: the admin secret (the operator's bearer token), its hash
//! (what a node bundle carries instead), and the session keys (what session tokens are
//! tagged and hashed under), with their formats, creation, checks and rotation.
//!
//! A secret file is created with mode 0600 in the same call that creates it (never
//! written first and restricted after), and never overwritten in place: a rotation
//! writes a new file beside it and renames it over. A file that exists but is empty,
//! short or malformed is an error naming the file, never a silently disabled feature.
//! Nothing here prints a secret: errors name files, `Debug` prints no key.

use crate::api::AdminKey;
use crate::limits;
use anyhow::{bail, Context, Result};
use base64::Engine;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The admin secret of a cluster directory: the operator's bearer token.
pub fn admin_secret_path(dir: &Path) -> PathBuf {
    dir.join("tls").join("admin.secret")
}

/// The hash of the admin secret: all a node needs to check the operator's token.
pub fn admin_hash_path(dir: &Path) -> PathBuf {
    dir.join("tls").join("admin.hash")
}

/// The cluster's session keys: what session tokens are tagged and hashed under.
pub fn session_secret_path(dir: &Path) -> PathBuf {
    dir.join("tls").join("session.secret")
}

fn base64url() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// A new random secret of `SECRET_BYTES_MIN` bytes, as base64url text.
fn random_secret() -> String {
    let bytes: [u8; limits::SECRET_BYTES_MIN] = rand::random();
    base64url().encode(bytes)
}

/// Creates `path` holding `text`, readable by its owner only from the first moment
/// (`create_new` with mode 0600 in one call); refuses if the file exists.
pub fn create_secret_file(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the secret file {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write the secret file {}", path.display()))
}

/// Replaces `path` with `text` through a new 0600 file renamed over it.
fn replace_secret_file(path: &Path, text: &str) -> Result<()> {
    let temporary = path.with_extension("new");
    let _ = std::fs::remove_file(&temporary);
    create_secret_file(&temporary, text)?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// Reads a secret file, at most `SECRET_FILE_BYTES_MAX` of it; `None` if it does not
/// exist.
fn read_secret_file(path: &Path) -> Result<Option<String>> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut text = String::new();
    file.take(limits::SECRET_FILE_BYTES_MAX as u64 + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {} (it must be UTF-8 text)", path.display()))?;
    if text.len() > limits::SECRET_FILE_BYTES_MAX {
        bail!(
            "{} is longer than {} bytes; it is not a secret file",
            path.display(),
            limits::SECRET_FILE_BYTES_MAX
        );
    }
    Ok(Some(text))
}

/// Checks that `text` is base64url of at least `SECRET_BYTES_MIN` bytes.
fn check_secret_text(path: &Path, text: &str) -> Result<()> {
    let bytes = base64url().decode(text).map_err(|_| {
        anyhow::anyhow!(
            "{} must hold base64url text (no padding); regenerate it with `cartwheel init`",
            path.display()
        )
    })?;
    if bytes.len() < limits::SECRET_BYTES_MIN {
        bail!(
            "{} holds a secret of {} bytes; a secret must have at least {} (random) bytes",
            path.display(),
            bytes.len(),
            limits::SECRET_BYTES_MIN
        );
    }
    Ok(())
}

/// The admin secret (the operator's bearer token) of a cluster directory: refused if
/// missing, empty or shorter than `SECRET_BYTES_MIN` bytes.
pub fn load_admin_secret(dir: &Path) -> Result<String> {
    let path = admin_secret_path(dir);
    let text = read_secret_file(&path)?
        .with_context(|| format!("cannot read the admin secret {}", path.display()))?;
    let text = text.trim();
    check_secret_text(&path, text)?;
    Ok(text.to_string())
}

/// What a node checks the operator's token with: from `admin.secret` when the
/// directory holds it (a local cluster), else from `admin.hash` (a node bundle); `None`
/// when there is neither (the admin endpoints are off). A file that is present but
/// malformed or short is an error naming it.
pub fn load_admin_key(dir: &Path) -> Result<Option<AdminKey>> {
    if admin_secret_path(dir).exists() {
        return Ok(Some(AdminKey::from_secret(&load_admin_secret(dir)?)));
    }
    let path = admin_hash_path(dir);
    let Some(text) = read_secret_file(&path)? else {
        return Ok(None);
    };
    AdminKey::from_hex(text.trim())
        .map(Some)
        .with_context(|| format!("{} must hold 64 hexadecimal digits", path.display()))
}

/// One session key: its id (carried by the tokens it issues) and its 32 bytes.
pub type SessionKey = (u8, [u8; 32]);

/// Parses a session key file: one key a line, newest first, each `<id> <base64url>`;
/// a line with only the base64url (the format before rotation) is key id 0. Blank
/// lines and lines starting with `#` are skipped. At least one key, at most
/// `SESSION_KEYS_MAX`, ids distinct, each key exactly 32 bytes.
pub fn parse_session_keys(path: &Path, text: &str) -> Result<Vec<SessionKey>> {
    let mut keys: Vec<SessionKey> = Vec::new();
    let lines = text
        .lines()
        .map(str::trim)
        .enumerate()
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'));
    for (index, line) in lines {
        let at = || format!("{} line {}", path.display(), index + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        let (id, encoded) = match words.as_slice() {
            [encoded] => (0u8, *encoded),
            [id, encoded] => {
                let id = id
                    .parse::<u8>()
                    .with_context(|| format!("{}: the key id must be 0 to 255", at()))?;
                (id, *encoded)
            }
            _ => bail!("{}: expected `<key id> <base64url key>`", at()),
        };
        let bytes = base64url()
            .decode(encoded)
            .map_err(|_| anyhow::anyhow!("{}: the key is not base64url", at()))?;
        let key = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            anyhow::anyhow!(
                "{}: a session key must be exactly 32 bytes, this one is {}",
                at(),
                bytes.len()
            )
        })?;
        if keys.iter().any(|(seen, _)| *seen == id) {
            bail!("{}: key id {id} is listed twice", at());
        }
        if keys.len() == limits::SESSION_KEYS_MAX {
            bail!(
                "{} holds more than {} keys; remove the oldest (last) lines",
                path.display(),
                limits::SESSION_KEYS_MAX
            );
        }
        keys.push((id, key));
    }
    if keys.is_empty() {
        bail!(
            "{} holds no session key; regenerate it with `cartwheel init`",
            path.display()
        );
    }
    Ok(keys)
}

/// The text of a session key file holding `keys` (newest first).
pub fn render_session_keys(keys: &[SessionKey]) -> String {
    let mut text = String::from(
        "# cartwheel session keys, newest first (it issues tokens): <key id> <base64url>\n",
    );
    for (id, key) in keys {
        text += &format!("{id} {}\n", base64url().encode(key));
    }
    text
}

/// Every session key of a cluster directory (or node bundle), newest first: the first
/// issues tokens, all validate them. Refused if missing, empty or malformed.
pub fn load_session_secrets(dir: &Path) -> Result<Vec<SessionKey>> {
    let path = session_secret_path(dir);
    let text = read_secret_file(&path)?
        .with_context(|| format!("cannot read the session secret {}", path.display()))?;
    parse_session_keys(&path, &text)
}

/// The session keys when the file exists (`None` when it does not: the session API is
/// off); a file that exists but is empty, short or malformed is an error naming it.
pub fn load_session_secrets_if_any(dir: &Path) -> Result<Option<Vec<SessionKey>>> {
    if !session_secret_path(dir).exists() {
        return Ok(None);
    }
    load_session_secrets(dir).map(Some)
}

/// The newest session key: the one tokens are issued under.
pub fn load_session_secret(dir: &Path) -> Result<[u8; 32]> {
    let keys = load_session_secrets(dir)?;
    Ok(keys[0].1)
}

/// Adds a new random session key in front of the existing ones (it issues tokens from
/// the next start of each node; the older keys still validate theirs); returns its id.
pub fn rotate_session_secret(dir: &Path) -> Result<u8> {
    let mut keys = load_session_secrets(dir)?;
    if keys.len() == limits::SESSION_KEYS_MAX {
        bail!(
            "{} already holds {} keys; remove the oldest (last) line first",
            session_secret_path(dir).display(),
            limits::SESSION_KEYS_MAX
        );
    }
    let id = (1..=u8::MAX)
        .map(|step| keys[0].0.wrapping_add(step))
        .find(|id| keys.iter().all(|(used, _)| used != id))
        .context("no free key id")?;
    keys.insert(0, (id, rand::random()));
    replace_secret_file(&session_secret_path(dir), &render_session_keys(&keys))?;
    Ok(id)
}

/// Creates the admin and session secrets of `dir` unless present. A new session file
/// holds one key in the format before rotation (a bare line, key id 0), so a node of
/// an earlier build can still read it.
pub fn ensure_secrets(dir: &Path) -> Result<()> {
    for path in [admin_secret_path(dir), session_secret_path(dir)] {
        if !path.exists() {
            create_secret_file(&path, &random_secret())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

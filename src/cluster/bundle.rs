//! Node bundles: what one node of a cluster needs to run on its own machine, written
//! from the cluster directory `cartwheel init` made, and nothing more.
//!
//! A bundle `OUT/<node>` holds `tls/ca.pem` (to check peers), the node's own
//! certificate and private key, the session keys, `tls/admin.hash` (to check the
//! operator's token) and a copy of the topology. It never holds the CA's private key
//! (which mints node identities) nor the admin secret (which acts as the operator):
//! `cartwheel node --dir OUT/<node>` runs from it, and a stolen bundle is one node's
//! identity, not the cluster's.

use super::secrets::{
    admin_hash_path, create_secret_file, load_admin_secret, load_session_secrets,
    session_secret_path,
};
use crate::api::AdminKey;
use crate::config::Settings;
use crate::ids::NodeId;
use crate::transport::NodeTls;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The file a bundle's copy of the topology is written to.
pub const BUNDLE_TOPOLOGY_FILE: &str = "topology.toml";

/// Writes one bundle per topology node under `out` from the cluster directory `dir`
/// (whose CA has issued every node's certificate, `ensure_certificates`); refuses to
/// overwrite an existing bundle. Returns the bundle directories.
pub fn write_bundles(
    dir: &Path,
    topology: &Path,
    settings: &Settings,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let admin = AdminKey::from_secret(&load_admin_secret(dir)?);
    // Checked once here, then copied as it is (a file in the format of an earlier
    // build stays readable by that build).
    load_session_secrets(dir)?;
    let session = std::fs::read_to_string(session_secret_path(dir))
        .with_context(|| format!("cannot read {}", session_secret_path(dir).display()))?;
    let mut written = Vec::new();
    for (node, _) in settings.topology.nodes() {
        written.push(write_bundle(dir, topology, out, node, &admin, &session)?);
    }
    Ok(written)
}

fn write_bundle(
    dir: &Path,
    topology: &Path,
    out: &Path,
    node: &NodeId,
    admin: &AdminKey,
    session: &str,
) -> Result<PathBuf> {
    let bundle = out.join(node.as_str());
    private_dir(&bundle)?;
    let tls = bundle.join("tls");
    private_dir(&tls)?;
    NodeTls::load(&dir.join("tls"), node)
        .and_then(|node_tls| node_tls.write_files(&tls, node))
        .with_context(|| {
            format!(
                "cannot write the certificate of {node} to {}",
                tls.display()
            )
        })?;
    create_secret_file(&admin_hash_path(&bundle), &admin.to_hex())?;
    create_secret_file(&session_secret_path(&bundle), session)?;
    let copy = bundle.join(BUNDLE_TOPOLOGY_FILE);
    std::fs::copy(topology, &copy)
        .with_context(|| format!("cannot copy {} to {}", topology.display(), copy.display()))?;
    Ok(bundle)
}

/// Creates `path` readable by its owner only; refuses if it exists.
fn private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .with_context(|| {
            format!(
                "cannot create {} (a bundle is never overwritten)",
                path.display()
            )
        })
}

#[cfg(test)]
mod tests;

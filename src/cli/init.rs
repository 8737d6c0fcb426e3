//! `cartwheel init`: a cluster's CA, secrets and node certificates, node bundles made
//! from them, or one more session key. Refuses to overwrite an existing CA.

use super::{settings, DEFAULT_TOPOLOGY};
use anyhow::{bail, Result};
use cartwheel::cluster;
use cartwheel::config::TuningFlags;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct InitArgs {
    /// Cluster directory (certificates and secrets go to DIR/tls).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value = DEFAULT_TOPOLOGY)]
    topology: PathBuf,
    /// Also write one bundle per topology node to OUT/<node>: what that node needs
    /// to run (`cartwheel node --dir OUT/<node>`), without the CA's private key or
    /// the admin secret (only its hash).
    #[arg(long, value_name = "OUT")]
    bundles: Option<PathBuf>,
    /// Add a new session key in front of DIR's existing ones (it issues tokens
    /// after each node's next start; the older keys still validate theirs).
    #[arg(long, conflicts_with = "bundles")]
    rotate_session_secret: bool,
    /// Issue a certificate for the client-facing listeners (`--http-tls-cert`,
    /// `--resp-tls-cert`) under DIR's cluster CA: writes PREFIX.pem (chain) and
    /// PREFIX.key; clients trust DIR/tls/ca.pem.
    #[arg(long, value_name = "PREFIX", requires = "hosts", conflicts_with_all = ["bundles", "rotate_session_secret"])]
    edge_cert: Option<PathBuf>,
    /// The names clients reach the listeners by (IP addresses or DNS names), comma
    /// separated; with --edge-cert.
    #[arg(long, value_delimiter = ',', requires = "edge_cert")]
    hosts: Vec<String>,
}

pub fn run(args: InitArgs) -> Result<()> {
    let dir = &args.dir;
    if let Some(prefix) = &args.edge_cert {
        let with = |suffix: &str| {
            let mut path = prefix.clone().into_os_string();
            path.push(suffix);
            PathBuf::from(path)
        };
        let (cert, key) = (with(".pem"), with(".key"));
        cartwheel::transport::tls::write_edge_certificate(
            &dir.join("tls"),
            &args.hosts,
            &cert,
            &key,
        )?;
        println!(
            "wrote {} and {} for {} (signed by {}; clients trust that CA)",
            cert.display(),
            key.display(),
            args.hosts.join(", "),
            dir.join("tls").join("ca.pem").display()
        );
        return Ok(());
    }
    if args.rotate_session_secret {
        let id = cluster::rotate_session_secret(dir)?;
        println!(
            "added session key {id} to {}; restart each node (or copy the file into its bundle first) to issue tokens under it",
            cluster::session_secret_path(dir).display()
        );
        return Ok(());
    }
    let settings = settings(&args.topology, &TuningFlags::default())?;
    if let Some(out) = &args.bundles {
        let tls = cluster::ensure_certificates(dir, &settings)?;
        let written = cluster::bundle::write_bundles(dir, &args.topology, &settings, out)?;
        println!(
            "wrote {} node bundles to {} (from the CA in {}; the bundles hold no CA key and no admin secret)",
            written.len(),
            out.display(),
            tls.display()
        );
        return Ok(());
    }
    if dir.join("tls").join("ca.pem").exists() {
        bail!(
            "{} already holds a cluster CA; refusing to overwrite it",
            dir.join("tls").display()
        );
    }
    let tls = cluster::ensure_certificates(dir, &settings)?;
    println!(
        "created the cluster CA and {} node certificates in {}",
        settings.topology.nodes().count(),
        tls.display()
    );
    Ok(())
}

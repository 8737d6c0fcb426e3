use super::*;
use std::os::unix::fs::PermissionsExt;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A cluster directory with its `tls` folder and nothing in it.
fn empty_cluster() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tls")).unwrap();
    dir
}

#[test]
fn secrets_are_created_owner_only_and_long_enough() {
    let dir = empty_cluster();
    ensure_secrets(dir.path()).unwrap();
    for path in [
        admin_secret_path(dir.path()),
        session_secret_path(dir.path()),
    ] {
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    let admin = load_admin_secret(dir.path()).unwrap();
    assert!(base64url().decode(&admin).unwrap().len() >= limits::SECRET_BYTES_MIN);
    // A new session file is one bare line: what a build before key ids reads.
    let text = std::fs::read_to_string(session_secret_path(dir.path())).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert_eq!(load_session_secrets(dir.path()).unwrap()[0].0, 0);
    // Existing secrets are kept.
    ensure_secrets(dir.path()).unwrap();
    assert_eq!(load_admin_secret(dir.path()).unwrap(), admin);
}

#[test]
fn creating_a_secret_file_never_replaces_one_nor_widens_its_mode() {
    let dir = empty_cluster();
    let path = dir.path().join("tls").join("x.secret");
    create_secret_file(&path, "first").unwrap();
    assert_eq!(mode(&path), 0o600);
    assert!(create_secret_file(&path, "second").is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "first");
}

#[test]
fn empty_short_or_malformed_secrets_are_refused_naming_the_file() {
    let dir = empty_cluster();
    let admin = admin_secret_path(dir.path());
    let session = session_secret_path(dir.path());
    // Missing files turn their feature off; they are not errors at start.
    assert!(load_admin_key(dir.path()).unwrap().is_none());
    assert!(load_session_secrets_if_any(dir.path()).unwrap().is_none());
    let short = base64url().encode([7u8; 16]);
    for text in ["", "\n", short.as_str(), "not base64!"] {
        std::fs::write(&admin, text).unwrap();
        std::fs::write(&session, text).unwrap();
        let error = load_admin_key(dir.path()).unwrap_err().to_string();
        assert!(error.contains("admin.secret"), "{text:?}: {error}");
        let error = load_session_secrets_if_any(dir.path())
            .unwrap_err()
            .to_string();
        assert!(error.contains("session.secret"), "{text:?}: {error}");
    }
    std::fs::remove_file(&admin).unwrap();
    std::fs::write(admin_hash_path(dir.path()), "abc").unwrap();
    let error = load_admin_key(dir.path()).unwrap_err().to_string();
    assert!(error.contains("admin.hash"), "{error}");
}

#[test]
fn the_session_file_format_reads_the_old_line_and_refuses_nonsense() {
    let path = Path::new("session.secret");
    let key = |byte: u8| base64url().encode([byte; 32]);
    // Today's file: one bare line is key id 0.
    assert_eq!(
        parse_session_keys(path, &format!("{}\n", key(1))).unwrap(),
        vec![(0, [1; 32])]
    );
    let rotated = format!("# comment\n\n2 {}\n  0 {}\n", key(2), key(1));
    assert_eq!(
        parse_session_keys(path, &rotated).unwrap(),
        vec![(2, [2; 32]), (0, [1; 32])]
    );
    let round = render_session_keys(&[(5, [5; 32]), (4, [4; 32])]);
    assert_eq!(
        parse_session_keys(path, &round).unwrap(),
        vec![(5, [5; 32]), (4, [4; 32])]
    );
    for (text, says) in [
        (format!("1 {}\n1 {}\n", key(1), key(2)), "twice"),
        (format!("256 {}\n", key(1)), "0 to 255"),
        (format!("1 {} extra\n", key(1)), "expected"),
        (
            format!("1 {}\n", base64url().encode([1u8; 31])),
            "exactly 32",
        ),
        ("# only a comment\n".to_string(), "no session key"),
    ] {
        let error = parse_session_keys(path, &text).unwrap_err().to_string();
        assert!(
            error.contains(says) && error.contains("session.secret"),
            "{error}"
        );
    }
    let many: String = (0..=limits::SESSION_KEYS_MAX as u8)
        .map(|id| format!("{id} {}\n", key(id)))
        .collect();
    let error = parse_session_keys(path, &many).unwrap_err().to_string();
    assert!(error.contains("more than"), "{error}");
}

#[test]
fn rotation_adds_a_newest_key_and_keeps_the_old_ones() {
    let dir = empty_cluster();
    ensure_secrets(dir.path()).unwrap();
    let before = load_session_secrets(dir.path()).unwrap();
    let id = rotate_session_secret(dir.path()).unwrap();
    assert_eq!(id, 1);
    let after = load_session_secrets(dir.path()).unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].0, 1);
    assert_ne!(after[0].1, before[0].1);
    assert_eq!(after[1..], before[..]);
    assert_eq!(load_session_secret(dir.path()).unwrap(), after[0].1);
    assert_eq!(mode(&session_secret_path(dir.path())), 0o600);
    for _ in 2..limits::SESSION_KEYS_MAX {
        rotate_session_secret(dir.path()).unwrap();
    }
    let error = rotate_session_secret(dir.path()).unwrap_err().to_string();
    assert!(error.contains("oldest"), "{error}");
    assert_eq!(
        load_session_secrets(dir.path()).unwrap().len(),
        limits::SESSION_KEYS_MAX
    );
}

#[test]
fn an_admin_key_checks_the_secret_and_prints_nothing_of_it() {
    let secret = random_secret();
    let key = AdminKey::from_secret(&secret);
    assert!(key.verify(&secret));
    assert!(!key.verify(""));
    assert_eq!(AdminKey::from_hex(&key.to_hex()), Some(key.clone()));
    let printed = format!("{key:?}");
    assert!(
        !printed.contains(&key.to_hex()) && !printed.contains(&secret),
        "{printed}"
    );
}

//! The codes are the documented ones: `openapi.yaml`'s `Error.code` enum lists exactly
//! `ErrorCode::ALL`, README's error tables name no code that does not exist, and each
//! code goes on the wire as its name.

use super::*;
use std::collections::BTreeSet;

fn repository_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// The `enum:` list under `components.schemas.Error.properties.code` of the OpenAPI
/// document (read line by line: the file's layout is ours).
fn openapi_codes(yaml: &str) -> Vec<String> {
    let mut lines = yaml
        .lines()
        .skip_while(|line| line.trim_end() != "  schemas:");
    let mut lines = lines
        .by_ref()
        .skip_while(|line| line.trim_end() != "    Error:")
        .skip_while(|line| line.trim() != "code:")
        .skip_while(|line| line.trim() != "enum:");
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let indent = header.len() - header.trim_start().len();
    lines
        .take_while(|line| {
            let trimmed = line.trim_start();
            line.len() - trimmed.len() >= indent && trimmed.starts_with("- ")
        })
        .map(|line| line.trim_start()[2..].trim().to_string())
        .collect()
}

/// The codes README's error tables (`| code | status | when |`) name in their first
/// column.
fn readme_codes(markdown: &str) -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    let mut in_table = false;
    for line in markdown.lines() {
        let line = line.trim();
        if line.starts_with("| code | status |") {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if !in_table {
            continue;
        }
        let first = line.split('|').nth(1).unwrap_or("");
        for part in first.split('`').skip(1).step_by(2) {
            if !part.chars().all(|c| c.is_ascii_lowercase() || c == '_') || part.is_empty() {
                continue;
            }
            codes.insert(part.to_string());
        }
    }
    codes
}

fn all_codes() -> BTreeSet<String> {
    ErrorCode::ALL
        .iter()
        .map(|code| code.as_str().to_string())
        .collect()
}

#[test]
fn openapi_lists_exactly_the_codes_the_api_answers() {
    let listed = openapi_codes(&repository_file("openapi.yaml"));
    assert!(
        listed.len() > 10,
        "the Error.code enum was not found: {listed:?}"
    );
    let documented: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(
        documented.len(),
        listed.len(),
        "a code is listed twice: {listed:?}"
    );
    let codes = all_codes();
    let undocumented: Vec<_> = codes.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&codes).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "missing from openapi.yaml's Error.code enum: {undocumented:?}; \
         listed there but not an ErrorCode: {unknown:?}"
    );
}

#[test]
fn readme_error_tables_name_every_code_and_only_real_ones() {
    let named = readme_codes(&repository_file("README.md"));
    assert!(
        named.len() > 10,
        "README's error tables were not found: {named:?}"
    );
    let codes = all_codes();
    let unknown: Vec<_> = named.difference(&codes).collect();
    assert!(
        unknown.is_empty(),
        "README names codes that do not exist: {unknown:?}"
    );
    let missing: Vec<_> = codes.difference(&named).collect();
    assert!(
        missing.is_empty(),
        "README's error tables do not name: {missing:?}"
    );
}

#[test]
fn codes_are_unique_snake_case_and_serialize_as_their_names() {
    assert_eq!(
        all_codes().len(),
        ErrorCode::ALL.len(),
        "a code is used twice"
    );
    for code in ErrorCode::ALL {
        let name = code.as_str();
        assert!(
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && !name.starts_with('_')
                && !name.ends_with('_'),
            "{name}"
        );
        assert_eq!(
            serde_json::to_value(code).expect("a code serializes"),
            serde_json::Value::String(name.to_string())
        );
        assert_eq!(code.to_string(), name);
    }
}

#[test]
fn token_rejections_keep_their_codes() {
    use Rejection::*;
    for rejection in [Missing, Malformed, Unknown, Expired, Revoked, Reused] {
        assert_eq!(ErrorCode::from(rejection).as_str(), rejection.code());
    }
}

#[test]
fn the_scanners_find_what_they_look_for() {
    let yaml = "paths: {}\ncomponents:\n  schemas:\n    Error:\n      properties:\n        code:\n          type: string\n          enum:\n            - no_route\n            - overloaded\n        message:\n          type: string\n";
    assert_eq!(openapi_codes(yaml), ["no_route", "overloaded"]);
    let markdown = "| code | status | when |\n| --- | --- | --- |\n| `a_b` / `c` | 400 | uses `not_me` |\n\n| `d` | x |\n";
    assert_eq!(
        readme_codes(markdown),
        BTreeSet::from(["a_b".to_string(), "c".to_string()])
    );
}

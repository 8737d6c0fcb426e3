//! The layer order of the crate, written once, and the test that holds the source to
//! it: a module may import (`crate::<module>`) only modules in layers below its own;
//! modules that share a layer are independent of each other. Within a folder, the
//! files (and subfolders) of one module must not import each other in a cycle; none does.
//!
//! It reads the source files with `std::fs`, so it sees what the compiler sees minus
//! test code (`tests.rs`, `tests/` folders and
//! `#[cfg(test)]` items), which may reach any layer to build its fixtures. It must
//! never be compiled outside tests. Unit tests have one layout: `<module>/tests.rs`
//! (or a `tests/` folder), never an inline `mod tests { .. }`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The crate's top-level modules, lowest layer first. A module imports only from the
/// layers before its own; a new module must be placed here.
const LAYERS: &[&[&str]] = &[
    &["ids", "limits", "stats"],
    // Pure cores and the store.
    &["clock", "ring", "storage", "antientropy"],
    &["membership", "crdt"],
    &["object"],
    // The change feed a replica records (a pure log behind a lock).
    &["feed"],
    &["wire"],
    &["transport"],
    // The coordinator's dispatch seam names the transport's errors.
    &["coordinator"],
    &["config"],
    &["replica", "session"],
    // The shared runtime of a node (cluster view, gossip, data clock, repair, ...).
    &["runtime"],
    &["handoff"],
    &["peer"],
    // Caps, accept loop and lingering close under both client-facing listeners.
    &["edge"],
    &["api", "resp"],
    // The composition root: starts and stops the node.
    &["node"],
    // Tools above the node.
    &["cluster"],
    &["sim", "bench"],
];

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The modules `lib.rs` declares (`pub mod x;`, `mod x;`), whatever attributes gate
/// them, but for this test itself.
fn declared_modules(root: &Path) -> Vec<String> {
    let lib = fs::read_to_string(root.join("lib.rs")).expect("lib.rs is readable");
    lib.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("mod "))?;
            Some(rest.strip_suffix(';')?.trim().to_string())
        })
        .filter(|module| module != "layers")
        .collect()
}

fn is_test_path(path: &Path) -> bool {
    // Only the part inside `src/`: a checkout under a folder named `tests` is not test code.
    let root = source_root();
    let path = path.strip_prefix(&root).unwrap_or(path);
    path.iter().any(|part| {
        let part = part.to_string_lossy();
        part.strip_suffix(".rs").unwrap_or(&part) == "tests"
    })
}

/// Every path under `path`, test code included.
fn all_files(path: &Path, into: &mut Vec<PathBuf>) {
    into.push(path.to_path_buf());
    if path.is_dir() {
        for entry in fs::read_dir(path).expect("source folder is readable") {
            all_files(&entry.expect("folder entry").path(), into);
        }
    }
}

/// Every non-test `.rs` file under `path` (a file or a folder).
fn source_files(path: &Path, into: &mut Vec<PathBuf>) {
    if is_test_path(path) {
        return;
    }
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = fs::read_dir(path)
            .expect("source folder is readable")
            .map(|entry| entry.expect("folder entry").path())
            .collect();
        entries.sort();
        for entry in entries {
            source_files(&entry, into);
        }
    } else if path.extension().is_some_and(|ext| ext == "rs") {
        into.push(path.to_path_buf());
    }
}

/// The code of a file without comments and `#[cfg(test)]` items.
fn shipped_code(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            skip_item(&mut lines);
            continue;
        }
        let line = line.split("//").next().unwrap_or("");
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// Skips one item: up to its closing brace at its own indentation, or its `;`.
fn skip_item<'a>(lines: &mut impl Iterator<Item = &'a str>) {
    let Some(first) = lines.next() else { return };
    if !first.trim_end().ends_with('{') {
        if !first.trim_end().ends_with(';') {
            for line in lines.by_ref() {
                if line.trim_end().ends_with(';') {
                    break;
                }
            }
        }
        return;
    }
    let indent = &first[..first.len() - first.trim_start().len()];
    let close = format!("{indent}}}");
    for line in lines.by_ref() {
        if line.trim_end() == close {
            break;
        }
    }
}

/// The names `prefix` is followed by in `code` (`crate::` gives `node`, `api`, ...).
fn names_after(code: &str, prefix: &str) -> BTreeSet<String> {
    code.match_indices(prefix)
        .filter(|(at, _)| {
            // `crate::x` but not `foo_crate::x`.
            let before = code[..*at].chars().next_back();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .map(|(at, _)| {
            code[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn module_path(root: &Path, module: &str) -> Option<PathBuf> {
    [root.join(module), root.join(format!("{module}.rs"))]
        .into_iter()
        .find(|path| path.exists())
}

#[test]
fn every_module_imports_only_layers_below_its_own() {
    let root = source_root();
    let mut violations = Vec::new();
    for module in declared_modules(&root) {
        let Some(rank) = layer_of(&module) else {
            violations.push(format!("module `{module}` is in no layer of LAYERS"));
            continue;
        };
        let mut files = Vec::new();
        source_files(
            &module_path(&root, &module).expect("module source"),
            &mut files,
        );
        for file in files {
            let code = shipped_code(&fs::read_to_string(&file).expect("readable"));
            for used in names_after(&code, "crate::") {
                if used == module {
                    continue;
                }
                match layer_of(&used) {
                    Some(used_rank) if used_rank < rank => {}
                    _ => violations.push(format!(
                        "{} (layer {rank}, `{module}`) imports `crate::{used}` (layer {:?})",
                        file.strip_prefix(&root).unwrap_or(&file).display(),
                        layer_of(&used),
                    )),
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// The child modules of a folder: its files other than `mod.rs`, and its subfolders,
/// each with every path that holds its code (`x.rs` and the `x/` beside it are one
/// module: its code in the file, its children in the folder).
fn children(folder: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in fs::read_dir(folder).expect("source folder is readable") {
        let path = entry.expect("folder entry").path();
        if is_test_path(&path) {
            continue;
        }
        let Some(name) = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().to_string())
        else {
            continue;
        };
        let module = path.is_dir() || path.extension().is_some_and(|ext| ext == "rs");
        if module && name != "mod" && name != "lib" && name != "main" {
            modules.entry(name).or_default().push(path);
        }
    }
    modules
}

/// The siblings each child of `folder` names, as `super::x` (from a file beside
/// it), `super::super::x` (from one folder down) or `crate::<folder's path>::x`.
fn sibling_edges(root: &Path, folder: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let siblings = children(folder);
    let relative = folder.strip_prefix(root).expect("under src");
    let path: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().to_string())
        .collect();
    let absolute = format!("crate::{}", path.join("::"));
    let mut edges = BTreeMap::new();
    for (name, paths) in &siblings {
        let mut files = Vec::new();
        for path in paths {
            source_files(path, &mut files);
        }
        let mut named = BTreeSet::new();
        for file in files {
            let code = shipped_code(&fs::read_to_string(&file).expect("readable"));
            let depth = file
                .strip_prefix(folder)
                .expect("under folder")
                .iter()
                .count();
            let mut prefix = "super::".repeat(depth);
            if file.file_stem().is_some_and(|stem| stem == "mod") {
                prefix = "super::".repeat(depth - 1);
            }
            if !prefix.is_empty() {
                named.extend(names_after(&code, &prefix));
            }
            if !path.is_empty() {
                named.extend(names_after(&code, &format!("{absolute}::")));
            }
        }
        named.retain(|other| other != name && siblings.contains_key(other));
        edges.insert(name.clone(), named);
    }
    edges
}

/// A cycle in `edges`, if there is one, as the names along it.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|on| on == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut done, &mut Vec::new()))
}

fn folders(path: &Path, into: &mut Vec<PathBuf>) {
    if path.is_dir() && !is_test_path(path) {
        into.push(path.to_path_buf());
        for entry in fs::read_dir(path).expect("source folder is readable") {
            folders(&entry.expect("folder entry").path(), into);
        }
    }
}

/// No folder has a cycle left: the last two (`bench/systems`, where the HTTP client and
/// the pipelined one shared `Answer`, and `sim`, where the fault schedule owned the
/// clients' `Routes`) were broken by giving the shared type a file of its own. Any new
/// cycle fails here, named file by file.
#[test]
fn no_folder_has_an_import_cycle_between_its_files() {
    let root = source_root();
    let mut all = Vec::new();
    for module in declared_modules(&root) {
        if let Some(path) = module_path(&root, &module) {
            folders(&path, &mut all);
        }
    }
    let mut failures = Vec::new();
    for folder in &all {
        let relative = folder.strip_prefix(&root).unwrap_or(folder);
        let relative = relative.to_string_lossy().replace('\\', "/");
        if let Some(cycle) = find_cycle(&sibling_edges(&root, folder)) {
            failures.push(format!("{relative}: {}", cycle.join(" -> ")));
        }
    }
    assert!(
        failures.is_empty(),
        "import cycles:\n{}",
        failures.join("\n")
    );
}

/// The one test layout: a module's unit tests live in `<module>/tests.rs` (or a
/// `tests/` folder) declared as `#[cfg(test)] mod tests;`, never inline.
fn inline_test_modules(code: &str) -> bool {
    let mut after_cfg_test = false;
    for line in code.lines() {
        let line = line.trim();
        if after_cfg_test && line.starts_with("mod ") && line.ends_with('{') {
            return true;
        }
        after_cfg_test = line == "#[cfg(test)]";
    }
    false
}

#[test]
fn unit_tests_live_in_their_own_files() {
    let root = source_root();
    let mut files = Vec::new();
    source_files(&root, &mut files);
    let inline: Vec<String> = files
        .iter()
        .filter(|file| file.file_name().is_some_and(|name| name != "layers.rs"))
        .filter(|file| inline_test_modules(&fs::read_to_string(file).expect("readable")))
        .map(|file| {
            file.strip_prefix(&root)
                .unwrap_or(file)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        inline.is_empty(),
        "inline test modules (move them to <module>/tests.rs): {inline:?}"
    );
    let mut everything = Vec::new();
    all_files(&root, &mut everything);
    let stray: Vec<String> = everything
        .iter()
        .filter_map(|file| file.file_stem()?.to_str().map(String::from))
        .filter(|stem| stem.starts_with("tests_") || stem.ends_with("_tests"))
        .collect();
    assert!(
        stray.is_empty(),
        "test files outside <module>/tests: {stray:?}"
    );
    assert!(inline_test_modules("#[cfg(test)]\nmod tests {\n}\n"));
    assert!(!inline_test_modules("#[cfg(test)]\nmod tests;\n"));
}

#[test]
fn the_checks_see_imports_and_cycles() {
    // The scanners themselves: a missed import would make the tests above pass idly.
    let code = shipped_code(
        "use crate::api::X; // crate::node\n#[cfg(test)]\nmod tests {\n    use crate::sim;\n}\nfn f() { foo_crate::bench(); crate::ring::Ring::new() }\n",
    );
    let names = names_after(&code, "crate::");
    assert_eq!(
        names,
        BTreeSet::from(["api".to_string(), "ring".to_string()])
    );
    let edges = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(
        find_cycle(&edges),
        Some(
            vec!["a", "b", "c", "a"]
                .into_iter()
                .map(String::from)
                .collect()
        )
    );
    // A module's code in `b.rs` and its children in `b/` are one module: an import from
    // `b/c.rs` back to `a` closes the cycle `a -> b -> a`.
    let fixture = tempfile::tempdir().expect("temporary folder");
    let folder = fixture.path().join("m");
    fs::create_dir_all(folder.join("b")).expect("fixture folders");
    fs::write(folder.join("a.rs"), "use super::b::X;\n").expect("fixture file");
    fs::write(folder.join("b.rs"), "pub struct X;\n").expect("fixture file");
    let back = "use super::super::a::Y;\n";
    fs::write(folder.join("b").join("c.rs"), back).expect("fixture file");
    let split = sibling_edges(fixture.path(), &folder);
    assert_eq!(
        find_cycle(&split),
        Some(vec!["a", "b", "a"].into_iter().map(String::from).collect())
    );
    let mut acyclic = edges;
    acyclic.insert("c".to_string(), BTreeSet::new());
    assert_eq!(find_cycle(&acyclic), None);
    for module in ["api", "node", "runtime", "replica", "peer", "handoff"] {
        assert!(layer_of(module).is_some(), "{module}");
    }
    assert!(layer_of("runtime") < layer_of("handoff"));
    assert!(layer_of("handoff") < layer_of("api"));
    assert!(layer_of("replica") < layer_of("runtime"));
}

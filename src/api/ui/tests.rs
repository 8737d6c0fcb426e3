use super::*;
use axum::http::{HeaderMap, StatusCode};

/// The tags of an HTML text (what lies between `<` and `>`), comments left out.
fn tags(html: &str) -> Vec<&str> {
    html.split('<')
        .skip(1)
        .filter_map(|rest| rest.split_once('>').map(|(tag, _)| tag))
        .filter(|tag| !tag.starts_with('!'))
        .collect()
}

/// The value of the attribute `name` in `tag` (`name="value"`), if it has one.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')?;
    Some(&tag[start..start + end])
}

fn header_value(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("an ASCII header")
}

async fn body_text(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body in memory");
    String::from_utf8(bytes.to_vec()).expect("a UTF-8 body")
}

#[test]
fn the_page_loads_its_own_files_and_nothing_else() {
    let mut loaded = Vec::new();
    for tag in tags(INDEX_HTML) {
        let source = if tag.starts_with("script") {
            attribute(tag, "src").expect("no inline script: every script has a src")
        } else if tag.starts_with("link") {
            attribute(tag, "href").expect("a link has an href")
        } else {
            continue;
        };
        if source == "data:," {
            continue;
        }
        let name = source
            .strip_prefix("/ui/")
            .unwrap_or_else(|| panic!("{source} is not under /ui/"));
        assert!(asset_named(name).is_some(), "{source} is not served");
        loaded.push(name);
    }
    for (name, _, _) in ASSETS {
        assert!(loaded.contains(&name), "the page never loads {name}");
    }
}

#[test]
fn the_page_has_no_inline_script_style_or_handler() {
    for tag in tags(INDEX_HTML) {
        assert!(!tag.starts_with("style"), "an inline style sheet: <{tag}>");
        for word in tag.split_whitespace().skip(1) {
            let name = word.split('=').next().unwrap_or_default().to_lowercase();
            assert!(
                name != "style" && !name.starts_with("on"),
                "an inline style or event handler, which the policy blocks: <{tag}>"
            );
        }
    }
    assert!(
        !CONTENT_SECURITY_POLICY.contains("unsafe"),
        "{CONTENT_SECURITY_POLICY}"
    );
}

#[tokio::test]
async fn every_file_is_served_with_its_type_and_the_policy() {
    let mut served = vec![("ui", HTML, INDEX_HTML, index().await.into_response())];
    for (name, content_type, content) in ASSETS {
        served.push((
            name,
            content_type,
            content,
            asset(Path(name.to_string())).await,
        ));
    }
    for (name, content_type, content, response) in served {
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        let headers = response.headers().clone();
        assert_eq!(
            header_value(&headers, header::CONTENT_TYPE),
            content_type,
            "{name}"
        );
        assert!(content_type.starts_with("text/"), "{name}: {content_type}");
        assert_eq!(
            header_value(&headers, header::CACHE_CONTROL),
            "no-cache",
            "{name}"
        );
        assert_eq!(
            header_value(&headers, header::CONTENT_SECURITY_POLICY),
            CONTENT_SECURITY_POLICY,
            "{name}"
        );
        assert_eq!(
            header_value(&headers, header::X_CONTENT_TYPE_OPTIONS),
            "nosniff"
        );
        assert_eq!(body_text(response).await, content, "{name}");
    }
}

#[tokio::test]
async fn other_names_are_not_found() {
    for name in [
        "",
        "index.html",
        "APP.JS",
        "app.js.map",
        "style.css/",
        "../ui.rs",
        "tests.rs",
    ] {
        let response = asset(Path(name.to_string())).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{name:?}");
        assert!(
            body_text(response).await.contains("no_route"),
            "{name:?}: the API's own 404"
        );
    }
}

#[test]
fn the_script_writes_data_as_text_and_talks_only_to_its_node() {
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ] {
        assert!(!APP_JS.contains(sink), "app.js uses {sink}");
    }
    assert!(APP_JS.contains("'/v1/cluster'"), "app.js polls /v1/cluster");
    // The SVG namespace is a name, not an address the page loads.
    let script = APP_JS.replace("'http://www.w3.org/2000/svg'", "");
    for (name, text) in [
        ("index.html", INDEX_HTML),
        ("app.js", script.as_str()),
        ("style.css", STYLE_CSS),
    ] {
        assert!(
            !text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"),
            "{name} names another origin"
        );
    }
    assert!(
        !STYLE_CSS.contains("url(") && !STYLE_CSS.contains("@import"),
        "style.css loads nothing (no web fonts, no images)"
    );
}

/// What tests/integration/ui.rs and operators' scripts read from the page.
#[test]
fn the_page_keeps_its_test_hooks() {
    for id in ["id=\"app\"", "id=\"unmet-banner\"", "data-loaded=\"false\""] {
        assert!(INDEX_HTML.contains(id), "index.html lost {id}");
    }
    for hook in [
        "'data-node'",
        "'data-state'",
        "'data-reachable'",
        "'data-nodes'",
        "'data-loaded'",
    ] {
        assert!(APP_JS.contains(hook), "app.js lost {hook}");
    }
}

//! The OpenAPI document against the routers it is built beside.

use std::collections::BTreeSet;

use super::document;

/// The path literals of every `.route("…", …)` call in `source`, in OpenAPI form (`{*rest}` → `{rest}`).
fn plain_routes(source: &str) -> Vec<String> {
    source
        .match_indices(".route(")
        .filter_map(|(at, _)| {
            let rest = source[at + ".route(".len()..].trim_start();
            let literal = rest.strip_prefix('"')?;
            let end = literal.find('"')?;
            Some(literal[..end].replace("{*", "{"))
        })
        .collect()
}

fn documented() -> BTreeSet<String> {
    document().paths.paths.keys().cloned().collect()
}

#[test]
fn every_route_of_the_routers_is_in_the_document() {
    let paths = documented();
    // Routes added with `routes!` are documented by construction; anything added as a plain axum route
    // must be documented by hand, and this finds the ones that are not.
    let sources = [
        ("http/mod.rs", include_str!("mod.rs")),
        ("blobs/serve.rs", include_str!("../blobs/serve.rs")),
    ];
    let mut plain = 0;
    for (file, source) in sources {
        for route in plain_routes(source) {
            plain += 1;
            assert!(
                paths.contains(&route),
                "{file} routes {route}, which the OpenAPI document does not describe"
            );
        }
    }
    assert!(plain >= 3, "the scan found the plain routes ({plain})");
}

#[test]
fn the_document_covers_the_api_and_its_extensions() {
    let paths = documented();
    for path in [
        "/v1/tenants",
        "/v1/tenants/{id}/tokens",
        "/v1/endpoints/{id}",
        "/v1/endpoints/{id}/secret",
        "/v1/endpoints/{id}/recover",
        "/v1/events",
        "/v1/deliveries/{id}/retry",
        "/v1/jobs/{id}/cancel",
        "/v1/routes/{name}",
        "/v1/blobs/{key}",
        "/api/v0/trigger-event/{eventName}",
        "/webhook-statuses",
        "/metrics",
        "/health",
        "/openapi.json",
        "/async/{route}/{rest}",
    ] {
        assert!(paths.contains(path), "{path} is not in the document");
    }
}

#[test]
fn every_operation_has_a_success_answer_and_the_error_object() {
    let doc = document();
    let json = serde_json::to_value(&doc).expect("the document serializes");
    assert_eq!(json["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    assert!(json["components"]["schemas"]["ErrorBody"].is_object());
    assert!(json["components"]["securitySchemes"]["bearer"].is_object());
    let mut operations = 0;
    for (path, item) in json["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if method == "parameters" {
                continue;
            }
            operations += 1;
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|code| code.starts_with('2')),
                "{method} {path} has no success answer"
            );
            let open = op["security"] == serde_json::json!([{}]);
            if !open {
                assert!(
                    responses.contains_key("401") && responses.contains_key("422"),
                    "{method} {path} does not document the error answers"
                );
            }
        }
    }
    assert!(operations > 50, "{operations} operations");
}

#[test]
fn the_client_calls_only_documented_operations() {
    let json = serde_json::to_value(document()).expect("the document serializes");
    for (method, path) in herald_api::client::OPERATIONS {
        assert!(
            json["paths"][path][method].is_object(),
            "the client calls {method} {path}, which the document does not describe"
        );
    }
}

/// Every `METHOD /path` the README's "API at a glance" table names (`ANY` = the five methods).
fn readme_operations() -> BTreeSet<(String, String)> {
    let readme = include_str!("../../../../README.md");
    let start = readme
        .find("## API at a glance")
        .expect("the README has its API table");
    let table = &readme[start..];
    let table = &table[..table
        .find("\nErrors are always JSON")
        .unwrap_or(table.len())];
    let mut operations = BTreeSet::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = line.split(" | ").next().unwrap_or("");
        for code in first_cell.split('`').skip(1).step_by(2) {
            let Some((method, path)) = code.split_once(' ') else {
                continue;
            };
            let methods: Vec<&str> = match method {
                "ANY" => vec!["get", "post", "put", "patch", "delete"],
                m if m.chars().all(|c| c.is_ascii_uppercase()) => vec![m],
                _ => continue,
            };
            for m in methods {
                operations.insert((m.to_ascii_lowercase(), path.to_string()));
            }
        }
    }
    operations
}

#[test]
fn the_readme_table_lists_exactly_the_documented_operations() {
    let json = serde_json::to_value(document()).expect("the document serializes");
    let mut documented = BTreeSet::new();
    for (path, item) in json["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if method != "parameters" {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    let readme = readme_operations();
    let missing: Vec<_> = documented.difference(&readme).collect();
    let extra: Vec<_> = readme.difference(&documented).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the README's API table and the OpenAPI document disagree: not in the README {missing:?}, \
         not in the document {extra:?}"
    );
}

//! The rules the server detects with (SIREN's built-in pack unless rule folders are
//! configured) and `GET /api/v1/rules`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use siren_core::rules::{LoadOptions, LogSourceMap, RuleDiagnostic, RuleKind, RuleSet};

use crate::AppState;
use crate::auth::{Access, Read};
use crate::error::ApiResult;

/// SIREN's own rule pack (`rules/` at the root), built into the binary.
static BUILTIN_RULES: include_dir::Dir<'_> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/../rules");

/// Loads SIREN's built-in rule pack, with the built-in mapping or the one `logsources` names.
/// Per-rule problems are returned, not fatal.
pub fn builtin_rules(
    logsources: Option<&std::path::Path>,
) -> anyhow::Result<(RuleSet, Vec<RuleDiagnostic>)> {
    let mut options = LoadOptions::default();
    if let Some(file) = logsources {
        options = options.with_logsources(LogSourceMap::load(file)?);
    }
    let mut builder = RuleSet::builder(&options);
    let mut files = Vec::new();
    collect_yaml(&BUILTIN_RULES, &mut files);
    files.sort_by_key(|f| f.path());
    for file in files {
        if let Some(text) = file.contents_utf8() {
            builder.add_yaml(&format!("rules/{}", file.path().display()), text);
        }
    }
    Ok(builder.build())
}

fn collect_yaml<'a>(dir: &'a include_dir::Dir<'a>, out: &mut Vec<&'a include_dir::File<'a>>) {
    for file in dir.files() {
        let path = file.path();
        let yaml = path.extension().is_some_and(|e| e == "yml" || e == "yaml");
        // The log-source mapping sits beside the rules but is not one.
        if yaml && path.file_name().is_some_and(|n| n != "logsources.yml") {
            out.push(file);
        }
    }
    for sub in dir.dirs() {
        collect_yaml(sub, out);
    }
}

/// `/api/v1/rules`.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/rules", get(list))
}

async fn list(State(state): State<AppState>, _access: Access<Read>) -> ApiResult<Json<Value>> {
    let rules: Vec<Value> = state
        .pipeline()
        .rules()
        .map(|set| {
            set.rules()
                .iter()
                .map(|rule| {
                    let kind = match rule.kind {
                        RuleKind::Detection => "detection",
                        RuleKind::Correlation(_) => "correlation",
                        RuleKind::Filter(_) => "filter",
                        _ => "other",
                    };
                    json!({
                        "id": rule.id.as_ref().map(|id| id.as_str()).or(rule.name.as_deref()),
                        "title": rule.title, "level": rule.level.map(|l| l.as_str()),
                        "status": rule.status.map(|s| s.as_str()), "tags": rule.tags,
                        "logsource": rule.logsource, "kind": kind, "description": rule.description,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(json!({ "rules": rules })))
}

//! The rules the server detects with (SIREN's built-in pack unless rule folders are
//! configured) and `GET /api/v1/rules`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use siren_core::api::{RuleList, RuleSummary};
use siren_core::rules::{LoadOptions, LogSourceMap, RuleDiagnostic, RuleKind, RuleSet};

use crate::AppState;
use crate::auth::{Access, Read};
use crate::error::ApiResult;

/// Loads SIREN's built-in rule pack, with the built-in mapping or the one `logsources` names.
/// Per-rule problems are returned, not fatal.
pub fn builtin_rules(
    logsources: Option<&std::path::Path>,
    pipelines: &[std::path::PathBuf],
) -> anyhow::Result<(RuleSet, Vec<RuleDiagnostic>)> {
    let mut options = LoadOptions::default().with_pipeline_files(pipelines)?;
    if let Some(file) = logsources {
        options = options.with_logsources(LogSourceMap::load(file)?);
    }
    Ok(siren_core::rules::builtin(&options))
}

/// `/api/v1/rules`.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/rules", get(list))
}

async fn list(State(state): State<AppState>, _access: Access<Read>) -> ApiResult<Json<RuleList>> {
    let rules = state
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
                    RuleSummary {
                        id: rule
                            .id
                            .as_ref()
                            .map(|id| id.as_str())
                            .or(rule.name.as_deref())
                            .map(str::to_owned),
                        title: rule.title.clone(),
                        level: rule.level.map(|l| l.as_str().to_owned()),
                        status: rule.status.map(|s| s.as_str().to_owned()),
                        tags: rule.tags.clone(),
                        logsource: rule.logsource.clone(),
                        kind: kind.to_owned(),
                        description: rule.description.clone(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(RuleList { rules }))
}

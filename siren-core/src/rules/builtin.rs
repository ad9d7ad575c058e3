//! SIREN's own rule pack (`rules/` at the workspace root), built into the library so that the
//! CLI, the server and programs embedding `siren-core` load the same rules.

use super::{LoadOptions, RuleDiagnostic, RuleSet};

/// The rule pack's files.
static RULES: include_dir::Dir<'_> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/../rules");

/// Loads the built-in rule pack with `options` (the log-source mapping among them). Each rule
/// is named `rules/<path>`; per-rule problems are returned, not fatal.
///
/// ```
/// let (rules, problems) = siren_core::rules::builtin(&siren_core::rules::LoadOptions::default());
/// assert!(problems.is_empty(), "{problems:?}");
/// assert!(!rules.rules().is_empty());
/// ```
pub fn builtin(options: &LoadOptions) -> (RuleSet, Vec<RuleDiagnostic>) {
    let mut builder = RuleSet::builder(options);
    let mut files = Vec::new();
    collect_rules(&RULES, &mut files);
    files.sort_by_key(|f| f.path());
    for file in files {
        if let Some(text) = file.contents_utf8() {
            builder.add_yaml(&format!("rules/{}", file.path().display()), text);
        }
    }
    builder.build()
}

/// The YAML files below `dir`, except the log-source mapping that sits beside the rules.
fn collect_rules<'a>(dir: &'a include_dir::Dir<'a>, out: &mut Vec<&'a include_dir::File<'a>>) {
    for file in dir.files() {
        let path = file.path();
        let yaml = path.extension().is_some_and(|e| e == "yml" || e == "yaml");
        if yaml && path.file_name().is_some_and(|n| n != "logsources.yml") {
            out.push(file);
        }
    }
    for sub in dir.dirs() {
        collect_rules(sub, out);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_built_in_rule_loads_and_the_mapping_is_not_a_rule() {
        let (rules, problems) = super::builtin(&super::LoadOptions::default());
        assert!(problems.is_empty(), "{problems:?}");
        assert!(rules.rules().len() >= 10, "{}", rules.rules().len());
        assert!(
            rules
                .rules()
                .iter()
                .all(|r| !r.title.to_lowercase().contains("logsource"))
        );
    }
}

//! [`LoadOptions`]: what rule loading needs (the log-source mapping, the `expand`
//! placeholders, the size limit, the rule cache's folder).

use std::collections::HashMap;
use std::path::PathBuf;

use super::{LogSourceMap, Pipeline, RuleError};

/// What rule loading needs: the log-source mapping and the `expand` placeholders.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The log-source mapping (default: the one shipped in `rules/logsources.yml`).
    pub logsources: LogSourceMap,
    /// Placeholder values for the `expand` modifier: name (without `%`) → values.
    pub placeholders: HashMap<String, Vec<String>>,
    /// Rule files larger than this are refused.
    pub max_file_bytes: u64,
    /// A folder for the rule cache (parsed rule files kept for the next load), or none.
    pub cache_dir: Option<PathBuf>,
    /// pySigma processing pipelines applied to every rule before it is compiled, in
    /// priority order (see [`LoadOptions::with_pipeline`]).
    pub pipelines: Vec<Pipeline>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            logsources: LogSourceMap::default(),
            placeholders: HashMap::new(),
            max_file_bytes: 8 << 20,
            cache_dir: None,
            pipelines: Vec::new(),
        }
    }
}

impl LoadOptions {
    /// Uses another log-source mapping.
    pub fn with_logsources(mut self, map: LogSourceMap) -> Self {
        self.logsources = map;
        self
    }

    /// Keeps parsed rule files in `dir`, so that loading them again skips YAML parsing
    /// (see the `cache` module: files are matched by path, size and modification time).
    pub fn with_cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// Adds a processing pipeline; pipelines run in `priority` order (lower first), those
    /// of equal priority in the order they were added.
    pub fn with_pipeline(mut self, pipeline: Pipeline) -> Self {
        self.pipelines.push(pipeline);
        self.pipelines.sort_by_key(|p| p.priority);
        self
    }

    /// Adds the processing pipelines of these files (see [`LoadOptions::with_pipeline`]).
    pub fn with_pipeline_files<P: AsRef<std::path::Path>>(
        mut self,
        files: &[P],
    ) -> Result<Self, super::PipelineError> {
        for file in files {
            self = self.with_pipeline(Pipeline::load(file.as_ref())?);
        }
        Ok(self)
    }

    /// Sets the values of one `expand` placeholder.
    pub fn with_placeholder(mut self, name: impl Into<String>, values: Vec<String>) -> Self {
        self.placeholders.insert(name.into(), values);
        self
    }

    /// Adds placeholders from YAML: a mapping of name → value or list of values.
    pub fn with_placeholders_yaml(mut self, file: &str, text: &str) -> Result<Self, RuleError> {
        let invalid = |reason: String| RuleError::InvalidKey {
            key: format!("placeholders in {file}"),
            reason,
        };
        let map: HashMap<String, serde_yaml::Value> =
            serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        for (name, value) in map {
            let values = match value {
                serde_yaml::Value::Sequence(seq) => seq
                    .iter()
                    .map(|v| match v {
                        serde_yaml::Value::String(s) => Some(s.clone()),
                        serde_yaml::Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| invalid(format!("'{name}': expected strings")))?,
                serde_yaml::Value::String(s) => vec![s],
                serde_yaml::Value::Number(n) => vec![n.to_string()],
                _ => return Err(invalid(format!("'{name}': expected strings"))),
            };
            self.placeholders.insert(name, values);
        }
        Ok(self)
    }
}

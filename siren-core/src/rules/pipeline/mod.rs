//! pySigma processing pipelines: the YAML format the Sigma ecosystem keeps field and log-source
//! mappings in, read into a typed model ([`Pipeline`]) and applied to each rule's YAML document
//! when rules are loaded, before it is compiled, so matching an event costs nothing more.
//!
//! Supported transformations: `field_name_mapping` (one field to one or several; several make
//! the item an OR of one item per field), `field_name_prefix_mapping`, `add_condition`
//! (with `template` and `negated`), `change_logsource`, `drop_detection_item`,
//! `replace_string` (on the plain representation of a value, as pySigma does by default, or
//! its plain parts with `skip_special`), `set_state`, `rule_failure` and
//! `detection_item_failure`. Rule conditions: `logsource`, `processing_item_applied`,
//! `processing_state`, `tag`, `is_sigma_rule`, `is_sigma_correlation_rule`,
//! `contains_detection_item`; detection item conditions: `match_string`, `is_null`,
//! `processing_item_applied`, `processing_state`; field name conditions: `include_fields`,
//! `exclude_fields` (`mode: plain | re`), `processing_item_applied`, `processing_state`.
//! Conditions combine with `*_cond_op` (`and` / `or`), `*_cond_not`, or a `*_cond_expr` over
//! named conditions. Every other transformation (those that only make sense to a backend
//! building query text: `field_name_suffix`, `wildcard_placeholders`, `query_expression_placeholders`…)
//! and any `postprocessing` or `finalizers` section is an error naming the transformation and
//! the file. Several pipelines run in `priority` order (lower first; equal priorities keep the
//! order they were given in).

mod apply;
mod expr;
mod model;
mod sigma_text;

pub use model::{Pipeline, PipelineError};

pub(crate) use apply::apply_to_document;

#[cfg(test)]
mod tests;

//! Sigma rules: parsing, the log-source mapping, and the compiled matcher.

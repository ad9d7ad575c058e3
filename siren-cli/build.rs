//! Rebuilds `siren` when the built-in rule pack in `rules/` changes (it is embedded).

fn main() {
    println!("cargo:rerun-if-changed=../rules");
}

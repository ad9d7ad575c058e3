//! Value tests: modifiers, string sets, regexes and their literals, one field item at a time.

use base64::Engine as _;
use serde_json::{Value, json};

use super::compiled::{ValueTest, with_text};
use super::lazy_regex::{LazyRegex, RegexFlags};
use super::modifiers::{Scalar, base64_offsets, compile_item, utf16};
use super::sigma_string::Tok;
use super::string_set::{Pattern, build_set, ci_contains};
use crate::event::Fields;
use crate::rules::RuleError;

fn item(key: &str, values: &[Scalar]) -> Result<ValueTest, RuleError> {
    let mut parts = key.split('|');
    let _field = parts.next();
    let mods: Vec<&str> = parts.collect();
    let mut placeholders = std::collections::HashMap::new();
    placeholders.insert(
        "admins".to_owned(),
        vec!["root".to_owned(), "adm*".to_owned()],
    );
    compile_item(key, &mods, values, &placeholders)
}

fn s(v: &str) -> Scalar {
    Scalar::Str(v.to_owned())
}

fn hit(key: &str, values: &[Scalar], event_value: Value) -> bool {
    let fields = Fields::default();
    item(key, values).unwrap().eval(Some(&event_value), &fields)
}

fn atoms_of(pattern: &str, i: bool) -> Option<Vec<String>> {
    let flags = RegexFlags {
        i,
        ..RegexFlags::default()
    };
    let regex = LazyRegex::new(pattern.to_owned(), flags, "F").unwrap();
    regex
        .atoms
        .map(|a| a.iter().map(|a| a.to_string()).collect())
}

#[test]
fn numbers_read_as_display_prints_them() {
    for n in [
        json!(0),
        json!(4688),
        json!(-17),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(0.5),
        json!(1e300),
    ] {
        assert_eq!(with_text(&n, str::to_owned), Some(n.to_string()), "{n}");
    }
}

#[test]
fn regexes_give_the_prefilter_their_literals() {
    // The longer of prefix and suffix lists wins.
    assert_eq!(
        atoms_of(r"ipconfig\s+/all", false),
        Some(vec!["ipconfig".into()])
    );
    assert_eq!(atoms_of(r".*\.ps1$", false), Some(vec![".ps1".into()]));
    assert_eq!(
        atoms_of(r"(Invoke|IEX)\(", false),
        Some(vec!["iex(".into(), "invoke(".into()])
    );
    // Case variants collapse to one lower-case literal; the Kelvin sign (a case variant
    // of `k`) stays, so the list still covers every match.
    assert_eq!(atoms_of(r"\.exe\s", true), Some(vec![".exe".into()]));
    let k = atoms_of("kb[0-9]", true).unwrap();
    assert!(k.contains(&"kb7".to_owned()), "{k:?}");
    assert!(k.contains(&"\u{212a}b7".to_owned()), "{k:?}");
    assert_eq!(k.len(), 20);
    // No finite list, or an empty literal in it: nothing to prefilter on.
    assert_eq!(atoms_of(r"\w+", false), None);
    assert_eq!(atoms_of(r"a?", false), None);
    // A set with a regex without literals has no atoms; with literals it has all of them.
    let set = build_set(
        vec![
            Pattern::Regex(r"\d{4}".into(), RegexFlags::default()),
            Pattern::Glob(vec![Tok::Star, Tok::Lit("x".into())]),
        ],
        true,
        "F",
    )
    .unwrap();
    assert!(set.atoms.is_none());
    let set = build_set(
        vec![
            Pattern::Regex(r"net\s+user".into(), RegexFlags::default()),
            Pattern::Glob(vec![Tok::Star, Tok::Lit("whoami".into()), Tok::Star]),
        ],
        true,
        "F",
    )
    .unwrap();
    let atoms: Vec<&str> = set.atoms.iter().flatten().map(|a| &**a).collect();
    assert_eq!(atoms, ["user", "whoami"]);
}

#[test]
fn literals_from_the_middle_of_a_regex_reach_the_prefilter() {
    // Neither end has a useful literal; the middle has a long one.
    assert_eq!(
        atoms_of(
            r#"(?i)\.exe["']?\s+[^"]{0,64}werfaultsecure\.exe["']?\s+\d{2,10}"#,
            false
        ),
        // The long s (U+017F) is a case variant of `s`, as `(?i)` has it.
        Some(vec![
            "werfaultsecure.exe".into(),
            "werfault\u{17f}ecure.exe".into()
        ])
    );
    // An alternation in the middle: one of its branches' literals.
    assert_eq!(
        atoms_of(r"\w+\s+(?:foo|barbaz)\s+\w+", false),
        Some(vec!["barbaz".into(), "foo".into()])
    );
    // Adjacent small pieces join; a required repetition keeps its literal.
    assert_eq!(
        atoms_of(r"\s(?:-|/)enc\w*\s+(?:abc)+", true),
        Some(vec!["-enc".into(), "/enc".into()])
    );
    // A branch without a literal leaves the whole without one.
    assert_eq!(atoms_of(r"\w+(?:foo|\d+)\w+", false), None);
    assert_eq!(atoms_of(r"\w+(?:foo)?\w+", false), None);
    // Each atom really occurs in a match.
    let re = regex::Regex::new(r"(?i)\.exe\s+\S{0,9}WerFaultSecure\.exe").unwrap();
    let text = "x.EXE  -pWERFAULTSECURE.exe";
    assert!(re.is_match(text));
    let atoms = atoms_of(r"\.exe\s+\S{0,9}WerFaultSecure\.exe", true).unwrap();
    assert!(
        atoms
            .iter()
            .any(|a| text.to_ascii_lowercase().contains(a.as_str()))
    );
}

#[test]
fn long_texts_are_searched_lower_cased_for_few_contains_patterns() {
    let set = build_set(
        vec![
            Pattern::Glob(vec![Tok::Star, Tok::Lit(" -W Hidden ".into()), Tok::Star]),
            Pattern::Glob(vec![Tok::Star, Tok::Lit("FromBase64".into()), Tok::Star]),
        ],
        true,
        "CommandLine",
    )
    .unwrap();
    let padding = "a b c d ".repeat(200);
    for (text, hit) in [
        (format!("{padding} -w hIDDEN {padding}"), true),
        (format!("{padding}[convert]::frombase64string("), true),
        (format!(" -W HIDDEN{padding}"), false),
        (format!("{padding} -w hidde"), false),
        (" -w hidden ".to_owned(), true),
        ("-w hidden".to_owned(), false),
    ] {
        assert_eq!(
            set.is_match(&text),
            hit,
            "{}",
            &text[text.len().saturating_sub(30)..]
        );
    }
}

#[test]
fn many_non_ascii_literals_are_searched_as_few_regexes() {
    // Look-alike characters: case-insensitive, so they need Unicode case folding.
    let letters: Vec<char> = ('\u{0410}'..='\u{042F}').collect();
    let patterns = letters
        .iter()
        .map(|c| Pattern::Glob(vec![Tok::Star, Tok::Lit(c.to_string()), Tok::Star]))
        .collect();
    let set = build_set(patterns, true, "CommandLine").unwrap();
    assert!(
        set.regexes.len() < letters.len() / 4,
        "{}",
        set.regexes.len()
    );
    for c in &letters {
        let lower: String = c.to_lowercase().collect();
        assert!(set.is_match(&format!("cmd /c {c}x")), "{c}");
        assert!(set.is_match(&format!("cmd /c {lower}x")), "{lower}");
    }
    assert!(!set.is_match("cmd /c ABCx"));
    // Anchored shapes joined with others keep their anchors.
    let set = build_set(
        vec![
            Pattern::Glob(vec![
                Tok::Lit("\u{0410}".into()),
                Tok::Star,
                Tok::Lit("z".into()),
            ]),
            Pattern::Glob(vec![Tok::Star, Tok::Lit("\u{0412}".into()), Tok::Quest]),
        ],
        true,
        "F",
    )
    .unwrap();
    assert_eq!(set.regexes.len(), 1);
    assert!(set.is_match("\u{0430}bcZ"));
    assert!(!set.is_match("x\u{0430}bcz"));
    assert!(set.is_match("x\u{0432}y"));
    assert!(!set.is_match("x\u{0432}yy"));
}

#[test]
fn many_contains_patterns_match_case_insensitively() {
    let values: Vec<Scalar> = (0..20).map(|i| s(&format!("Needle{i}"))).collect();
    assert!(hit("F|contains", &values, json!("a NEEDLE7 in hay")));
    assert!(hit("F|contains", &values, json!("needle19")));
    assert!(!hit("F|contains", &values, json!("needle 7")));
    assert!(hit("F|contains|cased", &values, json!("xNeedle3x")));
    assert!(!hit("F|contains|cased", &values, json!("xneedle3x")));
}

#[test]
fn plain_is_exact_and_case_insensitive() {
    assert!(hit("F", &[s("Foo")], json!("foo")));
    assert!(!hit("F", &[s("Foo")], json!("foo2")));
    assert!(hit("F", &[s("a"), s("b")], json!("B")));
    assert!(hit("F|cased", &[s("Foo")], json!("Foo")));
    assert!(!hit("F|cased", &[s("Foo")], json!("foo")));
}

#[test]
fn wildcards_and_escapes() {
    assert!(hit("F", &[s("*\\cmd.exe")], json!("C:\\Windows\\CMD.EXE")));
    assert!(hit("F", &[s("a?c")], json!("abc")));
    assert!(!hit("F", &[s("a?c")], json!("abbc")));
    assert!(hit("F", &[s("a*c*e")], json!("aXXcYYe")));
    assert!(hit("F", &[s("a\\*b")], json!("a*b")));
    assert!(!hit("F", &[s("a\\*b")], json!("axb")));
    assert!(hit("F", &[s("a\\?b")], json!("a?b")));
    assert!(hit("F", &[s("a\\\\*")], json!("a\\anything")));
    assert!(hit("F", &[s("C:\\Windows\\")], json!("c:\\windows\\")));
    assert!(hit("F", &[s("*")], json!("")));
    assert!(hit("F", &[s("ÄB")], json!("äb")));
}

#[test]
fn shapes() {
    assert!(hit("F|contains", &[s("mimi")], json!("x MIMIkatz")));
    assert!(hit("F|startswith", &[s("c:\\")], json!("C:\\x")));
    assert!(!hit("F|startswith", &[s("c:\\")], json!("D:\\x")));
    assert!(hit("F|endswith", &[s(".EXE")], json!("a.exe")));
    assert!(hit("F|contains|all", &[s("a"), s("b")], json!("xbxa")));
    assert!(!hit("F|contains|all", &[s("a"), s("b")], json!("xxa")));
    assert!(hit("F|contains", &[s("a*c")], json!("zzabbbczz")));
    assert!(hit("F|contains|cased", &[s("AbC")], json!("xAbCx")));
    assert!(!hit("F|contains|cased", &[s("AbC")], json!("xabcx")));
}

#[test]
fn few_and_many_contains() {
    assert!(ci_contains(b"abcXYZ", b"xy"));
    assert!(ci_contains(b"xy", b"XY"));
    assert!(!ci_contains(b"x", b"xy"));
    assert!(ci_contains(b"a-b", b"-B"));
    assert!(ci_contains(b"", b""));
    let many: Vec<Scalar> = (0..10).map(|i| s(&format!("pat{i}"))).collect();
    assert!(hit("F|contains", &many, json!("xxPAT7xx")));
    assert!(!hit("F|contains", &many, json!("xxpat_xx")));
    assert!(hit("F|contains|cased", &many, json!("xxpat7xx")));
    assert!(!hit("F|contains|cased", &many, json!("xxPAT7xx")));
}

#[test]
fn numbers_and_null() {
    assert!(hit("EventID", &[Scalar::Int(4688)], json!(4688)));
    assert!(hit("EventID", &[Scalar::Int(4688)], json!("4688")));
    assert!(!hit("EventID", &[Scalar::Int(4688)], json!(46880)));
    let fields = Fields::default();
    let null = item("F", &[Scalar::Null]).unwrap();
    assert!(null.eval(None, &fields));
    assert!(null.eval(Some(&json!(null)), &fields));
    // Sigma's `null` and `''` are two values: a present empty string is not null…
    assert!(!null.eval(Some(&json!("")), &fields));
    assert!(!null.eval(Some(&json!([])), &fields));
    assert!(!null.eval(Some(&json!("x")), &fields));
    // …and a missing or null field is not empty.
    let empty = item("F", &[s("")]).unwrap();
    assert!(empty.eval(Some(&json!("")), &fields));
    assert!(empty.eval(Some(&json!(["x", ""])), &fields));
    assert!(!empty.eval(None, &fields));
    assert!(!empty.eval(Some(&json!(null)), &fields));
    let either = item("F", &[Scalar::Null, s("")]).unwrap();
    assert!(either.eval(None, &fields));
    assert!(either.eval(Some(&json!("")), &fields));
    assert!(!either.eval(Some(&json!("x")), &fields));
    assert!(!empty.eval(Some(&json!("x")), &fields));
    assert!(hit("F", &[Scalar::Bool(true)], json!(true)));
    assert!(hit("F", &[s("x")], json!(["a", "X"])));
}

#[test]
fn exists() {
    let fields = Fields::default();
    let t = item("F|exists", &[Scalar::Bool(true)]).unwrap();
    assert!(t.eval(Some(&json!("")), &fields));
    assert!(!t.eval(None, &fields));
    let f = item("F|exists", &[Scalar::Bool(false)]).unwrap();
    assert!(f.eval(None, &fields));
    assert!(item("F|exists", &[s("maybe")]).is_err());
}

#[test]
fn neq() {
    assert!(hit("F|neq", &[s("a")], json!("b")));
    assert!(!hit("F|neq", &[s("a")], json!("A")));
    assert!(!hit("F|neq", &[s("a"), s("b")], json!("b")));
    assert!(hit("F|neq", &[s("a"), s("b")], json!("c")));
}

#[test]
fn windash() {
    for v in ["-enc", "/enc", "\u{2013}enc", "\u{2014}enc", "\u{2015}enc"] {
        assert!(hit(
            "F|windash|contains",
            &[s(" -enc ")],
            json!(format!("x {v} y"))
        ));
    }
    assert!(!hit(
        "F|windash|contains",
        &[s(" -enc ")],
        json!("x +enc y")
    ));
    // Many dash positions fall back to a regex.
    let many = " -a -b -c -d -e";
    assert!(hit(
        "F|contains|windash",
        &[s(many)],
        json!("x /a -b /c -d /e")
    ));
    // A dash inside a word is left alone.
    assert!(!hit("F|windash", &[s("a-b")], json!("a/b")));
}

#[test]
fn base64_and_utf16() {
    assert!(hit("F|base64", &[s("abc")], json!("YWJj")));
    assert!(hit("F|base64|contains", &[s("abc")], json!("xxYWJjxx")));
    assert_eq!(
        base64_offsets(b"http://"),
        vec!["aHR0cDovL", "h0dHA6Ly", "odHRwOi8v"]
    );
    let engine = base64::engine::general_purpose::STANDARD;
    for prefix in ["", "a", "ab", "abc"] {
        let encoded = engine.encode(format!("{prefix}http://host"));
        assert!(hit(
            "F|base64offset|contains",
            &[s("http://")],
            json!(encoded)
        ));
    }
    let wide = engine.encode(utf16("xx Invoke-Mimikatz yy", false, false));
    assert!(hit(
        "F|wide|base64offset|contains",
        &[s("Invoke-Mimikatz")],
        json!(wide)
    ));
    assert!(hit(
        "F|utf16le|base64offset|contains",
        &[s("Invoke-Mimikatz")],
        json!(wide)
    ));
    let be = engine.encode(utf16("Invoke", true, false));
    assert!(hit("F|utf16be|base64", &[s("Invoke")], json!(be)));
    let bom = engine.encode(utf16("Invoke", false, true));
    assert!(hit("F|utf16|base64", &[s("Invoke")], json!(bom)));
    assert!(item("F|base64", &[s("a*")]).is_err());
}

#[test]
fn regexes() {
    assert!(hit("F|re", &[s("^a.c$")], json!("abc")));
    assert!(!hit("F|re", &[s("^a.c$")], json!("ABC")));
    assert!(hit("F|re|i", &[s("^a.c$")], json!("ABC")));
    assert!(hit("F|re|m", &[s("^b$")], json!("a\nb\nc")));
    assert!(!hit("F|re", &[s("^b$")], json!("a\nb\nc")));
    assert!(hit("F|re|s", &[s("a.b")], json!("a\nb")));
    assert!(!hit("F|re", &[s("a.b")], json!("a\nb")));
    assert!(matches!(
        item("F|re", &[s("(unclosed")]),
        Err(RuleError::BadRegex { .. })
    ));
    assert!(item("F|i", &[s("x")]).is_err());
    // Checked at load although compiled on first use: syntax errors, and (compiled at
    // load because of their counted repetitions) regexes over the size limit.
    assert!(matches!(
        item("F|re", &[s("a[")]),
        Err(RuleError::BadRegex { .. })
    ));
    assert!(matches!(
        item("F|re", &[s("(\\w{1000}){1000}")]),
        Err(RuleError::BadRegex { .. })
    ));
    assert!(hit("F|re", &[s("^a{300}$")], json!("a".repeat(300))));
    assert!(!hit("F|re", &[s("^a{300}$")], json!("a".repeat(299))));
}

#[test]
fn numeric() {
    assert!(hit("F|lt", &[Scalar::Int(5)], json!(4)));
    assert!(!hit("F|lt", &[Scalar::Int(5)], json!(5)));
    assert!(hit("F|lte", &[Scalar::Int(5)], json!("5")));
    assert!(hit("F|gt", &[Scalar::Int(5)], json!(6)));
    assert!(hit("F|gte", &[Scalar::Float(5.5)], json!(5.5)));
    assert!(hit("F|gt", &[Scalar::Int(15)], json!("0x10")));
    assert!(!hit("F|gt", &[Scalar::Int(5)], json!("n/a")));
    assert!(item("F|gt", &[s("x")]).is_err());
}

#[test]
fn cidr() {
    let nets = [s("10.0.0.0/8"), s("fe80::/10")];
    assert!(hit("F|cidr", &nets, json!("10.1.2.3")));
    assert!(hit("F|cidr", &nets, json!("::ffff:10.1.2.3")));
    assert!(hit("F|cidr", &nets, json!("fe80::1")));
    assert!(!hit("F|cidr", &nets, json!("192.168.1.1")));
    assert!(!hit("F|cidr", &nets, json!("-")));
    assert!(item("F|cidr", &[s("10.0.0.0/99")]).is_err());
}

#[test]
fn expand() {
    assert!(hit("F|expand", &[s("%admins%")], json!("ROOT")));
    assert!(hit("F|expand", &[s("%admins%")], json!("administrator")));
    assert!(hit(
        "F|expand|contains",
        &[s("u=%admins%;")],
        json!("x u=root; y")
    ));
    assert!(!hit("F|expand", &[s("%admins%")], json!("bob")));
    assert!(matches!(
        item("F|expand", &[s("%nope%")]),
        Err(RuleError::UnknownPlaceholder { .. })
    ));
}

#[test]
fn fieldref() {
    let mut fields = Fields::default();
    fields.insert("A".into(), json!("Alice"));
    fields.insert("B".into(), json!("alice"));
    fields.insert("C".into(), json!("Al"));
    let t = item("B|fieldref", &[s("A")]).unwrap();
    assert!(t.eval(fields.get("B"), &fields));
    let t = item("B|fieldref|cased", &[s("A")]).unwrap();
    assert!(!t.eval(fields.get("B"), &fields));
    let t = item("A|fieldref|startswith", &[s("C")]).unwrap();
    assert!(t.eval(fields.get("A"), &fields));
    let t = item("A|fieldref", &[s("Missing")]).unwrap();
    assert!(!t.eval(fields.get("A"), &fields));
}

#[test]
fn time_parts() {
    let ts = json!("2024-03-10T22:15:00.123Z");
    assert!(hit("T|hour", &[Scalar::Int(22)], ts.clone()));
    assert!(hit("T|hour|gte", &[Scalar::Int(20)], ts.clone()));
    assert!(hit("T|minute", &[Scalar::Int(15)], ts.clone()));
    assert!(hit("T|day", &[Scalar::Int(10)], ts.clone()));
    assert!(hit("T|week", &[Scalar::Int(10)], ts.clone()));
    assert!(hit("T|month", &[Scalar::Int(3)], ts.clone()));
    assert!(hit("T|year", &[Scalar::Int(2024)], ts.clone()));
    assert!(hit(
        "T|hour",
        &[Scalar::Int(5)],
        json!("2024-03-10 05:00:00.000")
    ));
    assert!(!hit("T|hour", &[Scalar::Int(5)], json!("garbage")));
}

#[test]
fn bad_modifiers_are_named() {
    match item("F|contanis", &[s("x")]) {
        Err(RuleError::UnknownModifier { modifier, .. }) => assert_eq!(modifier, "contanis"),
        other => panic!("{other:?}"),
    }
    assert!(item("F|contains|startswith", &[s("x")]).is_err());
    assert!(item("F|re|cidr", &[s("x")]).is_err());
    assert!(item("F", &[]).is_err());
}

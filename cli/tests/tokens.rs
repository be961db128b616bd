//! keygen, mint, attenuate and inspect, through the built binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test helpers outside #[test] fns fail loudly on purpose.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use intentgate_core::memory::derive_memory_key;
use serde_json::json;

use common::{intentgate, intentgate_with, keygen, mint, ok, text};

fn inspect(token: &str, public_key: &str) -> common::Run {
    intentgate(&["inspect", "--token", token, "--public-key", public_key])
}

#[test]
fn keygen_prints_a_32_byte_seed_its_public_key_and_kid() {
    let issuer = keygen();
    assert_eq!(STANDARD.decode(&issuer.seed).unwrap().len(), 32);
    assert_eq!(STANDARD.decode(&issuer.public_key).unwrap().len(), 32);
    assert!(issuer.kid.starts_with("ig-"), "{}", issuer.kid);
    assert_ne!(keygen().seed, issuer.seed, "every key is fresh");
}

#[test]
fn keygen_mint_inspect_round_trip_verifies_every_claim() {
    let issuer = keygen();
    let dir = common::TempDir::new();
    let key_file = dir.path().join("issuer.json");
    std::fs::write(&key_file, ok(&["keygen"]).to_string()).unwrap();
    let file_issuer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&key_file).unwrap()).unwrap();

    // The key file holds keygen's JSON as is.
    let minted = ok(&[
        "mint",
        "--key-file",
        key_file.to_str().unwrap(),
        "--subject",
        "agent-finance-bot-7",
        "--tenant",
        "acme-corp",
        "--tools",
        "read_invoice,list_*",
        "--ttl",
        "600",
        "--max-calls",
        "100",
        "--step-up",
    ]);
    let token = text(&minted["token"]);
    let jti = text(&minted["jti"]);
    assert!(token.starts_with("igt1."));
    assert_eq!(jti.len(), 26, "jti is a ULID");
    assert_eq!(minted["kid"], file_issuer["kid"]);

    let report = inspect(&token, &text(&file_issuer["public_key"]));
    assert_eq!(report.code, 0, "{}", report.stderr);
    let claims = &report.json["blocks"][0]["claims"];
    assert_eq!(claims["sub"], "agent-finance-bot-7");
    assert_eq!(claims["tenant"], "acme-corp");
    assert_eq!(claims["iss"], "intentgate");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    let v = &report.json["verification"];
    assert_eq!(v["valid"], true);
    assert_eq!(v["capability_token_id"], jti.as_str());
    assert_eq!(v["root_capability_token_id"], jti.as_str());
    assert_eq!(v["expires_at"], minted["expires_at"]);
    assert_eq!(v["tools"], json!([["read_invoice", "list_*"]]));
    assert_eq!(v["max_calls"], 100);
    assert_eq!(v["caveat_count"], 3, "tools, max_calls, step_up_at");
    assert!(v["step_up_at"].is_string());

    // Another issuer's key does not verify it.
    let stranger = inspect(&token, &issuer.public_key);
    assert_eq!(stranger.code, 1);
    assert_eq!(stranger.json["verification"]["valid"], false);
    assert!(text(&stranger.json["verification"]["error"]).contains("unknown key"));
}

#[test]
fn mint_reads_the_master_key_from_the_environment() {
    let issuer = keygen();
    let run = intentgate_with(
        &["mint", "--subject", "a", "--tenant", "t"],
        None,
        &[("INTENTGATE_MASTER_KEY", &issuer.seed)],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(text(&run.json["kid"]), issuer.kid);
}

#[test]
fn mint_without_a_usable_key_is_a_usage_error() {
    let run = intentgate(&["mint", "--subject", "a", "--tenant", "t"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("INTENTGATE_MASTER_KEY"),
        "{}",
        run.stderr
    );
    let run = intentgate(&["mint", "--key", "AAAA", "--subject", "a", "--tenant", "t"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("32 bytes"), "{}", run.stderr);
    let run = intentgate(&["mint", "--key", &keygen().seed, "--tenant", "t"]);
    assert_eq!(run.code, 2, "--subject is required");
}

#[test]
fn mint_with_memory_signing_key_returns_the_key_derived_from_master_and_jti() {
    let issuer = keygen();
    let minted = mint(&issuer, &["--with-memory-signing-key"]);
    let seed: [u8; 32] = STANDARD.decode(&issuer.seed).unwrap().try_into().unwrap();
    let derived = derive_memory_key(&seed, &text(&minted["jti"]));
    assert_eq!(
        text(&minted["memory_signing_key"]),
        STANDARD.encode(derived.to_bytes())
    );
    let report = inspect(&text(&minted["token"]), &issuer.public_key);
    assert_eq!(
        text(&report.json["verification"]["memory_key"]),
        STANDARD.encode(derived.verifying_key().as_bytes())
    );
}

#[test]
fn attenuate_narrows_tools_budget_and_expiry_and_keeps_the_root_id() {
    let issuer = keygen();
    let root = mint(
        &issuer,
        &["--tools", "read_*,list_vendors", "--max-calls", "10"],
    );
    let root_jti = text(&root["jti"]);
    let derived = ok(&[
        "attenuate",
        "--token",
        &text(&root["token"]),
        "--tools",
        "read_invoice",
        "--max-calls",
        "3",
        "--ttl",
        "60",
    ]);
    let jti = text(&derived["jti"]);
    assert_ne!(jti, root_jti);

    let report = inspect(&text(&derived["token"]), &issuer.public_key);
    assert_eq!(report.code, 0, "{}", report.stderr);
    assert_eq!(report.json["blocks"].as_array().unwrap().len(), 2);
    assert_eq!(report.json["blocks"][1]["type"], "attenuation");
    let v = &report.json["verification"];
    assert_eq!(v["capability_token_id"], jti.as_str());
    assert_eq!(v["root_capability_token_id"], root_jti.as_str());
    assert_eq!(v["block_jtis"], json!([root_jti, jti]));
    assert_eq!(
        v["tools"],
        json!([["read_*", "list_vendors"], ["read_invoice"]])
    );
    assert_eq!(v["max_calls"], 3);
    assert!(
        text(&v["expires_at"]) < text(&root["expires_at"]),
        "expiry moved earlier"
    );
}

#[test]
fn attenuate_reads_the_token_from_standard_input() {
    let issuer = keygen();
    let root = mint(&issuer, &["--max-calls", "5"]);
    let run = intentgate_with(
        &["attenuate", "--max-calls", "1"],
        Some(&format!("{}\n", text(&root["token"]))),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = inspect(&text(&run.json["token"]), &issuer.public_key);
    assert_eq!(report.json["verification"]["max_calls"], 1);
}

#[test]
fn attenuate_refuses_every_widening_with_exit_1() {
    let issuer = keygen();
    let root = mint(
        &issuer,
        &["--tools", "read_*", "--max-calls", "5", "--ttl", "600"],
    );
    let token = text(&root["token"]);
    for (args, needle) in [
        (vec!["--tools", "wire_money"], "wire_money is not within"),
        (vec!["--tools", "*"], "is not within"),
        (
            vec!["--max-calls", "6"],
            "max_calls 6 exceeds the token's 5",
        ),
        (vec!["--ttl", "3600"], "expiry is later"),
        (
            vec!["--expires-at", "2999-01-01T00:00:00Z"],
            "expiry is later",
        ),
    ] {
        let mut full = vec!["attenuate", "--token", &token];
        full.extend_from_slice(&args);
        let run = intentgate(&full);
        assert_eq!(run.code, 1, "{args:?} must be refused");
        assert!(run.stdout.is_empty(), "no token is printed: {}", run.stdout);
        assert!(
            run.stderr.contains("would widen the token"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
    // Nothing to narrow is a usage error, not a token.
    assert_eq!(intentgate(&["attenuate", "--token", &token]).code, 2);
}

/// Rewrites bytes inside the token's signed body, keeping the encoding valid.
fn tamper(token: &str, from: &str, to: &str) -> String {
    assert_eq!(from.len(), to.len());
    let mut body = URL_SAFE_NO_PAD.decode(&token["igt1.".len()..]).unwrap();
    let at = body
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .expect("the claim is in the body");
    body[at..at + to.len()].copy_from_slice(to.as_bytes());
    format!("igt1.{}", URL_SAFE_NO_PAD.encode(body))
}

#[test]
fn inspect_detects_a_tampered_token() {
    let issuer = keygen();
    let token = text(&mint(&issuer, &["--tools", "read_invoice"])["token"]);

    // A changed claim still decodes, so the forgery is visible, but the signature fails.
    let forged = tamper(&token, "read_invoice", "wire_moneyyy");
    let decoded = intentgate(&["inspect", "--token", &forged]);
    assert_eq!(decoded.code, 0, "decoding alone checks no signature");
    assert_eq!(
        decoded.json["blocks"][0]["claims"]["caveats"][0]["tools"][0],
        "wire_moneyyy"
    );
    let report = inspect(&forged, &issuer.public_key);
    assert_eq!(report.code, 1);
    assert_eq!(report.json["verification"]["valid"], false);
    assert_eq!(
        report.json["verification"]["error"],
        "invalid signature on block 0"
    );

    let resubject = tamper(&token, "agent-7", "agent-8");
    assert_eq!(
        inspect(&resubject, &issuer.public_key).json["verification"]["error"],
        "invalid signature on block 0"
    );

    // Truncated: nothing decodes, and verification names the failure.
    let body = URL_SAFE_NO_PAD.decode(&token["igt1.".len()..]).unwrap();
    let truncated = format!("igt1.{}", URL_SAFE_NO_PAD.encode(&body[..body.len() - 10]));
    let report = inspect(&truncated, &issuer.public_key);
    assert_eq!(report.code, 1);
    assert!(text(&report.json["error"]).contains("malformed token"));
    assert!(text(&report.json["verification"]["error"]).contains("truncated"));
}

#[test]
fn inspect_reports_an_expired_token_as_unusable() {
    let issuer = keygen();
    let minted = mint(&issuer, &["--now", "1781444520", "--ttl", "60"]);
    let report = intentgate(&[
        "inspect",
        "--token",
        &text(&minted["token"]),
        "--public-key",
        &issuer.public_key,
        "--now",
        "1781444600",
    ]);
    assert_eq!(report.code, 1);
    let v = &report.json["verification"];
    assert_eq!(v["signature_valid"], true);
    assert_eq!(v["valid"], false);
    assert_eq!(v["error"], "token expired");
    assert_eq!(v["expires_at"], "2026-06-14T13:43:00Z");
}

#[test]
fn inspect_rejects_a_malformed_public_key_as_a_usage_error() {
    let issuer = keygen();
    let token = text(&mint(&issuer, &[])["token"]);
    let run = intentgate(&["inspect", "--token", &token, "--public-key", "not-a-key"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--public-key"), "{}", run.stderr);
}

#[test]
fn mint_binds_an_audience_that_inspect_shows_and_attenuation_keeps() {
    let issuer = keygen();
    let resource = "https://gw.example.com/v1/mcp";
    let root = mint(&issuer, &["--tools", "read_*", "--audience", resource]);
    let report = inspect(&text(&root["token"]), &issuer.public_key);
    assert_eq!(report.code, 0, "{}", report.stderr);
    assert_eq!(report.json["verification"]["audience"], resource);
    assert_eq!(
        report.json["blocks"][0]["claims"]["caveats"][1],
        json!({"kind": "audience", "audience": resource})
    );
    let token = text(&root["token"]);
    let child = ok(&["attenuate", "--token", &token, "--tools", "read_invoice"]);
    let report = inspect(&text(&child["token"]), &issuer.public_key);
    assert_eq!(report.json["verification"]["audience"], resource);
    let moved = intentgate(&[
        "attenuate",
        "--token",
        &token,
        "--audience",
        "https://other.example.com/v1/mcp",
    ]);
    assert_eq!(moved.code, 1, "{}", moved.stderr);
    assert!(moved.stderr.contains("keeps it"), "{}", moved.stderr);
    // An unbound token has no audience, and may be bound by its holder.
    let unbound = mint(&issuer, &[]);
    let report = inspect(&text(&unbound["token"]), &issuer.public_key);
    assert_eq!(report.json["verification"]["audience"], json!(null));
    let bound = ok(&[
        "attenuate",
        "--token",
        &text(&unbound["token"]),
        "--audience",
        resource,
    ]);
    let report = inspect(&text(&bound["token"]), &issuer.public_key);
    assert_eq!(report.json["verification"]["audience"], resource);
    let bad = intentgate(&[
        "mint",
        "--key",
        &issuer.seed,
        "--subject",
        "a",
        "--tenant",
        "t",
        "--audience",
        "not a url",
    ]);
    assert_eq!(
        bad.code, 2,
        "a malformed audience is a usage error: {}",
        bad.stderr
    );
}

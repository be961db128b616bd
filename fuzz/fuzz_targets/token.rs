//! Arbitrary bytes as a capability token (as text, and as the binary body behind `igt1.`) and as a
//! signed memory chain: decoding, verification against a fixed key set, attenuation, and the memory
//! chain check must never panic, and whatever verifies must be self-consistent.
#![no_main]

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;
use intentgate_core::memory;
use intentgate_core::token::{self, Narrowing, PublicKeys, Revoked};
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<PublicKeys> = LazyLock::new(intentgate_fuzz::public_keys);
static MEMORY_KEY: LazyLock<VerifyingKey> = LazyLock::new(intentgate_fuzz::memory_public_key);

fn narrowing() -> Narrowing {
    Narrowing {
        jti: "01JFUZZ0000000000000000000".into(),
        issued_at: intentgate_fuzz::NOW,
        tools: Some(vec!["read_invoice".into()]),
        max_calls: Some(1),
        expires_at: None,
        audience: None,
    }
}

fn check_token(text: &str) {
    let unverified = token::read_unverified(text);
    let derived = token::attenuate(text, &narrowing(), &[9u8; 32]);
    let Ok(verified) = token::verify(text, &KEYS) else {
        return;
    };
    // What verifies also decodes, and its ids and caveats hang together.
    let decoded = unverified.expect("a verified token decodes");
    assert_eq!(decoded.kid, verified.kid);
    assert_eq!(decoded.authority.jti, verified.root_jti);
    assert_eq!(verified.block_jtis.len(), decoded.attenuations.len() + 1);
    assert_eq!(verified.block_jtis.first(), Some(&verified.root_jti));
    assert_eq!(verified.block_jtis.last(), Some(&verified.jti));
    assert!(verified.expires_at <= decoded.authority.exp);
    let _ = verified.check_live(intentgate_fuzz::NOW, &Revoked::default());
    let _ = verified.check_live(i64::MAX, &Revoked::default());
    let _ = verified.check_live(i64::MIN, &Revoked::default());
    let _ = verified.allows_tool("read_invoice");
    // A verified token narrowed offline still verifies, keeps its root, and is never wider.
    if let Ok(child) = derived {
        let child =
            token::verify(&child, &KEYS).expect("an attenuation of a verified token verifies");
        assert_eq!(child.root_jti, verified.root_jti);
        assert!(child.expires_at <= verified.expires_at);
        assert!(child.max_calls() <= Some(1));
        if child.allows_tool("wire_money") {
            assert!(verified.allows_tool("wire_money"));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = token::bearer(&text);
    check_token(&text);
    // The binary layout behind the prefix, reached directly.
    let body = URL_SAFE_NO_PAD.encode(data);
    check_token(&format!("{}{body}", token::PREFIX));
    // The memory chain header, as text and as the JSON behind its base64url.
    let _ = memory::verify_chain(&text, &MEMORY_KEY, intentgate_fuzz::ROOT_JTI);
    let _ = memory::verify_chain(&body, &MEMORY_KEY, intentgate_fuzz::ROOT_JTI);
});

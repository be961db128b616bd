//! Writes the seed corpus under fuzz/seeds/: JSON-RPC bodies for `envelope`; tokens (as text and
//! as their binary body) and memory chains for `token`. Deterministic: same fixtures, same files.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use intentgate_core::memory::ChainWriter;

const BODIES: &[(&str, &str)] = &[
    (
        "call.json",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","arguments":{"invoice_id":"INV-7"}}}"#,
    ),
    (
        "transfer.json",
        r#"{"jsonrpc":"2.0","id":"t-1","method":"tools/call","params":{"name":"transfer_funds","arguments":{"amount":5000,"to":"acme","password":"x","nested":{"api_key":"k","list":[1,2.5,-3e2,null,true]}}}}"#,
    ),
    (
        "batch.json",
        r#"[{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_\u0069nvoice"}},{"jsonrpc":"2.0","id":3,"result":{"roots":[]}},{"jsonrpc":"2.0","id":4,"method":"nope"},7]"#,
    ),
    (
        "notification.json",
        r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"read_x","arguments":null}}"#,
    ),
    (
        "invalid.json",
        r#"{"jsonrpc":"1.0","id":{"a":1},"method":5,"params":"x","method":"tools/call"}"#,
    ),
    (
        "response.json",
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"m"}}"#,
    ),
];

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)
}

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let envelope = root.join("envelope");
    for (name, body) in BODIES {
        write(&envelope, name, body.as_bytes())?;
    }

    let token_dir = root.join("token");
    for (name, token) in [
        ("root", intentgate_fuzz::root_token()),
        ("attenuated", intentgate_fuzz::attenuated_token()),
    ] {
        write(&token_dir, &format!("{name}.txt"), token.as_bytes())?;
        let body = URL_SAFE_NO_PAD
            .decode(token.trim_start_matches(intentgate_core::token::PREFIX))
            .map_err(std::io::Error::other)?;
        write(&token_dir, &format!("{name}.bin"), &body)?;
    }
    let key = intentgate_fuzz::memory_signing_key();
    let mut chain = ChainWriter::new(&key, intentgate_fuzz::ROOT_JTI);
    chain.append(b"user: show invoice 7");
    chain.append(b"tool: read_invoice -> 120 EUR");
    write(&token_dir, "memory-header.txt", chain.header().as_bytes())?;
    let json = serde_json::to_vec(chain.chain()).map_err(std::io::Error::other)?;
    write(&token_dir, "memory-chain.json", &json)?;
    Ok(())
}

"""The console's in-browser proof checking (control-plane/console/merkle.js, sha256.js) against what the
Rust code produces: every inclusion proof the control plane serves for every leaf of every tree size of a
tenant's log, checked in Chromium with WebCrypto's SHA-256 and with the console's own JS SHA-256; roots
computed independently here (RFC 9162 §2.1.1) and matched with the root the control plane's verify walk
reports; a real signed tree head's Ed25519 signature. Every tampered input must be refused."""

from __future__ import annotations

import hashlib
import json

from playwright.sync_api import Page

from .gateway import OTHER, POLICY, Gateway

CHECK = """async ({ vectors, roots, head, keys, samples }) => {
  const m = await import('/console/merkle.js');
  const { sha256 } = await import('/console/sha256.js');
  const failures = [];
  const refuses = async (what, work) => {
    try { await work(); failures.push(`accepted ${what}`); } catch { /* refused, as it must be */ }
  };
  for (const forceJs of [false, true]) {
    for (const v of vectors) {
      const leaf = await m.leafHash(new TextEncoder().encode(v.event), { forceJs });
      if (m.toHex(leaf) !== v.leaf_hash) failures.push(`leaf hash of ${v.event_id} (forceJs ${forceJs})`);
      const path = v.audit_path.map((p, i) => m.fromHex(`p${i}`, p));
      const root = m.fromHex('root', roots[v.tree_size]);
      try {
        await m.verifyInclusion(leaf, v.leaf_index, v.tree_size, path, root, { forceJs });
      } catch (err) {
        failures.push(`leaf ${v.leaf_index} of ${v.tree_size}: ${err.message}`);
      }
      if (path.length) {
        const bent = path.map((p) => p.slice());
        bent[0][0] ^= 1;
        await refuses(`a bent path for ${v.leaf_index}/${v.tree_size}`, () => m.verifyInclusion(leaf, v.leaf_index, v.tree_size, bent, root, { forceJs }));
        await refuses(`a shortened path for ${v.leaf_index}/${v.tree_size}`, () => m.verifyInclusion(leaf, v.leaf_index, v.tree_size, path.slice(1), root, { forceJs }));
        const other = v.leaf_index ^ 1;
        if (other < v.tree_size) {
          await refuses(`index ${other} for ${v.leaf_index}/${v.tree_size}`, () => m.verifyInclusion(leaf, other, v.tree_size, path, root, { forceJs }));
        }
      }
      await refuses(`an extra hash for ${v.leaf_index}/${v.tree_size}`, () => m.verifyInclusion(leaf, v.leaf_index, v.tree_size, [...path, leaf], root, { forceJs }));
      await refuses(`index beyond the tree ${v.tree_size}`, () => m.verifyInclusion(leaf, v.tree_size, v.tree_size, path, root, { forceJs }));
    }
  }
  for (const s of samples) {
    const bytes = new TextEncoder().encode(s.text);
    if (m.toHex(sha256(bytes)) !== s.sha256) failures.push(`js sha256 of ${s.text.length} chars`);
  }
  await m.verifyTreeHead(head, keys).catch((err) => failures.push(`tree head: ${err.message}`));
  await refuses('a tree head with another timestamp', () => m.verifyTreeHead({ ...head, timestamp: head.timestamp + 1 }, keys));
  await refuses('a tree head with another size', () => m.verifyTreeHead({ ...head, tree_size: head.tree_size + 1 }, keys));
  await refuses('a tree head of another tenant', () => m.verifyTreeHead({ ...head, tenant: head.tenant + 'x' }, keys));
  await refuses('a key that does not hash to its id', () => m.verifyTreeHead(head, keys.map((k) => ({ ...k, public_key: btoa(String.fromCharCode(...new Uint8Array(32).fill(7))) }))));
  return failures;
}"""


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1's Merkle Tree Hash, written here from the RFC as the test's own oracle."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def test_the_browser_checks_every_proof_the_rust_code_makes_and_refuses_every_tampered_one(gateway: Gateway, admin_page: Page) -> None:
    cp, tenant = gateway.cp, OTHER
    for n in range(11):
        cp.ok("POST", "/v1/admin/policies/drafts", json={"name": f"vector-{n}", "tenant": tenant, "rego_source": POLICY})
    exported = cp.request("GET", "/v1/admin/audit/export", params={"tenant": tenant, "format": "ndjson"}).text
    leaves = [line.encode() for line in exported.split("\n") if line]
    ids = [json.loads(leaf)["id"] for leaf in leaves]
    assert len(leaves) >= 12
    whole = cp.verify(tenant)
    assert whole["tree_root"] == mth(leaves).hex(), "the oracle agrees with the Rust root"
    roots = {size: mth(leaves[:size]).hex() for size in range(1, len(leaves) + 1)}
    vectors = [
        cp.ok("GET", "/v1/admin/audit/proofs/inclusion", params={"tenant": tenant, "event_id": ids[index], "tree_size": size})
        for size in range(1, len(leaves) + 1)
        for index in range(size)
    ]
    head = cp.ok("POST", "/v1/admin/audit/tree-head", params={"tenant": tenant})
    keys = cp.ok("GET", "/v1/admin/keys")
    samples = [{"text": t, "sha256": hashlib.sha256(t.encode()).hexdigest()} for t in ("", "abc", "a" * 55, "b" * 56, "c" * 64, "é🔐" * 300)]
    failures = admin_page.evaluate(CHECK, {"vectors": vectors, "roots": roots, "head": head, "keys": keys, "samples": samples})
    assert failures == [], failures
    assert len(vectors) == len(leaves) * (len(leaves) + 1) // 2

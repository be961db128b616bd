// Checks an audit event's inclusion proof in the browser, against the tenant's signed tree head,
// exactly as `intentgate audit verify-proof` does (filter/core/src/audit/merkle): leaf hash
// SHA-256(0x00 ‖ event), node hash SHA-256(0x01 ‖ left ‖ right), the RFC 9162 §2.1.3.2 path
// walk, and the Ed25519 signature over
// "intentgate/tree-head/v1\0" ‖ u16 len ‖ tenant ‖ u64 tree_size ‖ root ‖ i64 timestamp_ms.

import { sha256 } from './sha256.js';

const encoder = new TextEncoder();

/** WebCrypto exists only in secure contexts (HTTPS, localhost). */
export const hasWebCrypto = () => Boolean(globalThis.crypto && globalThis.crypto.subtle);

async function digest(bytes, options = {}) {
  if (!options.forceJs && hasWebCrypto()) return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return sha256(bytes);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

/** 32 bytes from 64 hex digits; `field` names what was malformed. */
export function fromHex(field, text) {
  if (typeof text !== 'string' || !/^[0-9a-fA-F]{64}$/.test(text.trim())) throw new Error(`${field} must be 64 hex digits`);
  const clean = text.trim();
  return Uint8Array.from({ length: 32 }, (_, i) => parseInt(clean.slice(i * 2, i * 2 + 2), 16));
}

export function fromBase64(field, text, length) {
  let bytes;
  try {
    bytes = Uint8Array.from(atob(String(text).trim()), (c) => c.charCodeAt(0));
  } catch {
    throw new Error(`${field} is not base64`);
  }
  if (bytes.length !== length) throw new Error(`${field} must be base64 of ${length} bytes`);
  return bytes;
}

export const leafHash = (leaf, options) => digest(concat(Uint8Array.of(0), leaf), options);
export const nodeHash = (left, right, options) => digest(concat(Uint8Array.of(1), left, right), options);

const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

/** RFC 9162 §2.1.3.2; throws with the reason when `path` does not lead from `leaf` to `root`. */
export async function verifyInclusion(leaf, index, size, path, root, options) {
  let fnode = BigInt(index);
  let snode = BigInt(size) - 1n;
  if (fnode > snode) throw new Error(`leaf ${index} is not in a tree of ${size} leaves`);
  let r = leaf;
  for (const p of path) {
    if (snode === 0n) throw new Error('the inclusion proof has more hashes than the tree has levels');
    if ((fnode & 1n) === 1n || fnode === snode) {
      r = await nodeHash(p, r, options);
      if ((fnode & 1n) === 0n) {
        while (fnode !== 0n && (fnode & 1n) === 0n) {
          fnode >>= 1n;
          snode >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p, options);
    }
    fnode >>= 1n;
    snode >>= 1n;
  }
  if (snode !== 0n) throw new Error('the inclusion proof has fewer hashes than the tree has levels');
  if (!equal(r, root)) throw new Error("the inclusion proof does not lead to the tree head's root");
  return true;
}

/** The bytes a tree head's signature covers. */
export function treeHeadBytes(head) {
  const tenant = encoder.encode(head.tenant);
  if (tenant.length > 0xffff) throw new Error('the tenant name is too long');
  const fixed = new DataView(new ArrayBuffer(2));
  fixed.setUint16(0, tenant.length);
  const numbers = new DataView(new ArrayBuffer(8));
  numbers.setBigUint64(0, BigInt(head.tree_size));
  const stamp = new DataView(new ArrayBuffer(8));
  stamp.setBigInt64(0, BigInt(head.timestamp));
  return concat(
    encoder.encode('intentgate/tree-head/v1\0'),
    new Uint8Array(fixed.buffer),
    tenant,
    new Uint8Array(numbers.buffer),
    fromHex('root_hash', head.root_hash),
    new Uint8Array(stamp.buffer),
  );
}

/** A key's id as the core derives it: "ig-" and the first 8 bytes of SHA-256(public key), hex. */
export async function keyId(publicKey, options) {
  return `ig-${toHex((await digest(publicKey, options)).slice(0, 8))}`;
}

/** Checks the head's Ed25519 signature with the published key of its `key_id`. */
export async function verifyTreeHead(head, keys) {
  const key = keys.find((k) => k.kid === head.key_id);
  if (!key) throw new Error(`the tree head is signed by key ${head.key_id}, which the API does not publish`);
  const publicKey = fromBase64('public_key', key.public_key, 32);
  if ((await keyId(publicKey)) !== head.key_id) throw new Error(`the published key ${key.kid} does not hash to its id`);
  const signature = fromBase64('signature', head.signature, 64);
  if (!hasWebCrypto()) throw new Error('the signature cannot be checked here: WebCrypto needs a secure context (HTTPS or localhost)');
  const imported = await crypto.subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']);
  if (!(await crypto.subtle.verify({ name: 'Ed25519' }, imported, signature, treeHeadBytes(head)))) {
    throw new Error("the tree head's signature does not verify");
  }
  return key;
}

/** Every check of an inclusion proof, each `{check, ok, detail}`; `ok` when all hold. */
export async function checkInclusion({ head, proof, keys, eventId }, options) {
  const steps = [];
  const step = async (check, work) => {
    try {
      steps.push({ check, ok: true, detail: (await work()) || 'holds' });
    } catch (err) {
      steps.push({ check, ok: false, detail: err.message });
    }
  };
  await step('The tree head is signed by the control plane', async () => {
    const key = await verifyTreeHead(head, keys);
    return `Ed25519 signature by ${key.kid} (${key.status}) over ${head.tree_size} events`;
  });
  await step('The proof is for this tree head', () => {
    if (proof.tenant !== head.tenant || proof.tree_size !== head.tree_size) {
      throw new Error(`the proof is for ${proof.tenant} at size ${proof.tree_size}, the head for ${head.tenant} at size ${head.tree_size}`);
    }
    return `tenant ${head.tenant}, ${head.tree_size} events`;
  });
  await step('The event is the logged leaf', async () => {
    if (typeof proof.event !== 'string') throw new Error('the proof carries no event');
    const hashed = await leafHash(encoder.encode(proof.event), options);
    if (!equal(hashed, fromHex('leaf_hash', proof.leaf_hash))) throw new Error("the event does not hash to the proof's leaf_hash");
    const parsed = JSON.parse(proof.event);
    if (parsed.id !== (eventId || proof.event_id) || parsed.tenant !== head.tenant) throw new Error("the event's id or tenant is not the one asked for");
    return `SHA-256(0x00 ‖ event) = ${toHex(hashed)}`;
  });
  await step("The audit path leads to the head's root", async () => {
    const path = proof.audit_path.map((p, i) => fromHex(`audit_path[${i}]`, p));
    await verifyInclusion(fromHex('leaf_hash', proof.leaf_hash), proof.leaf_index, proof.tree_size, path, fromHex('root_hash', head.root_hash), options);
    return `leaf ${proof.leaf_index} of ${proof.tree_size}, ${path.length} hashes, root ${head.root_hash}`;
  });
  return { ok: steps.every((s) => s.ok), steps };
}

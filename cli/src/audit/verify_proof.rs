//! `intentgate audit verify-proof`: checks, with only the control plane's public key, that a tree
//! head is signed by it, that an event is in the tree that head describes (inclusion), and that an
//! older head's tree is a prefix of the newer one's (consistency: nothing before it was changed or
//! removed). Inputs come from files (as served by the API or exported earlier) or from the API.
//! Exit 0 when every requested check holds, 1 when one fails, 2 on a usage or input error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use intentgate_core::audit::merkle::{
    ConsistencyProof, InclusionProof, SignedTreeHead, leaf_hash, parse_hash,
};
use intentgate_core::token::PublicKeys;
use serde_json::{Value, json};

use super::fetch::Api;
use crate::common::{print_json, public_keys, read_json, read_text};
use crate::error::CliError;

#[derive(clap::Args)]
pub struct Args {
    /// The control plane's public key (base64), as `intentgate keygen` prints it; repeat for several.
    #[arg(long = "public-key", value_name = "BASE64", required = true)]
    public_keys: Vec<String>,
    /// The signed tree head (JSON of GET /v1/admin/audit/tree-head) [default with --url: fetched]
    #[arg(long, value_name = "FILE")]
    tree_head: Option<PathBuf>,
    /// An inclusion proof (JSON of GET /v1/admin/audit/proofs/inclusion)
    #[arg(long, value_name = "FILE")]
    inclusion: Option<PathBuf>,
    /// The event the inclusion proof is for (its canonical JSON, a line of the ndjson export)
    /// [default: the proof's `event`]
    #[arg(long, value_name = "FILE")]
    event: Option<PathBuf>,
    /// An earlier signed tree head to check the current one against
    #[arg(long, value_name = "FILE")]
    old_tree_head: Option<PathBuf>,
    /// A consistency proof from the earlier head's size to the current one's
    /// (JSON of GET /v1/admin/audit/proofs/consistency) [default with --url: fetched]
    #[arg(long, value_name = "FILE")]
    consistency: Option<PathBuf>,
    /// The control plane (or gateway) URL, to fetch what is not given as a file
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Admin token for --url
    #[arg(long, env = "INTENTGATE_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Tenant (with the superadmin token)
    #[arg(long)]
    tenant: Option<String>,
    /// With --url: the event to fetch an inclusion proof for
    #[arg(long, value_name = "ID")]
    event_id: Option<String>,
}

pub fn run(args: &Args) -> Result<ExitCode, CliError> {
    let keys = public_keys(&args.public_keys)?;
    let api = match &args.url {
        Some(url) => {
            let token = args
                .token
                .as_deref()
                .context("--url needs --token (or INTENTGATE_ADMIN_TOKEN)")?;
            Some(Api::new(url, token, args.tenant.as_deref())?)
        }
        None => None,
    };
    let head: SignedTreeHead = match (&args.tree_head, &api) {
        (Some(path), _) => read_json(path)?,
        (None, Some(api)) => api.get("v1/admin/audit/tree-head", &[])?,
        (None, None) => return Err(anyhow::anyhow!("give --tree-head FILE or --url").into()),
    };
    let mut ok = true;
    let mut out = serde_json::Map::new();
    let head_check = head.verify(&keys);
    ok &= head_check.is_ok();
    out.insert(
        "tree_head".into(),
        head_json(&head, head_check.err().map(|e| e.to_string())),
    );

    let inclusion: Option<InclusionProof> = match (&args.inclusion, &args.event_id, &api) {
        (Some(path), _, _) => Some(read_json(path)?),
        (None, Some(id), Some(api)) => Some(api.get(
            "v1/admin/audit/proofs/inclusion",
            &[
                ("event_id", id.clone()),
                ("tree_size", head.head.tree_size.to_string()),
            ],
        )?),
        (None, Some(_), None) => return Err(anyhow::anyhow!("--event-id needs --url").into()),
        _ => None,
    };
    if let Some(proof) = inclusion {
        let event = match &args.event {
            Some(path) => Some(read_text(path)?.trim_end_matches(['\n', '\r']).to_owned()),
            None => proof.event.clone(),
        };
        let result = check_inclusion(&head, &proof, event.as_deref());
        ok &= result.is_ok();
        out.insert(
            "inclusion".into(),
            outcome(
                json!({"event_id": proof.event_id, "leaf_index": proof.leaf_index, "tree_size": proof.tree_size}),
                result.err(),
            ),
        );
    }

    if let Some(path) = &args.old_tree_head {
        let old: SignedTreeHead = read_json(path)?;
        let proof: ConsistencyProof = match (&args.consistency, &api) {
            (Some(path), _) => read_json(path)?,
            (None, Some(api)) => api.get(
                "v1/admin/audit/proofs/consistency",
                &[
                    ("first", old.head.tree_size.to_string()),
                    ("second", head.head.tree_size.to_string()),
                ],
            )?,
            (None, None) => {
                return Err(
                    anyhow::anyhow!("--old-tree-head needs --consistency FILE or --url").into(),
                );
            }
        };
        let result = check_consistency(&keys, &old, &head, &proof);
        ok &= result.is_ok();
        out.insert(
            "consistency".into(),
            outcome(
                json!({"first": proof.first, "second": proof.second}),
                result.err(),
            ),
        );
    } else if args.consistency.is_some() {
        return Err(anyhow::anyhow!("--consistency needs --old-tree-head").into());
    }
    out.insert("verified".into(), Value::from(ok));
    print_json(&Value::Object(out))?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn head_json(head: &SignedTreeHead, error: Option<String>) -> Value {
    outcome(
        json!({
            "tenant": head.head.tenant,
            "tree_size": head.head.tree_size,
            "root_hash": hex::encode(head.head.root_hash),
            "timestamp": head.head.timestamp,
            "key_id": head.key_id,
        }),
        error.map(anyhow::Error::msg),
    )
}

/// `fields` plus `verified`, and `error` when it failed.
fn outcome(mut fields: Value, error: Option<anyhow::Error>) -> Value {
    if let Some(map) = fields.as_object_mut() {
        map.insert("verified".into(), Value::from(error.is_none()));
        if let Some(error) = error {
            map.insert("error".into(), Value::from(format!("{error:#}")));
        }
    }
    fields
}

fn check_inclusion(
    head: &SignedTreeHead,
    proof: &InclusionProof,
    event: Option<&str>,
) -> anyhow::Result<()> {
    if proof.tenant != head.head.tenant || proof.tree_size != head.head.tree_size {
        bail!(
            "the proof is for tenant {:?} at size {}, the tree head for {:?} at size {}",
            proof.tenant,
            proof.tree_size,
            head.head.tenant,
            head.head.tree_size
        );
    }
    let leaf = parse_hash("leaf_hash", &proof.leaf_hash)?;
    if let Some(event) = event {
        if leaf_hash(event.as_bytes()) != leaf {
            bail!(
                "the event does not hash to the proof's leaf_hash: it is not the event that was logged"
            );
        }
        let parsed: Value = serde_json::from_str(event).context("the event is not JSON")?;
        if parsed.get("id").and_then(Value::as_str) != Some(proof.event_id.as_str())
            || parsed.get("tenant").and_then(Value::as_str) != Some(head.head.tenant.as_str())
        {
            bail!("the event's id or tenant is not the one the proof names");
        }
    }
    proof.verify(&head.head.root_hash)?;
    Ok(())
}

fn check_consistency(
    keys: &PublicKeys,
    old: &SignedTreeHead,
    new: &SignedTreeHead,
    proof: &ConsistencyProof,
) -> anyhow::Result<()> {
    old.verify(keys).context("the earlier tree head")?;
    if old.head.tenant != new.head.tenant || proof.tenant != new.head.tenant {
        bail!("the tree heads and the proof are not all of one tenant");
    }
    if proof.first != old.head.tree_size || proof.second != new.head.tree_size {
        bail!(
            "the proof is from size {} to {}, the tree heads are of sizes {} and {}",
            proof.first,
            proof.second,
            old.head.tree_size,
            new.head.tree_size
        );
    }
    proof.verify(&old.head.root_hash, &new.head.root_hash)?;
    Ok(())
}

//! What every handler shares. Cloning is cheap: everything is behind `Arc` or a pool handle.

use std::sync::Arc;

use super::metrics::Metrics;
use crate::audit::Recorder;
use crate::auth::AdminTokens;
use crate::keys::Keys;
use crate::keys::SigningKeys;
use crate::store::Db;
use crate::store::changes::Changes;
use crate::store::page::Cursors;

#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub keys: Arc<Keys>,
    /// The key that signs new tokens (rotatable; `keys` holds the master key).
    pub signing: Arc<SigningKeys>,
    pub cursors: Cursors,
    pub tokens: Arc<AdminTokens>,
    pub changes: Changes,
    pub metrics: Arc<Metrics>,
    /// Discovery sources, the AI catalog and the sync and reports tokens.
    pub discovery: Arc<crate::discovery::Settings>,
    /// The SIEM and webhook destinations this process delivers to.
    pub delivery: Arc<crate::delivery::Configured>,
    /// Upper subtrees of the audit trees, for proofs.
    pub tree_nodes: crate::audit::tree::UpperNodes,
    /// The OAuth authorization server; `None` until built (its token endpoint answers 503).
    pub oauth: Option<Arc<crate::oauth::AuthorizationServer>>,
}

impl AppState {
    pub fn new(db: Db, keys: Keys, signing: SigningKeys, tokens: AdminTokens) -> Self {
        AppState {
            signing: Arc::new(signing),
            cursors: Cursors::new(*keys.cursor_key()),
            db,
            keys: Arc::new(keys),
            tokens: Arc::new(tokens),
            changes: Changes::new(),
            metrics: Arc::new(Metrics::default()),
            discovery: Arc::default(),
            delivery: Arc::default(),
            tree_nodes: crate::audit::tree::UpperNodes::default(),
            oauth: None,
        }
    }

    /// Where this request's changes are made (the handlers that change state take a [`Recorder`]
    /// extractor, which adds the request's elevation ticket).
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.db.clone(), self.changes.clone())
    }

    pub fn with_discovery(mut self, settings: crate::discovery::Settings) -> Self {
        self.discovery = Arc::new(settings);
        self
    }

    pub fn with_oauth(mut self, server: crate::oauth::AuthorizationServer) -> Self {
        self.oauth = Some(Arc::new(server));
        self
    }
}

//! What every handler shares. Cloning is cheap: everything is behind `Arc` or a pool handle.

use std::sync::Arc;

use crate::auth::AdminTokens;
use crate::changes::Changes;
use crate::cursor::Cursors;
use crate::db::Db;
use crate::keys::Keys;
use crate::metrics::Metrics;

#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub keys: Arc<Keys>,
    pub cursors: Cursors,
    pub tokens: Arc<AdminTokens>,
    pub changes: Changes,
    pub metrics: Arc<Metrics>,
    /// Discovery sources, the AI catalog and the sync and reports tokens (issue 8).
    pub discovery: Arc<crate::discovery::Settings>,
}

impl AppState {
    pub fn new(db: Db, keys: Keys, tokens: AdminTokens) -> Self {
        AppState {
            cursors: Cursors::new(*keys.cursor_key()),
            db,
            keys: Arc::new(keys),
            tokens: Arc::new(tokens),
            changes: Changes::new(),
            metrics: Arc::new(Metrics::default()),
            discovery: Arc::default(),
        }
    }

    pub fn with_discovery(mut self, settings: crate::discovery::Settings) -> Self {
        self.discovery = Arc::new(settings);
        self
    }
}

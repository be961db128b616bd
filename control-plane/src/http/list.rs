//! The paginated lists: `?tenant=&limit=&cursor=` read once into the tenant scope the admin may see
//! and the page requested within it. Every list answers [`Paged`]: `{"items": [...], "next_cursor": ...}`.

use serde::Deserialize;

use super::AppState;
use crate::auth::Admin;
use crate::error::Result;
use crate::store::page::Page;

/// `?tenant=&limit=&cursor=`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    pub tenant: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl ListParams {
    /// The tenant scope (`None`: all tenants) and the page of `list` requested within it.
    pub fn page(
        &self,
        state: &AppState,
        admin: &Admin,
        list: &'static str,
    ) -> Result<(Option<String>, Page)> {
        self.filtered_page(state, admin, list, None)
    }

    /// As [`ListParams::page`], for a list narrowed further by `filter`, which the cursor is bound
    /// to as well: a cursor continues only the list it was issued for.
    pub fn filtered_page(
        &self,
        state: &AppState,
        admin: &Admin,
        list: &'static str,
        filter: Option<&str>,
    ) -> Result<(Option<String>, Page)> {
        let scope = admin.scope(self.tenant.as_deref())?;
        let tenants = scope.as_deref().unwrap_or("*");
        let key = match filter {
            Some(filter) => format!("{tenants}|{filter}"),
            None => tenants.to_owned(),
        };
        let page = page(
            state,
            list,
            &key,
            self.limit.as_deref(),
            self.cursor.as_deref(),
        )?;
        Ok((scope, page))
    }
}

/// The page of `list` requested by `limit` and `cursor`, within `scope` (the key its cursors are
/// bound to).
pub fn page(
    state: &AppState,
    list: &'static str,
    scope: &str,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<Page> {
    Page::parse(&state.cursors, list, scope, limit, cursor)
}

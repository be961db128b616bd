//! Admin authentication (SPEC §6): the superadmin token and per-tenant admin tokens, compared in
//! constant time. A per-tenant admin is confined to its tenant: a `?tenant=` it sends is ignored,
//! and another tenant's resources are reported as absent.

use super::token::{HashedToken, Secret, digest};
use crate::error::{Error, Result};
use crate::validate;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    Super,
    Tenant(String),
}

/// The configured admin tokens.
#[derive(Clone)]
pub struct AdminTokens {
    entries: Vec<(HashedToken, Admin)>,
}

impl std::fmt::Debug for AdminTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminTokens")
            .field("count", &self.entries.len())
            .finish()
    }
}

impl AdminTokens {
    /// The superadmin's token, if any, and each tenant admin's.
    pub fn new(superadmin: Option<&Secret>, tenants: &[(String, Secret)]) -> Self {
        let superadmin = superadmin.map(|token| (HashedToken::new(&token.0), Admin::Super));
        let tenants = tenants
            .iter()
            .map(|(tenant, token)| (HashedToken::new(&token.0), Admin::Tenant(tenant.clone())));
        AdminTokens {
            entries: superadmin.into_iter().chain(tenants).collect(),
        }
    }

    /// The admin a presented token belongs to. Every entry is compared, match or not, so timing
    /// reveals nothing about which token came close.
    pub fn authenticate(&self, presented: &str) -> Option<Admin> {
        let presented = digest(presented);
        let mut found = None;
        for (expected, admin) in &self.entries {
            if expected.matches_digest(&presented) {
                found = Some(admin.clone());
            }
        }
        found
    }

    /// Tenants that have their own admin token.
    pub fn tenants(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().filter_map(|(_, admin)| match admin {
            Admin::Tenant(t) => Some(t.as_str()),
            Admin::Super => None,
        })
    }
}

impl Admin {
    /// The tenant an operation on one tenant applies to. A per-tenant admin always gets its own;
    /// the superadmin must name one.
    pub fn tenant(&self, requested: Option<&str>) -> Result<String> {
        match self {
            Admin::Tenant(own) => Ok(own.clone()),
            Admin::Super => {
                let tenant = requested.ok_or_else(|| {
                    Error::bad_request("tenant is required with the superadmin token")
                })?;
                validate::tenant(tenant).map_err(Error::BadRequest)?;
                Ok(tenant.to_owned())
            }
        }
    }

    /// The tenant a change applies to: as [`Admin::tenant`], but never one of the control plane's own
    /// (`_system`), which no admin writes into.
    pub fn tenant_for_change(&self, requested: Option<&str>) -> Result<String> {
        let tenant = self.tenant(requested)?;
        validate::assignable_tenant(&tenant).map_err(Error::BadRequest)?;
        Ok(tenant)
    }

    /// The tenants a list covers: a per-tenant admin's own, else the requested one, else all
    /// (`None`).
    pub fn scope(&self, requested: Option<&str>) -> Result<Option<String>> {
        match (self, requested) {
            (Admin::Tenant(own), _) => Ok(Some(own.clone())),
            (Admin::Super, None) => Ok(None),
            (Admin::Super, Some(_)) => self.tenant(requested).map(Some),
        }
    }

    pub fn may_access(&self, tenant: &str) -> bool {
        match self {
            Admin::Super => true,
            Admin::Tenant(own) => own == tenant,
        }
    }

    /// The authenticated principal, as audit events name it.
    pub fn actor(&self) -> String {
        match self {
            Admin::Super => "superadmin".into(),
            Admin::Tenant(tenant) => format!("tenant-admin:{tenant}"),
        }
    }

    /// Who made a change, given the label a request may carry in `field` (`created_by`,
    /// `promoted_by`, …) for the person behind a shared admin token.
    pub fn labelled(&self, field: &str, label: Option<String>) -> Result<Actor> {
        let principal = self.actor();
        let Some(label) = label else {
            return Ok(Actor {
                audited: principal.clone(),
                label: principal,
            });
        };
        validate::required_text(field, &label, MAX_LABEL_CHARS).map_err(Error::BadRequest)?;
        let audited = if label == principal {
            principal
        } else {
            format!("{principal} as {label}")
        };
        Ok(Actor { label, audited })
    }
}

/// The longest label a request may give for the person behind an admin token.
pub const MAX_LABEL_CHARS: usize = 256;

/// A change's author. The stored row shows the caller's label, as the API reference has it; the
/// audit chain leads with the authenticated principal, so no caller can appear there as another
/// (a tenant admin labelling itself `superadmin` is recorded as `tenant-admin:acme as superadmin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The request's label, or the principal when it gave none.
    pub label: String,
    /// The audit event's `decided_by`.
    pub audited: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> AdminTokens {
        AdminTokens::new(
            Some(&Secret("super-token-0123456789".into())),
            &[("acme".into(), Secret("acme-token-0123456789".into()))],
        )
    }

    #[test]
    fn tokens_map_to_admins() {
        let tokens = tokens();
        assert_eq!(
            tokens.authenticate("super-token-0123456789"),
            Some(Admin::Super)
        );
        assert_eq!(
            tokens.authenticate("acme-token-0123456789"),
            Some(Admin::Tenant("acme".into()))
        );
        assert_eq!(tokens.authenticate("acme-token-012345678"), None);
        assert_eq!(tokens.authenticate(""), None);
    }

    #[test]
    fn tenant_admins_are_confined() {
        let acme = Admin::Tenant("acme".into());
        assert_eq!(acme.tenant(Some("globex")).unwrap(), "acme");
        assert_eq!(acme.scope(Some("globex")).unwrap().as_deref(), Some("acme"));
        assert!(!acme.may_access("globex"));
        assert!(Admin::Super.tenant(None).is_err());
        assert!(Admin::Super.tenant(Some("bad tenant")).is_err());
        assert_eq!(Admin::Super.scope(None).unwrap(), None);
    }

    #[test]
    fn audited_actor_always_leads_with_the_authenticated_principal() {
        let acme = Admin::Tenant("acme".into());
        let forged = acme
            .labelled("promoted_by", Some("superadmin".into()))
            .unwrap();
        assert_eq!(forged.label, "superadmin");
        assert_eq!(forged.audited, "tenant-admin:acme as superadmin");
        let joe = Admin::Super
            .labelled("decided_by", Some("joe@acme.example".into()))
            .unwrap();
        assert_eq!(joe.audited, "superadmin as joe@acme.example");
        let plain = acme.labelled("created_by", None).unwrap();
        assert_eq!(
            (plain.label.as_str(), plain.audited.as_str()),
            ("tenant-admin:acme", "tenant-admin:acme")
        );
        let same = acme
            .labelled("created_by", Some("tenant-admin:acme".into()))
            .unwrap();
        assert_eq!(same.audited, "tenant-admin:acme");
        let blank = acme.labelled("decided_by", Some(" ".into())).unwrap_err();
        assert!(blank.to_string().contains("decided_by"), "{blank}");
    }
}

//! Which token ids are revoked, and in which tenant. A revocation names a tenant and a jti, and only
//! refuses tokens of that tenant: a tenant's admin names any jti, even one a token of another tenant
//! carries (a derived token's holder chooses its block's jti), without reaching that token. A
//! revocation in every tenant is for the operator of one Envoy, in its own configuration.

use std::collections::HashMap;

/// Where one jti is revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Everywhere,
    Tenants(Vec<String>),
}

/// Revoked jtis by tenant. Cloning copies; the gateway state holding it is swapped whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revoked {
    by_jti: HashMap<String, Scope>,
}

impl Revoked {
    /// Revokes `jti` for tokens of `tenant`.
    pub fn insert(&mut self, tenant: &str, jti: &str) {
        match self
            .by_jti
            .entry(jti.to_owned())
            .or_insert_with(|| Scope::Tenants(Vec::new()))
        {
            Scope::Everywhere => {}
            Scope::Tenants(tenants) => {
                if !tenants.iter().any(|t| t == tenant) {
                    tenants.push(tenant.to_owned());
                }
            }
        }
    }

    /// Revokes `jti` for tokens of every tenant.
    pub fn insert_everywhere(&mut self, jti: &str) {
        self.by_jti.insert(jti.to_owned(), Scope::Everywhere);
    }

    /// Whether `jti` is revoked for tokens of `tenant`.
    pub fn contains(&self, tenant: &str, jti: &str) -> bool {
        match self.by_jti.get(jti) {
            None => false,
            Some(Scope::Everywhere) => true,
            Some(Scope::Tenants(tenants)) => tenants.iter().any(|t| t == tenant),
        }
    }

    /// How many jtis are revoked somewhere.
    pub fn len(&self) -> usize {
        self.by_jti.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_jti.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_refuses_its_tenants_tokens_only() {
        let mut revoked = Revoked::default();
        revoked.insert("acme", "01JA");
        revoked.insert("acme", "01JA");
        revoked.insert("globex", "01JA");
        revoked.insert_everywhere("01JALL");
        revoked.insert("acme", "01JALL");
        assert!(revoked.contains("acme", "01JA") && revoked.contains("globex", "01JA"));
        assert!(!revoked.contains("initech", "01JA"), "another tenant's jti");
        assert!(!revoked.contains("acme", "01JB"));
        assert!(revoked.contains("initech", "01JALL") && revoked.contains("", "01JALL"));
        assert_eq!(revoked.len(), 2);
    }
}

//! The authorization server's metadata (RFC 8414), served at
//! `/.well-known/oauth-authorization-server` (after the issuer's path, when it has one).

use serde_json::{Value, json};

use super::clients::{AuthMethod, GrantType};
use super::grant::ALL_TOOLS;
use super::jwk::Alg;
use super::settings::Issuer;
use super::token::ID_JAG_PROFILE;

/// The metadata document. There is no authorization flow (`response_types_supported` is empty);
/// `authorization_endpoint` is still named, because some clients' metadata parsers require it (the
/// MCP SDKs'): it answers `unsupported_response_type`.
pub fn document(issuer: &Issuer) -> Value {
    json!({
        "issuer": issuer.as_str(),
        "token_endpoint": issuer.token_endpoint(),
        "authorization_endpoint": issuer.authorization_endpoint(),
        "response_types_supported": [],
        "grant_types_supported": GrantType::ALL.map(GrantType::as_str),
        "token_endpoint_auth_methods_supported": [
            AuthMethod::ClientSecretBasic.as_str(),
            AuthMethod::ClientSecretPost.as_str(),
            AuthMethod::PrivateKeyJwt.as_str(),
        ],
        "token_endpoint_auth_signing_alg_values_supported": Alg::ALL.map(Alg::name),
        "scopes_supported": [ALL_TOOLS],
        "authorization_grant_profiles_supported": [ID_JAG_PROFILE],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_the_issuer_its_endpoint_and_what_it_supports() {
        let issuer = Issuer::parse("https://gw.example.com").unwrap();
        let doc = document(&issuer);
        assert_eq!(doc["issuer"], "https://gw.example.com");
        assert_eq!(doc["token_endpoint"], "https://gw.example.com/oauth/token");
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            json!([
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt"
            ])
        );
        assert_eq!(
            doc["grant_types_supported"][1],
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        );
        assert!(
            doc["token_endpoint_auth_signing_alg_values_supported"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a != "none" && !a.as_str().unwrap().starts_with("HS"))
        );
    }
}

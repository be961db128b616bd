//! Reading tree heads and proofs from the control plane's admin API (`--url`, `--token`). What
//! comes back is only input to the checks: nothing the server says is trusted.

use anyhow::{Context as _, bail};
use serde::de::DeserializeOwned;

pub struct Api {
    base: reqwest::Url,
    token: String,
    tenant: Option<String>,
    client: reqwest::blocking::Client,
}

impl Api {
    pub fn new(url: &str, token: &str, tenant: Option<&str>) -> anyhow::Result<Self> {
        let base = reqwest::Url::parse(url).with_context(|| format!("--url {url} is not a URL"))?;
        if !matches!(base.scheme(), "http" | "https") {
            bail!("--url must be http:// or https://");
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Api {
            base,
            token: token.to_owned(),
            tenant: tenant.map(str::to_owned),
            client,
        })
    }

    /// `GET <url><path>?tenant=…&<query>` with the admin token, as JSON.
    pub fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let mut url = self
            .base
            .join(path)
            .with_context(|| format!("cannot build the URL for {path}"))?;
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(tenant) = &self.tenant {
                pairs.append_pair("tenant", tenant);
            }
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        let response = self
            .client
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .with_context(|| format!("GET {path} failed"))?;
        let status = response.status();
        let body = response
            .text()
            .with_context(|| format!("GET {path}: cannot read the answer"))?;
        if !status.is_success() {
            bail!("GET {path} answered {status}: {}", body.trim());
        }
        serde_json::from_str(&body).with_context(|| format!("GET {path}: the answer is not valid"))
    }
}

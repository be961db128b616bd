//! Recognising AI traffic: which destinations are model APIs, AI applications or MCP servers, and
//! what kind of client is talking to them. The built-in catalog is extended by configuration
//! (`INTENTGATE_DISCOVERY_AI_DOMAINS`, `INTENTGATE_DISCOVERY_MCP_ENDPOINTS`).

use super::record::Observation;

/// What a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// A model API called by programs (api.openai.com, ...).
    ModelApi,
    /// An AI application people use in a browser (chatgpt.com, ...).
    AiApp,
    /// A Model Context Protocol server.
    Mcp,
}

impl ServiceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::ModelApi => "model_api",
            ServiceKind::AiApp => "ai_app",
            ServiceKind::Mcp => "mcp_server",
        }
    }
}

/// A recognised destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Stable identifier (`openai-api`, `mcp:tools.example.com`).
    pub id: String,
    pub name: String,
    pub kind: ServiceKind,
}

/// Host patterns: a pattern matches a host equal to it or ending in `.pattern`; a `*` label
/// matches any one label (`bedrock-runtime.*.amazonaws.com`).
const BUILTIN: &[(&str, &str, &str, ServiceKind)] = &[
    (
        "api.openai.com",
        "openai-api",
        "OpenAI API",
        ServiceKind::ModelApi,
    ),
    (
        "openai.azure.com",
        "azure-openai",
        "Azure OpenAI",
        ServiceKind::ModelApi,
    ),
    (
        "api.anthropic.com",
        "anthropic-api",
        "Anthropic API",
        ServiceKind::ModelApi,
    ),
    (
        "generativelanguage.googleapis.com",
        "gemini-api",
        "Google Gemini API",
        ServiceKind::ModelApi,
    ),
    (
        "aiplatform.googleapis.com",
        "vertex-ai",
        "Google Vertex AI",
        ServiceKind::ModelApi,
    ),
    (
        "bedrock-runtime.*.amazonaws.com",
        "aws-bedrock",
        "Amazon Bedrock",
        ServiceKind::ModelApi,
    ),
    (
        "bedrock-agent-runtime.*.amazonaws.com",
        "aws-bedrock-agents",
        "Amazon Bedrock Agents",
        ServiceKind::ModelApi,
    ),
    (
        "api.mistral.ai",
        "mistral-api",
        "Mistral AI API",
        ServiceKind::ModelApi,
    ),
    (
        "api.cohere.com",
        "cohere-api",
        "Cohere API",
        ServiceKind::ModelApi,
    ),
    (
        "api.cohere.ai",
        "cohere-api",
        "Cohere API",
        ServiceKind::ModelApi,
    ),
    (
        "api.groq.com",
        "groq-api",
        "Groq API",
        ServiceKind::ModelApi,
    ),
    (
        "api.together.xyz",
        "together-api",
        "Together AI API",
        ServiceKind::ModelApi,
    ),
    (
        "api.perplexity.ai",
        "perplexity-api",
        "Perplexity API",
        ServiceKind::ModelApi,
    ),
    (
        "api.deepseek.com",
        "deepseek-api",
        "DeepSeek API",
        ServiceKind::ModelApi,
    ),
    ("api.x.ai", "xai-api", "xAI API", ServiceKind::ModelApi),
    (
        "openrouter.ai",
        "openrouter",
        "OpenRouter",
        ServiceKind::ModelApi,
    ),
    (
        "api-inference.huggingface.co",
        "huggingface-inference",
        "Hugging Face Inference",
        ServiceKind::ModelApi,
    ),
    (
        "router.huggingface.co",
        "huggingface-inference",
        "Hugging Face Inference",
        ServiceKind::ModelApi,
    ),
    (
        "api.replicate.com",
        "replicate-api",
        "Replicate API",
        ServiceKind::ModelApi,
    ),
    (
        "api.fireworks.ai",
        "fireworks-api",
        "Fireworks AI API",
        ServiceKind::ModelApi,
    ),
    (
        "api.githubcopilot.com",
        "github-copilot",
        "GitHub Copilot",
        ServiceKind::ModelApi,
    ),
    ("api2.cursor.sh", "cursor", "Cursor", ServiceKind::ModelApi),
    ("chatgpt.com", "chatgpt", "ChatGPT", ServiceKind::AiApp),
    ("chat.openai.com", "chatgpt", "ChatGPT", ServiceKind::AiApp),
    ("claude.ai", "claude", "Claude", ServiceKind::AiApp),
    (
        "gemini.google.com",
        "gemini",
        "Google Gemini",
        ServiceKind::AiApp,
    ),
    (
        "copilot.microsoft.com",
        "microsoft-copilot",
        "Microsoft Copilot",
        ServiceKind::AiApp,
    ),
    (
        "chat.mistral.ai",
        "le-chat",
        "Mistral Le Chat",
        ServiceKind::AiApp,
    ),
    (
        "chat.deepseek.com",
        "deepseek-chat",
        "DeepSeek Chat",
        ServiceKind::AiApp,
    ),
    (
        "perplexity.ai",
        "perplexity",
        "Perplexity",
        ServiceKind::AiApp,
    ),
    ("poe.com", "poe", "Poe", ServiceKind::AiApp),
];

/// Vendor app names and categories that mean AI, for records without a recognisable host
/// (Defender for Cloud Apps activities, discovered-app summaries).
const APP_WORDS: &[(&str, &str, &str)] = &[
    ("chatgpt", "chatgpt", "ChatGPT"),
    ("openai", "openai", "OpenAI"),
    ("anthropic", "anthropic", "Anthropic"),
    ("claude", "claude", "Claude"),
    ("gemini", "gemini", "Google Gemini"),
    ("copilot", "microsoft-copilot", "Microsoft Copilot"),
    ("mistral", "mistral", "Mistral AI"),
    ("perplexity", "perplexity", "Perplexity"),
    ("deepseek", "deepseek", "DeepSeek"),
    ("hugging face", "huggingface", "Hugging Face"),
    ("bedrock", "aws-bedrock", "Amazon Bedrock"),
];
const AI_CATEGORIES: &[&str] = &[
    "generative ai",
    "artificial intelligence",
    "ai & ml",
    "generativeai",
];

/// User-agent fragments of programs (SDKs, agent frameworks, HTTP libraries) as opposed to
/// browsers; traffic they send to AI services is an agent's.
const PROGRAM_AGENTS: &[&str] = &[
    "python",
    "openai/",
    "anthropic/",
    "langchain",
    "llamaindex",
    "llama-index",
    "autogen",
    "crewai",
    "claude-code",
    "claude-cli",
    "cursor",
    "copilot",
    "mcp",
    "node-fetch",
    "undici",
    "axios",
    "okhttp",
    "go-http-client",
    "curl/",
    "java/",
    "dotnet",
    "reqwest",
    "httpx",
    "aiohttp",
    "semantic-kernel",
    "vercel-ai",
    "ai-sdk",
];

#[derive(Debug, Clone)]
struct HostRule {
    labels: Vec<String>,
    service: Service,
}

/// The recognition rules in force.
#[derive(Debug, Clone)]
pub struct Catalog {
    hosts: Vec<HostRule>,
    /// Configured MCP endpoints: a host pattern, optionally with a path prefix.
    mcp: Vec<(Vec<String>, Option<String>)>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new(&[], &[]).unwrap_or(Catalog {
            hosts: Vec::new(),
            mcp: Vec::new(),
        })
    }
}

fn labels(pattern: &str) -> Result<Vec<String>, String> {
    let pattern = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<String> = pattern.split('.').map(str::to_owned).collect();
    let valid = !pattern.is_empty()
        && labels.iter().all(|l| {
            l == "*" || (!l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        });
    if valid {
        Ok(labels)
    } else {
        Err(format!("{pattern:?} is not a host name or pattern"))
    }
}

fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

impl Catalog {
    /// The built-in rules plus `ai_domains` (`host-pattern` or `host-pattern=Service name`, model
    /// APIs) and `mcp_endpoints` (`host-pattern` or `host-pattern/path-prefix`). Configured rules
    /// are consulted first.
    pub fn new(ai_domains: &[String], mcp_endpoints: &[String]) -> Result<Self, String> {
        let mut hosts = Vec::new();
        for entry in ai_domains {
            let (pattern, name) = match entry.split_once('=') {
                Some((p, n)) if !n.trim().is_empty() => (p.trim(), n.trim().to_owned()),
                _ => (entry.trim(), entry.trim().to_owned()),
            };
            hosts.push(HostRule {
                labels: labels(pattern)?,
                service: Service {
                    id: slug(&name),
                    name,
                    kind: ServiceKind::ModelApi,
                },
            });
        }
        for (pattern, id, name, kind) in BUILTIN {
            hosts.push(HostRule {
                labels: labels(pattern)?,
                service: Service {
                    id: (*id).to_owned(),
                    name: (*name).to_owned(),
                    kind: *kind,
                },
            });
        }
        // The most specific pattern wins (api.perplexity.ai before perplexity.ai).
        hosts.sort_by_key(|rule| std::cmp::Reverse(rule.labels.len()));
        let mut mcp = Vec::new();
        for entry in mcp_endpoints {
            let entry = entry.trim();
            let (host, path) = match entry.split_once('/') {
                Some((h, p)) => (h, Some(format!("/{}", p.trim_start_matches('/')))),
                None => (entry, None),
            };
            mcp.push((labels(host)?, path));
        }
        Ok(Catalog { hosts, mcp })
    }

    /// The AI service a record talks to, if any.
    pub fn classify(&self, observation: &Observation) -> Option<Service> {
        if let Some(host) = observation.host.as_deref() {
            if let Some(service) = self.mcp_service(host, observation.path.as_deref()) {
                return Some(service);
            }
            if let Some(rule) = self.hosts.iter().find(|r| matches(&r.labels, host)) {
                return Some(rule.service.clone());
            }
        }
        self.by_app(observation)
    }

    fn mcp_service(&self, host: &str, path: Option<&str>) -> Option<Service> {
        let configured = self.mcp.iter().any(|(labels, prefix)| {
            matches(labels, host)
                && prefix
                    .as_deref()
                    .is_none_or(|p| path.is_some_and(|path| path.starts_with(p)))
        });
        // Streamable HTTP servers conventionally serve `/mcp`; many hosts are `mcp.<domain>`.
        let conventional = host.split('.').next() == Some("mcp")
            || path.is_some_and(|p| p.split('/').any(|segment| segment == "mcp"));
        (configured || conventional).then(|| Service {
            id: format!("mcp:{host}"),
            name: format!("MCP server {host}"),
            kind: ServiceKind::Mcp,
        })
    }

    fn by_app(&self, observation: &Observation) -> Option<Service> {
        let app = observation.app.as_deref().map(str::to_ascii_lowercase);
        if let Some(app) = app.as_deref()
            && let Some((_, id, name)) = APP_WORDS.iter().find(|(word, _, _)| app.contains(word))
        {
            return Some(Service {
                id: (*id).to_owned(),
                name: (*name).to_owned(),
                kind: ServiceKind::AiApp,
            });
        }
        let category = observation.category.as_deref()?.to_ascii_lowercase();
        if AI_CATEGORIES.iter().any(|c| category.contains(c)) {
            let name = observation
                .app
                .clone()
                .or_else(|| observation.host.clone())?;
            return Some(Service {
                id: slug(&name),
                name,
                kind: ServiceKind::AiApp,
            });
        }
        None
    }
}

fn matches(pattern: &[String], host: &str) -> bool {
    let host: Vec<&str> = host.split('.').collect();
    if host.len() < pattern.len() {
        return false;
    }
    pattern
        .iter()
        .rev()
        .zip(host.iter().rev())
        .all(|(p, h)| p == "*" || p == h)
}

/// What kind of client an agent is, from what it talks to and how.
pub fn agent_kind(service: &Service, user_agent: Option<&str>) -> &'static str {
    if service.kind == ServiceKind::Mcp {
        return "mcp_client";
    }
    let ua = user_agent.unwrap_or_default().to_ascii_lowercase();
    let program = PROGRAM_AGENTS.iter().any(|p| ua.contains(p));
    let browser = ua.starts_with("mozilla/");
    if service.kind == ServiceKind::ModelApi || (program && !browser) {
        "agent"
    } else {
        "ai_app_user"
    }
}

/// The inventory name of the agent behind a record: the name the source gives, else the device,
/// the user, the client address, and at last the application itself (an org-wide app summary).
pub fn agent_name(observation: &Observation, service: &Service) -> String {
    observation
        .agent
        .clone()
        .or_else(|| observation.device.clone())
        .or_else(|| observation.user.clone())
        .or_else(|| observation.client_ip.clone())
        .unwrap_or_else(|| service.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(host: &str, path: Option<&str>) -> Observation {
        Observation {
            host: Some(host.into()),
            path: path.map(Into::into),
            ..Observation::default()
        }
    }

    #[test]
    fn model_apis_apps_and_mcp_servers_are_recognised() {
        let catalog = Catalog::default();
        let id = |o: &Observation| catalog.classify(o).map(|s| s.id);
        assert_eq!(
            id(&to("api.openai.com", None)).as_deref(),
            Some("openai-api")
        );
        assert_eq!(
            id(&to("acme.openai.azure.com", None)).as_deref(),
            Some("azure-openai")
        );
        assert_eq!(
            id(&to("bedrock-runtime.eu-west-1.amazonaws.com", None)).as_deref(),
            Some("aws-bedrock")
        );
        assert_eq!(
            id(&to("api.perplexity.ai", None)).as_deref(),
            Some("perplexity-api")
        );
        assert_eq!(
            id(&to("www.perplexity.ai", None)).as_deref(),
            Some("perplexity")
        );
        assert_eq!(
            id(&to("tools.acme.example", Some("/v1/mcp"))).as_deref(),
            Some("mcp:tools.acme.example")
        );
        assert_eq!(
            id(&to("mcp.linear.app", Some("/sse"))).as_deref(),
            Some("mcp:mcp.linear.app")
        );
        assert_eq!(id(&to("mail.google.com", None)), None);
        assert_eq!(id(&to("notopenai.com", None)), None);
        let app = Observation {
            app: Some("ChatGPT Enterprise".into()),
            ..Observation::default()
        };
        assert_eq!(id(&app).as_deref(), Some("chatgpt"));
    }

    #[test]
    fn configured_domains_and_endpoints_extend_the_catalog() {
        let catalog = Catalog::new(
            &["llm.internal.example=Internal LLM".into()],
            &["tools.example.com/rpc".into()],
        )
        .unwrap();
        let service = catalog
            .classify(&to("gpu1.llm.internal.example", None))
            .unwrap();
        assert_eq!(
            (service.id.as_str(), service.name.as_str()),
            ("internal-llm", "Internal LLM")
        );
        assert_eq!(
            catalog
                .classify(&to("tools.example.com", Some("/rpc/x")))
                .unwrap()
                .kind,
            ServiceKind::Mcp
        );
        assert_eq!(
            catalog.classify(&to("tools.example.com", Some("/other"))),
            None
        );
        assert!(Catalog::new(&["bad host".into()], &[]).is_err());
    }

    #[test]
    fn clients_are_told_apart_by_user_agent() {
        let chat = Catalog::default()
            .classify(&to("chatgpt.com", None))
            .unwrap();
        assert_eq!(
            agent_kind(&chat, Some("Mozilla/5.0 (Windows NT 10.0)")),
            "ai_app_user"
        );
        assert_eq!(agent_kind(&chat, Some("python-httpx/0.27")), "agent");
        let api = Catalog::default()
            .classify(&to("api.anthropic.com", None))
            .unwrap();
        assert_eq!(agent_kind(&api, None), "agent");
    }
}

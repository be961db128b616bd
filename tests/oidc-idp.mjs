// A real OpenID provider (oidc-provider) for the end-to-end tests of the token endpoint: it issues
// JWT access tokens by the client_credentials grant, signed with its own RS256 key and published at
// its JWKS URL, for the resource (RFC 8707) the client names, which becomes the token's `aud`.
//
// Environment:
//   IDP_READY_FILE        once listening, {"issuer","port","pid"} is written there atomically.
//   IDP_KEYS_FILE         the private JWK Set to sign with; made (and written there) when missing,
//                         so two providers can share one key.
//   IDP_ISSUER            the issuer identifier (default http://127.0.0.1:<port>); two providers
//                         sharing issuer and key issue tokens of one issuer.
//   IDP_CLOCK_OFFSET_SECONDS  shifts this provider's clock (a negative offset issues tokens that
//                         expired already, as an IdP whose clock is behind would).
//   IDP_CLIENT_ID, IDP_CLIENT_SECRET  the one client (client_credentials, scope "mcp").
//
// Listens on 127.0.0.1, a port the kernel picks.
import fs from "node:fs";
import http from "node:http";

import Provider from "oidc-provider";
import { exportJWK, generateKeyPair } from "jose";

const READY_FILE = process.env.IDP_READY_FILE || "";
const KEYS_FILE = process.env.IDP_KEYS_FILE || "";
const OFFSET = Number(process.env.IDP_CLOCK_OFFSET_SECONDS || "0");
const CLIENT_ID = process.env.IDP_CLIENT_ID || "agent-runner";
const CLIENT_SECRET = process.env.IDP_CLIENT_SECRET || "agent-runner-secret-0123456789";

if (OFFSET) {
  const realNow = Date.now;
  Date.now = () => realNow() + OFFSET * 1000;
}

async function signingKeys() {
  if (KEYS_FILE && fs.existsSync(KEYS_FILE)) {
    return JSON.parse(fs.readFileSync(KEYS_FILE, "utf8"));
  }
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: `idp-${process.pid}`, alg: "RS256", use: "sig" };
  const keys = { keys: [jwk] };
  if (KEYS_FILE) {
    fs.writeFileSync(KEYS_FILE, JSON.stringify(keys));
  }
  return keys;
}

const server = http.createServer();
server.listen(0, "127.0.0.1", async () => {
  const { port } = server.address();
  const issuer = process.env.IDP_ISSUER || `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    jwks: await signingKeys(),
    cookies: { keys: ["intentgate-e2e-cookie-key-0123456789"] },
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
        scope: "mcp",
      },
    ],
    scopes: ["mcp"],
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // Every resource the client names is one: the token is for it (aud), a JWT.
        getResourceServerInfo: (_ctx, resource) => ({
          audience: resource,
          scope: "mcp",
          accessTokenTTL: 600,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: "RS256" } },
        }),
      },
    },
  });
  provider.on("server_error", (_ctx, err) => console.error("idp server_error", err));
  server.on("request", provider.callback());
  console.error(`idp: ${issuer} listening on 127.0.0.1:${port}`);
  if (READY_FILE) {
    const tmp = `${READY_FILE}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ issuer, port, pid: process.pid }));
    fs.renameSync(tmp, READY_FILE);
  }
});

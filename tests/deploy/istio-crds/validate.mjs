// Validates custom resources against their CustomResourceDefinition schemas: Istio's (generated from Istio 1.29.2's
// crd-all.gen.yaml by @kubernetes-models/istio), Envoy Gateway's (@kubernetes-models/envoy-gateway 2.0.0, which
// predates its dynamic modules: the caller checks those fields itself) and the Gateway API's
// (@kubernetes-models/gateway-api).
//
// Two checks per resource, both generated from the CRDs by @kubernetes-models:
//   1. the CRD's openAPIV3Schema, compiled to a validator: types, enums, required fields, patterns, formats;
//   2. the TypeScript types of the same schema, with the resource as an object literal: excess-property checks
//      reject fields the schema does not define. A CRD's schema does not forbid unknown fields (the API server
//      prunes them, or refuses them under strict field validation), so a misspelt `selector` would otherwise pass
//      and the plugin would attach to every workload of the namespace.
//
// Usage: node validate.mjs resources.json
//   resources.json: [{"source": "deploy/istio/x.yaml#0", "resource": {...}}, ...]
// Prints {"results": [{"source", "errors": [...]}]} on stdout; exits 0 even when resources are invalid (the
// caller asserts), 2 when it cannot run at all.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import ts from "typescript";

const HERE = path.dirname(fileURLToPath(import.meta.url));

// apiVersion/kind -> the @kubernetes-models module that defines it (its interface is I<kind>).
const ISTIO = "@kubernetes-models/istio";
const ENVOY_GATEWAY = "@kubernetes-models/envoy-gateway";
const GATEWAY_API = "@kubernetes-models/gateway-api";
const KINDS = {
  "extensions.istio.io/v1alpha1/WasmPlugin": `${ISTIO}/extensions.istio.io/v1alpha1/WasmPlugin`,
  "networking.istio.io/v1/DestinationRule": `${ISTIO}/networking.istio.io/v1/DestinationRule`,
  "networking.istio.io/v1/ServiceEntry": `${ISTIO}/networking.istio.io/v1/ServiceEntry`,
  "networking.istio.io/v1alpha3/EnvoyFilter": `${ISTIO}/networking.istio.io/v1alpha3/EnvoyFilter`,
  "security.istio.io/v1/AuthorizationPolicy": `${ISTIO}/security.istio.io/v1/AuthorizationPolicy`,
  "gateway.envoyproxy.io/v1alpha1/EnvoyProxy": `${ENVOY_GATEWAY}/gateway.envoyproxy.io/v1alpha1/EnvoyProxy`,
  "gateway.envoyproxy.io/v1alpha1/EnvoyExtensionPolicy": `${ENVOY_GATEWAY}/gateway.envoyproxy.io/v1alpha1/EnvoyExtensionPolicy`,
  "gateway.envoyproxy.io/v1alpha1/ClientTrafficPolicy": `${ENVOY_GATEWAY}/gateway.envoyproxy.io/v1alpha1/ClientTrafficPolicy`,
  "gateway.envoyproxy.io/v1alpha1/BackendTrafficPolicy": `${ENVOY_GATEWAY}/gateway.envoyproxy.io/v1alpha1/BackendTrafficPolicy`,
  "gateway.networking.k8s.io/v1/GatewayClass": `${GATEWAY_API}/gateway.networking.k8s.io/v1/GatewayClass`,
  "gateway.networking.k8s.io/v1/Gateway": `${GATEWAY_API}/gateway.networking.k8s.io/v1/Gateway`,
  "gateway.networking.k8s.io/v1/HTTPRoute": `${GATEWAY_API}/gateway.networking.k8s.io/v1/HTTPRoute`,
};

function kindKey(resource) {
  return `${resource?.apiVersion}/${resource?.kind}`;
}

async function schemaErrors(resource) {
  const module = KINDS[kindKey(resource)];
  const kind = resource.kind;
  const models = await import(module);
  try {
    new models[kind](resource).validate();
    return [];
  } catch (error) {
    return [`schema: ${error.message}`];
  }
}

// One .mts file with every resource as a typed constant; diagnostics are mapped back by line.
function typeErrors(entries) {
  const lines = [];
  const spans = [];
  entries.forEach(({ resource }, index) => {
    const module = KINDS[kindKey(resource)];
    const iface = `I${resource.kind}`;
    lines.push(`import type { ${iface} as T${index} } from "${module}";`);
  });
  entries.forEach(({ resource }, index) => {
    const start = lines.length;
    const body = JSON.stringify(resource, null, 2).split("\n");
    lines.push(`export const resource${index}: T${index} = ${body[0]}`, ...body.slice(1));
    lines[lines.length - 1] += ";";
    spans.push([start, lines.length - 1]);
  });
  // Inside this package, so "@kubernetes-models/..." resolves from its node_modules.
  const file = path.join(HERE, `.check-${process.pid}.mts`);
  fs.writeFileSync(file, lines.join("\n") + "\n");
  try {
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
    });
    const errors = entries.map(() => []);
    for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
      const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
      if (!diagnostic.file || path.resolve(diagnostic.file.fileName) !== path.resolve(file)) {
        throw new Error(`type checking failed outside the resources: ${message}`);
      }
      const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
      const index = spans.findIndex(([from, to]) => line >= from && line <= to);
      if (index < 0) {
        throw new Error(`type checking failed on line ${line + 1}: ${message}`);
      }
      errors[index].push(`type: ${message}`);
    }
    return errors;
  } finally {
    fs.rmSync(file, { force: true });
  }
}

async function main() {
  const [input] = process.argv.slice(2);
  if (!input) {
    console.error("usage: node validate.mjs resources.json");
    process.exit(2);
  }
  const entries = JSON.parse(fs.readFileSync(input, "utf8"));
  const results = entries.map(({ source }) => ({ source, errors: [] }));
  const known = [];
  for (const [index, entry] of entries.entries()) {
    if (!KINDS[kindKey(entry.resource)]) {
      results[index].errors.push(`no schema for ${kindKey(entry.resource)}`);
      continue;
    }
    results[index].errors.push(...(await schemaErrors(entry.resource)));
    known.push(index);
  }
  const typed = typeErrors(known.map((index) => entries[index]));
  known.forEach((index, position) => results[index].errors.push(...typed[position]));
  process.stdout.write(JSON.stringify({ results }, null, 2) + "\n");
}

main().catch((error) => {
  console.error(error?.stack ?? String(error));
  process.exit(2);
});

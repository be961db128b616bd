// Runs @modelcontextprotocol/server-everything in Streamable HTTP mode, bound to one address only.
//
// The server calls `app.listen(process.env.PORT || 3001)` with no host, so Node binds every
// interface, and it has no option for the bind address. This wrapper patches net.Server#listen
// before importing the server's own transport module, so the real server code runs unchanged
// but listens on INTENTGATE_BIND_HOST (default 127.0.0.1) only.
//
// Environment:
//   PORT                    TCP port; 0 lets the kernel pick a free one (default 3001, the server's own).
//   INTENTGATE_BIND_HOST    address to bind (default 127.0.0.1).
//   INTENTGATE_READY_FILE   optional; once listening, {"host","port","pid"} is written there atomically.
//
// The MCP endpoint is http://<host>:<port>/mcp (POST, GET and DELETE).
import fs from "node:fs";
import net from "node:net";

const HOST = process.env.INTENTGATE_BIND_HOST || "127.0.0.1";
const READY_FILE = process.env.INTENTGATE_READY_FILE || "";

function reportListening(server) {
  const addr = server.address();
  const info = { host: addr.address, port: addr.port, pid: process.pid };
  console.error(`intentgate: server-everything listening on ${addr.address}:${addr.port}`);
  if (READY_FILE) {
    const tmp = `${READY_FILE}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(info));
    fs.renameSync(tmp, READY_FILE);
  }
}

const originalListen = net.Server.prototype.listen;
net.Server.prototype.listen = function listenOnHost(...args) {
  const callback = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
  let options;
  if (args[0] !== null && typeof args[0] === "object" && args[0].path === undefined && !("fd" in args[0])) {
    options = { ...args[0] };
  } else if (typeof args[0] === "number" || (typeof args[0] === "string" && /^\d+$/.test(args[0]))) {
    options = { port: Number(args[0]) };
    if (typeof args[2] === "number") options.backlog = args[2];
  } else {
    // A Unix socket, a handle or an fd: nothing to pin to an address.
    return originalListen.apply(this, callback ? [...args, callback] : args);
  }
  options.host = HOST;
  delete options.ipv6Only;
  this.once("listening", () => reportListening(this));
  return callback ? originalListen.call(this, options, callback) : originalListen.call(this, options);
};

await import("@modelcontextprotocol/server-everything/dist/transports/streamableHttp.js");

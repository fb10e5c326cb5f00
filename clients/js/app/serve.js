// The field app's development server (./dev up; the browser tests): app/dist as static
// files, and CouchDB and the bridge under the same origin — /couch/… and /bridge/… are
// passed through unchanged but for the prefix — so the page needs no CORS on either and its
// CSP can allow connections to itself only. In production the TLS proxy in front of CouchDB
// and the bridge does the same (docs/js-device.md).
//
//   node app/serve.js --port 8766 --couch http://127.0.0.1:5984 --bridge http://127.0.0.1:8765
//
// Prints "listening on http://127.0.0.1:PORT" once it is.

import {createReadStream, existsSync, statSync} from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import {extname, join, normalize} from 'node:path';
import {fileURLToPath} from 'node:url';

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  const value = at === -1 ? fallback : process.argv[at + 1];
  if (value === undefined) {
    console.error(`serve.js: --${name} is required`);
    process.exit(2);
  }
  return value;
}

const port = Number(option('port', '8766'));
const host = option('host', '127.0.0.1');
const targets = {'/couch': new URL(option('couch')), '/bridge': new URL(option('bridge'))};
const dist = fileURLToPath(new URL(option('dist', new URL('dist/', import.meta.url).href)));
if (!existsSync(join(dist, 'index.html'))) {
  console.error(`serve.js: ${dist} has no index.html: run npm run build first`);
  process.exit(2);
}
const TYPES = {'.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
               '.css': 'text/css; charset=utf-8', '.webmanifest': 'application/manifest+json'};
// 'unsafe-eval': the caseload's validate_doc_update is compiled with new Function, as
// CouchDB itself compiles design-document code.
const CSP = "default-src 'self'; script-src 'self' 'unsafe-eval'; connect-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

function proxy(req, res, prefix) {
  const target = targets[prefix];
  const rest = req.url.slice(prefix.length) || '/';
  const base = target.pathname.replace(/\/+$/, '');
  const headers = {...req.headers, host: target.host};
  delete headers.cookie;  // the app authenticates every request itself
  delete headers.origin;
  const upstream = (target.protocol === 'https:' ? https : http).request({
    protocol: target.protocol, hostname: target.hostname, port: target.port, method: req.method,
    path: base + rest, headers}, (answer) => {
    res.writeHead(answer.statusCode, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', (err) => {
    if (!res.headersSent) {
      res.writeHead(502, {'Content-Type': 'application/json'});
      res.end(JSON.stringify({error: 'proxy.unreachable', message: `${prefix} is unreachable: ${err.message}`}));
    } else {
      res.destroy(err);
    }
  });
  req.on('aborted', () => upstream.destroy());
  req.pipe(upstream);
}

function serveFile(req, res) {
  const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  const file = normalize(join(dist, path.endsWith('/') ? path + 'index.html' : path));
  if (!file.startsWith(dist) || !existsSync(file) || !statSync(file).isFile()) {
    res.writeHead(404, {'Content-Type': 'text/plain'});
    res.end('not found');
    return;
  }
  res.writeHead(200, {'Content-Type': TYPES[extname(file)] || 'application/octet-stream',
                      'Content-Security-Policy': CSP, 'Cache-Control': 'no-cache',
                      'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer'});
  createReadStream(file).pipe(res);
}

const server = http.createServer((req, res) => {
  const prefix = Object.keys(targets).find((p) => req.url === p || req.url.startsWith(`${p}/`));
  if (prefix) { proxy(req, res, prefix); } else { serveFile(req, res); }
});
server.listen(port, host, () => {
  console.log(`listening on http://${host}:${server.address().port}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) { process.on(signal, () => server.close(() => process.exit(0))); }

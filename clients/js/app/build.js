// npm run build: the field app into app/dist (esbuild: one bundle with the library, PouchDB
// and the record-rules host, whose two files are read from carecouch/js/ and inlined as text,
// the same files the reference device and the embedded server run).

import {cpSync, mkdirSync, readFileSync, readdirSync, writeFileSync} from 'node:fs';
import {createHash} from 'node:crypto';

import * as esbuild from 'esbuild';

const here = new URL('./', import.meta.url);
const dist = new URL('dist/', here);
const host = new URL('../../../carecouch/js/', here);
const text = (name) => JSON.stringify(readFileSync(new URL(name, host), 'utf8'));

mkdirSync(dist, {recursive: true});
await esbuild.build({
  entryPoints: [new URL('src/main.js', here).pathname],
  bundle: true, format: 'iife', platform: 'browser', target: ['chrome110'],
  outfile: new URL('app.js', dist).pathname, minify: true, sourcemap: false, legalComments: 'none',
  define: {CARECOUCH_QUERY_SERVER: text('query_server.js'), CARECOUCH_RULES_HOST: text('rules_host.js'),
           global: 'globalThis'},
  logLevel: 'warning'
});
for (const name of readdirSync(new URL('static/', here))) {
  cpSync(new URL(`static/${name}`, here), new URL(name, dist));
}
// The service worker's cache is named after this build, so a new build replaces the shell.
const version = createHash('sha256').update(readFileSync(new URL('app.js', dist))).update(readFileSync(new URL('index.html', dist))).digest('hex').slice(0, 12);
const sw = new URL('sw.js', dist);
writeFileSync(sw, readFileSync(sw, 'utf8').replace('__VERSION__', version));
console.log(`built the field app into ${dist.pathname} (version ${version})`);

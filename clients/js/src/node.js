// Node-only helpers: the record-rules host files, read from this repository's carecouch/js/
// (the same files the reference device and the embedded server run; a browser bundle imports
// them as text instead, app/build.js).

import {readFile} from 'node:fs/promises';

const HOST = new URL('../../../carecouch/js/', import.meta.url);

export async function rulesSources() {
  return {queryServer: await readFile(new URL('query_server.js', HOST), 'utf8'),
          rulesHost: await readFile(new URL('rules_host.js', HOST), 'utf8')};
}

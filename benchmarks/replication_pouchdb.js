// The peer of benchmarks/replication_pull.py: PouchDB's own replicator (npm `pouchdb` 9, Node,
// LevelDB on disk), timed inside Node so process start-up is not counted.
//
// Usage: node replication_pouchdb.js '<json>' with json =
//   {"pouchdb": "<path of node_modules/pouchdb>", "local": "<LevelDB dir>", "remote": "<db URL>",
//    "username": "...", "password": "...",
//    "mode": "pull" | "push" | "sync" (pull, then push) | "edit",
//    "batch_size": <optional>, "docs_file": <JSON list of documents to write locally, "edit">}
// Prints {"seconds": <replication time>, "docs_written", "docs_read", "last_seq" (of the last
// replication), "requests": {"<METHOD> <endpoint>": n}, "local": {"doc_count", "update_seq"}
// (the local database before the replication)}: what a reader needs to see that both sides
// started from the same place and did the same work.
'use strict';

var fs = require('fs');
var args = JSON.parse(process.argv[2]);
var PouchDB = require(args.pouchdb);

var requests = {};

// Every request PouchDB sends to the server, by method and endpoint (`_changes`,
// `_revs_diff`, `_bulk_docs`, `_bulk_get`, `_local`, the database itself).
function counted(url, options) {
  var path = new URL(url).pathname.split('/').slice(2);
  var endpoint = path.length === 0 || path[0] === '' ? '(database)' : path[0];
  var key = ((options && options.method) || 'GET') + ' ' + endpoint;
  requests[key] = (requests[key] || 0) + 1;
  return PouchDB.fetch(url, options);
}

async function main() {
  var local = new PouchDB(args.local);
  var remote = new PouchDB(args.remote, {
    auth: {username: args.username, password: args.password}, skip_setup: true, fetch: counted
  });
  var options = args.batch_size ? {batch_size: args.batch_size} : {};
  var before = await local.info();
  var result = {seconds: 0, docs_written: 0, docs_read: 0, last_seq: null, requests: requests,
                local: {doc_count: before.doc_count, update_seq: before.update_seq}};
  if (args.mode === 'edit') {
    await local.bulkDocs(JSON.parse(fs.readFileSync(args.docs_file, 'utf8')));
  } else {
    var directions = args.mode === 'sync' ? ['pull', 'push'] : [args.mode];
    var started = process.hrtime.bigint();
    for (var i = 0; i < directions.length; i++) {
      var info = directions[i] === 'pull' ? await PouchDB.replicate(remote, local, options)
                                          : await PouchDB.replicate(local, remote, options);
      result.docs_written += info.docs_written;
      result.docs_read += info.docs_read;
      result.last_seq = info.last_seq;
    }
    result.seconds = Number(process.hrtime.bigint() - started) / 1e9;
  }
  await local.close();
  process.stdout.write(JSON.stringify(result));
}

main().catch(function (err) {
  process.stderr.write('pouchdb benchmark peer failed: ' + (err && err.stack || err) + '\n');
  process.exit(1);
});

// The peer of benchmarks/replication_pull.py: PouchDB's own replicator (npm `pouchdb` 9, Node,
// LevelDB on disk), timed inside Node so process start-up is not counted.
//
// Usage: node replication_pouchdb.js '<json>' with json =
//   {"pouchdb": "<path of node_modules/pouchdb>", "local": "<LevelDB dir>", "remote": "<db URL>",
//    "username": "...", "password": "...", "mode": "pull" | "push" | "edit",
//    "batch_size": <optional>, "count": <docs to create locally for "edit">}
// Prints {"seconds": <replication time>, "docs_written": n}.
'use strict';

var args = JSON.parse(process.argv[2]);
var PouchDB = require(args.pouchdb);

async function main() {
  var local = new PouchDB(args.local);
  var remote = new PouchDB(args.remote, {
    auth: {username: args.username, password: args.password}, skip_setup: true
  });
  var options = args.batch_size ? {batch_size: args.batch_size} : {};
  var result = {seconds: 0, docs_written: 0};
  if (args.mode === 'edit') {
    var docs = [];
    for (var i = 0; i < args.count; i++) {
      docs.push({_id: 'note:pouch' + Date.now() + ':' + i, type: 'note', subject: 'patient:' + i,
                 text: 'written offline by the PouchDB peer, ' + i});
    }
    await local.bulkDocs(docs);
  } else {
    var started = process.hrtime.bigint();
    var info = args.mode === 'pull' ? await PouchDB.replicate(remote, local, options)
                                    : await PouchDB.replicate(local, remote, options);
    result.seconds = Number(process.hrtime.bigint() - started) / 1e9;
    result.docs_written = info.docs_written;
  }
  await local.close();
  process.stdout.write(JSON.stringify(result));
}

main().catch(function (err) {
  process.stderr.write('pouchdb benchmark peer failed: ' + (err && err.stack || err) + '\n');
  process.exit(1);
});

// A real PouchDB client (the npm `pouchdb` package, Node, LevelDB on disk) driven by a test:
// it plays the PouchDB app a carecouch device must interoperate with.
//
// Usage: node pouchdb_peer.js '<json>'   with json =
//   {"pouchdb": "<path of node_modules/pouchdb>", "local": "<dir for the LevelDB database>",
//    "remote": "<database URL>", "username": "...", "password": "...",
//    "steps": [{"op": "put", "docs": [...]}          bulkDocs (new edits)
//              {"op": "edit", "id": "...", "set": {...}}   edit the winning revision
//              {"op": "sync", "options": {...}}       one-shot two-way replication
//              {"op": "pull", "options": {...}}       one-shot replication from the remote
//              {"op": "dump"}]}                       print every doc's leaves with history
// Prints one JSON object: {"dump": {id: {rev: {"doc": ..., "revisions": ...}}}, "sync": [...],
// "pull": [docs written per pull], "local_requests": ["GET _local/<id>", ...]} (the requests
// for `_local` documents, i.e. checkpoints, PouchDB sent to the remote).
'use strict';

var args = JSON.parse(process.argv[2]);
var PouchDB = require(args.pouchdb);

async function dump(db) {
  var out = {};
  var all = await db.allDocs();
  var ids = all.rows.map(function (row) { return row.id; });
  // allDocs hides deleted documents; the changes feed lists them too.
  var changes = await db.changes({style: 'all_docs'});
  changes.results.forEach(function (row) {
    if (ids.indexOf(row.id) < 0) { ids.push(row.id); }
  });
  for (var i = 0; i < ids.length; i++) {
    var leaves = await db.get(ids[i], {open_revs: 'all', revs: true});
    out[ids[i]] = {};
    leaves.forEach(function (leaf) {
      if (leaf.ok) { out[ids[i]][leaf.ok._rev] = leaf.ok; }
    });
  }
  return out;
}

async function main() {
  var local = new PouchDB(args.local);
  var result = {sync: [], pull: [], local_requests: []};
  var remote = new PouchDB(args.remote, {
    auth: {username: args.username, password: args.password}, skip_setup: true,
    fetch: function (url, opts) {
      var path = decodeURIComponent(new URL(url).pathname);
      var at = path.indexOf('/_local/');
      if (at !== -1) {
        result.local_requests.push((opts.method || 'GET') + ' ' + path.slice(at + 1));
      }
      return PouchDB.fetch(url, opts);
    }
  });
  for (var i = 0; i < args.steps.length; i++) {
    var step = args.steps[i];
    if (step.op === 'put') {
      await local.bulkDocs(step.docs);
    } else if (step.op === 'edit') {
      var doc = await local.get(step.id);
      Object.keys(step.set).forEach(function (key) { doc[key] = step.set[key]; });
      await local.put(doc);
    } else if (step.op === 'sync') {
      var info = await local.sync(remote, step.options || {});
      result.sync.push({push: info.push.docs_written, pull: info.pull.docs_written});
    } else if (step.op === 'pull') {
      var pulled = await local.replicate.from(remote, step.options || {});
      result.pull.push(pulled.docs_written);
    } else if (step.op === 'dump') {
      result.dump = await dump(local);
    } else {
      throw new Error('unknown step ' + step.op);
    }
  }
  await local.close();
  process.stdout.write(JSON.stringify(result));
}

main().catch(function (err) {
  process.stderr.write('pouchdb peer failed: ' + (err && err.stack || err) + '\n');
  process.exit(1);
});

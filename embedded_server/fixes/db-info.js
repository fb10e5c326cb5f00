// Defect: `GET /{db}` answers PouchDB's info: `disk_size` where CouchDB has `sizes.file`, no
// `cluster`, PouchDB-only fields (`adapter`, `backend_adapter`, `auto_compaction`) and an
// `instance_start_time` in milliseconds. Code written against one read a field the other does
// not have (carecouch read `disk_size` as a fall-back; `Database.copies()` reads `cluster.n`).
//
// CouchDB behaviour restored (chttpd_db:db_req/2 for GET, fabric:get_db_info/1): {"db_name",
// "update_seq", "purge_seq", "doc_count", "doc_del_count", "sizes": {"file", "external",
// "active"}, "props": {}, "disk_format_version", "compact_running", "cluster": {"q", "n", "w",
// "r"}, "instance_start_time": "0"}. The embedded server keeps one copy of each document
// (cluster n = 1, as a single CouchDB node). PouchDB knows only the file size: `external` and
// `active` repeat it; it counts neither deleted documents nor purges (0).
'use strict';

var util = require('./util');

exports.installAfterAuthentication = function (router, pouchApp) {
  router.get('/:db', function (req, res, next) {
    if (req.params.db.charAt(0) === '_') {
      return next();
    }
    util.openDb(req, pouchApp, req.params.db).then(function (db) {
      if (!db) {
        return next();
      }
      return db.info().then(function (info) {
        var size = info.disk_size || 0;
        util.sendJSON(res, 200, {
          instance_start_time: '0', db_name: info.db_name, purge_seq: 0,
          update_seq: info.update_seq, sizes: {file: size, external: size, active: size},
          props: {}, doc_del_count: 0, doc_count: info.doc_count, disk_format_version: 8,
          compact_running: false, cluster: {q: 1, n: 1, w: 1, r: 1}
        });
      });
    }).catch(function (err) {
      util.sendError(res, err);
    });
  });
};

// Defect: express-pouchdb serves the configuration at `/_config` only (and under
// `/_node/node1@127.0.0.1/` for its Fauxton); `/_node/_local/_config`, where CouchDB 2+ serves
// it, is 404, so a client that reads a setting of the server it talks to (the conformance tests
// read [chttpd_auth] iterations) cannot read the embedded server's.
//
// CouchDB behaviour restored (chttpd_node:handle_node_req/1): `/_node/_local/_config...` and
// `/_node/nonode@nohost/_config...` (the name of a single node) are the configuration of the
// node that answers; GET, PUT (a JSON string) and DELETE of `/{section}/{key}`, server admins
// only (the path is answered as `/_config...`, which ./authorization.js keeps to them).
'use strict';

var NODE_CONFIG = /^\/_node\/(?:_local|nonode(?:@|%40)nohost)(\/_config(?:\/|\?|$))/;

exports.installBefore = function (app) {
  app.use(function (req, res, next) {
    if (NODE_CONFIG.test(req.url)) {
      // Both: express-pouchdb's vhost part rebuilds req.url from req.originalUrl.
      req.url = req.url.replace(NODE_CONFIG, '$1');
      req.originalUrl = req.url;
    }
    next();
  });
};

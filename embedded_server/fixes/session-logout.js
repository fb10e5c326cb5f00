// Defect: express-pouchdb refreshes the AuthSession cookie on every cookie-authenticated
// request, also on `DELETE /_session`, which therefore answers with two Set-Cookie headers: a
// fresh session and the cleared one. Clients that apply a response's cookies as a set (Python's
// http.cookiejar, used by httpx and requests) keep the fresh session: logging out fails.
//
// CouchDB behaviour restored: couch_httpd_auth:cookie_auth_header/2 never adds a refreshed
// cookie to a response whose handler sets AuthSession itself, so `DELETE /_session` only clears
// the cookie (handle_session_req/2: 200 {"ok": true} with an empty AuthSession).
'use strict';

exports.installAfterAuthentication = function (router) {
  router.delete('/_session', function (req, res, next) {
    res.removeHeader('Set-Cookie');
    next();
  });
};

// Defect: an error thrown outside express's own call stack killed the whole server. On 4.2.0,
// `GET /{db}/_changes?filter=_selector` makes PouchDB emit an 'error' event nobody listens to
// (the Changes emitter of a normal feed), which Node turns into an uncaught exception: every
// client of every database loses the server. Errors thrown synchronously in a route were
// answered with express's HTML error page.
//
// CouchDB behaviour restored: a request that fails is answered with a JSON error and the server
// carries on; an unexpected failure is `500 {"error": "unknown_error", "reason": ...}`
// (chttpd:error_info/1's last clause) and is logged (chttpd:send_error logs 500s).
//
// How: every request runs inside an AsyncLocalStorage context (which ./validation.js also uses
// to validate every write as the HTTP caller), so a last-resort
// `uncaughtException` / `unhandledRejection` handler can find the request it belongs to, answer
// it 500 if nothing was sent yet, and log the error to the server log (stderr -> server.log). An
// express error handler behind express-pouchdb does the same for errors passed to next(err).
'use strict';

var AsyncLocalStorage = require('async_hooks').AsyncLocalStorage;

var context = new AsyncLocalStorage();
var installed = false;

function log(kind, err, req) {
  var where = req ? ' during ' + req.method + ' ' + req.originalUrl : '';
  var detail = (err && err.stack) || String(err);
  process.stderr.write(new Date().toISOString() + ' [error] ' + kind + where + ': ' + detail + '\n');
}

function reasonOf(err) {
  if (err && typeof err === 'object') {
    return String(err.reason || err.message || err.name || 'unknown error');
  }
  return String(err);
}

function answer500(res, err) {
  if (!res || res.writableEnded || res.destroyed) {
    return;
  }
  if (res.headersSent) {
    res.end();
    return;
  }
  try {
    res.status(500);
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({error: 'unknown_error', reason: reasonOf(err)}) + '\n');
  } catch (e) {
    log('could not answer', e, null);
  }
}

function lastResort(kind) {
  return function (err) {
    var store = context.getStore();
    log(kind, err, store && store.req);
    if (store) {
      answer500(store.res, err);
    }
  };
}

// The request whose work is running now (its context survives callbacks, timers and promises
// created while serving it), or null for the server's own work.
exports.currentRequest = function () {
  var store = context.getStore();
  return store ? store.req : null;
};

// Runs `fn` as the server's own work: nothing it starts belongs to the request that asked for it
// (a write it makes is validated as the server, not as that request's user).
exports.outsideRequest = function (fn) {
  return context.exit(fn);
};

exports.installBefore = function (app) {
  app.use(function (req, res, next) {
    context.run({req: req, res: res}, next);
  });
  if (!installed) {
    installed = true;
    process.on('uncaughtException', lastResort('uncaught exception'));
    process.on('unhandledRejection', lastResort('unhandled rejection'));
  }
};

exports.installAfter = function (app) {
  // eslint-disable-next-line no-unused-vars
  app.use(function (err, req, res, next) {
    var status = err && Number.isInteger(err.status) && err.status >= 400 ? err.status : 500;
    if (status >= 500) {
      log('route error', err, req);
    }
    if (res.headersSent) {
      return res.end();
    }
    var name = err && typeof err.name === 'string' && !/Error$/.test(err.name) ? err.name
      : 'bad_request';
    if (status >= 500) {
      name = 'unknown_error';
    }
    res.status(status);
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({error: name, reason: reasonOf(err)}) + '\n');
  });
};

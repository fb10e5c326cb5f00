#!/usr/bin/env node
// carecouch's embedded CouchDB-protocol server: PouchDB Server's express app (express-pouchdb
// 4.2.0 over PouchDB 7 and LevelDB, pinned in package-lock.json) plus the fixes in ./fixes/ that
// make it behave like Apache CouchDB 3.5 where carecouch depends on it. It exists for
// development, the demo and the tests; production runs Apache CouchDB (docker-compose.yml).
//
// Usage: node embedded_server/server.js --port PORT --data-dir DIR
//   COUCHDB_USER / COUCHDB_PASSWORD (required) become the server admin, as with the official
//   CouchDB image. The server binds 127.0.0.1 only. When it is ready it writes
//   DIR/carecouch-server.json ({pid, port, url, ...}); the Python side waits for that file.
//   Exit codes: 2 bad usage, 3 port in use, 1 anything else.
'use strict';

var fs = require('fs');
var path = require('path');
var express = require('express');
var expressPouchDB = require('express-pouchdb');
var Auth = require('pouchdb-auth');
var PouchDB = require('pouchdb-core')
  .plugin(require('pouchdb-adapter-http'))
  .plugin(require('pouchdb-adapter-leveldb'))
  .plugin(require('pouchdb-replication'))
  .plugin(require('pouchdb-mapreduce'));

var fixes = require('./fixes');

var HOST = '127.0.0.1';
var STATE_FILE = 'carecouch-server.json';
// The settings production CouchDB is given (docker-compose.yml mounts it as local.d/): the
// embedded server starts from the same ones, so both enforce the same limits.
var DEPLOY_INI = path.join(__dirname, '..', 'deploy', 'couchdb.ini');

function usage(message) {
  process.stderr.write('carecouch embedded server: ' + message + '\n');
  process.exit(2);
}

function parseArgs(argv) {
  var args = {port: null, dataDir: null};
  for (var i = 0; i < argv.length; i++) {
    var name = argv[i];
    var value = argv[i + 1];
    if (name === '--port') {
      args.port = Number(value);
      i++;
    } else if (name === '--data-dir') {
      args.dataDir = value;
      i++;
    } else {
      usage('unknown argument ' + JSON.stringify(name));
    }
  }
  if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) {
    usage('--port must be an integer from 0 to 65535 (0 picks a free port)');
  }
  if (!args.dataDir) {
    usage('--data-dir is required');
  }
  return args;
}

function main() {
  var args = parseArgs(process.argv.slice(2));
  var adminUser = process.env.COUCHDB_USER;
  var adminPassword = process.env.COUCHDB_PASSWORD;
  if (!adminUser || !adminPassword) {
    // Without an admin, PouchDB Server runs in "admin party": everyone is admin.
    usage('COUCHDB_USER and COUCHDB_PASSWORD must be set (the server admin)');
  }
  var dataDir = path.resolve(args.dataDir);
  fs.mkdirSync(dataDir, {recursive: true});
  var statePath = path.join(dataDir, STATE_FILE);
  try { fs.unlinkSync(statePath); } catch (e) { /* not there */ }

  var configPath = path.join(dataDir, 'config.json');
  writeAdmin(configPath, adminUser, adminPassword).then(function () {
    var pouchApp = expressPouchDB({
      configPath: configPath,
      logPath: path.join(dataDir, 'couch.log'),
      overrideMode: {exclude: fixes.excludedParts}
    });
    registerDefaults(pouchApp.couchConfig, readIni(DEPLOY_INI));
    var app = express();
    fixes.installBefore(app, pouchApp);
    app.use(pouchApp);
    fixes.installAfter(app, pouchApp);

    var context = {dataDir: dataDir};
    var options = fixes.pouchOptions(context);
    options.prefix = dataDir + path.sep;
    var ThisPouchDB = PouchDB.defaults(options);
    fixes.installOnPouch(pouchApp, ThisPouchDB, context);
    return pouchApp.setPouchDB(ThisPouchDB).then(function () {
      return fixes.prepare(pouchApp, ThisPouchDB, context);
    }).then(function () {
      listen(app, args.port, dataDir, statePath);
    });
  }).catch(function (err) {
    process.stderr.write('cannot start: ' + ((err && err.stack) || err) + '\n');
    process.exit(1);
  });
}

// {section: {key: value}} of an ini file as CouchDB reads it (`;` starts a comment).
function readIni(file) {
  var sections = {};
  var current = null;
  fs.readFileSync(file, 'utf8').split(/\r?\n/).forEach(function (line) {
    var text = line.replace(/(^|\s);.*$/, '').trim();
    var header = /^\[([^\]]+)\]$/.exec(text);
    if (header) {
      current = sections[header[1]] = sections[header[1]] || {};
    } else if (current && text.indexOf('=') > 0) {
      var at = text.indexOf('=');
      current[text.slice(0, at).trim()] = text.slice(at + 1).trim();
    }
  });
  return sections;
}

// Defaults only: a value set in DATA_DIR/config.json (or PUT /_config) still wins.
function registerDefaults(couchConfig, sections) {
  Object.keys(sections).forEach(function (section) {
    Object.keys(sections[section]).forEach(function (key) {
      couchConfig.registerDefault(section, key, sections[section][key]);
    });
  });
}

// The admin is set from the environment on every start and is the only admin, so a changed
// COUCHDB_USER / COUCHDB_PASSWORD takes effect and an old one stops working. Written before
// express-pouchdb reads the file (its config module saves asynchronously, and two of its saves
// racing on one temporary file fail), and hashed first, so no password is ever on disk.
function writeAdmin(configPath, user, password) {
  var config = {};
  try {
    config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
  } catch (err) {
    if (err.code !== 'ENOENT') {
      return Promise.reject(new Error(configPath + ' is unreadable: ' + err.message));
    }
  }
  var admins = {};
  admins[user] = password;
  return Auth.hashAdminPasswords(admins).then(function (hashed) {
    config.admins = hashed;
    var tmp = configPath + '.carecouch-tmp';
    fs.writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n', {mode: 384 /* 0600 */});
    fs.renameSync(tmp, configPath);
  });
}

function listen(app, port, dataDir, statePath) {
  var server = app.listen(port, HOST);
  var sockets = new Set();
  server.on('connection', function (socket) {
    sockets.add(socket);
    socket.on('close', function () { sockets.delete(socket); });
  });
  server.on('listening', function () {
    var actualPort = server.address().port;
    var state = {
      pid: process.pid,
      port: actualPort,
      url: 'http://' + HOST + ':' + actualPort,
      data_dir: dataDir,
      started_at: new Date().toISOString(),
      pouchdb_server: require('pouchdb-server/package.json').version
    };
    var tmp = statePath + '.tmp';
    fs.writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
    fs.renameSync(tmp, statePath);
    process.stdout.write('carecouch embedded server listening on ' + state.url + '\n');
  });
  server.on('error', function (err) {
    if (err.code === 'EADDRINUSE') {
      process.stderr.write('port ' + port + ' on ' + HOST + ' is already in use\n');
      process.exit(3);
    }
    process.stderr.write('server error: ' + (err.stack || err) + '\n');
    process.exit(1);
  });

  function shutdown(signal) {
    process.stdout.write('carecouch embedded server stopping (' + signal + ')\n');
    try { fs.unlinkSync(statePath); } catch (e) { /* already gone */ }
    server.close(function () { process.exit(0); });
    sockets.forEach(function (socket) { socket.destroy(); });
    setTimeout(function () { process.exit(0); }, 2000).unref();
  }
  process.on('SIGTERM', shutdown.bind(null, 'SIGTERM'));
  process.on('SIGINT', shutdown.bind(null, 'SIGINT'));
}

main();

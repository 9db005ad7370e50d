#!/usr/bin/env node
// The peer in `make bench`: PouchDB (leveldb) replicating from pouchdb-server on 127.0.0.1,
// over the same plans as JSON (one document per plan, _id = NHS number, so a lookup by NHS
// number is a primary-key get, the fastest the peer can do).
//
//   peer.js load   URL DB FILE.ndjson              bulk-load the plans into the server
//   peer.js pull   URL DB LOCALDIR BATCH           one initial replication into a new local db
//   peer.js rounds URL DB LOCALDIR BATCH R C N     R rounds of C changed documents, each
//                                                  followed by a timed one-shot replication in
//                                                  this process; R idle replications; then N
//                                                  warm gets and 20 gets straight after opening
//   peer.js change URL DB C ROUND                  C documents changed on the server (untimed
//                                                  preparation of a whole-process round)
//   peer.js once   URL DB LOCALDIR BATCH           one one-shot replication into an existing
//                                                  local db: run.sh times the whole process
//
// Every command prints one JSON object. Bytes and connections are those of the sockets the
// process opened while a replication ran (node's diagnostics channel 'net.client.socket'),
// request lines, headers and bodies included, as the agent's own counters are.
'use strict';

const dc = require('diagnostics_channel');
const fs = require('fs');
const http = require('http');
const path = require('path');
const readline = require('readline');

const PouchDB = require(path.join(__dirname, 'node_modules', 'pouchdb'));

// ---- socket accounting ---------------------------------------------------------------------

const live = new Set();
let closedRead = 0, closedWritten = 0, opened = 0;
dc.subscribe('net.client.socket', ({ socket }) => {
  opened++;
  live.add(socket);
  socket.once('close', () => {
    closedRead += socket.bytesRead;
    closedWritten += socket.bytesWritten;
    live.delete(socket);
  });
});
let requests = 0;
dc.subscribe('http.client.request.start', () => { requests++; });
function wire() {
  let r = closedRead, w = closedWritten;
  for (const s of live) { r += s.bytesRead; w += s.bytesWritten; }
  return { read: r, written: w, opened, requests };
}
function wireSince(a) {
  const b = wire();
  return { bytes_received: b.read - a.read, bytes_sent: b.written - a.written, connections: b.opened - a.opened,
           requests: b.requests - a.requests };
}

// ---- helpers -------------------------------------------------------------------------------

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

function dist(v) {
  const s = Float64Array.from(v).sort();
  const at = (p) => (s.length ? s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1] : 0);
  const sum = s.reduce((a, b) => a + b, 0);
  return { n: s.length, p50: at(50), p99: at(99), p999: at(99.9), min: s[0] || 0, max: s[s.length - 1] || 0,
           mean: s.length ? sum / s.length : 0 };
}

// A deterministic generator, so every run changes the same documents.
function rng(seed) {
  let x = BigInt(seed) & 0xffffffffffffffffn;
  return () => {
    x = (x + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
    let z = x;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
    return Number((z ^ (z >> 31n)) % 0x7fffffffn);
  };
}

// Requests to the server outside the measured windows, each on its own connection.
function request(method, url, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const req = http.request(url, { method, agent: false, headers: data ? {
      'Content-Type': 'application/json', 'Content-Length': data.length } : {} }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode >= 300) reject(new Error(`${method} ${url}: ${res.statusCode} ${text.slice(0, 200)}`));
        else resolve(text.length ? JSON.parse(text) : null);
      });
    });
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

function out(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

// ---- commands ------------------------------------------------------------------------------

async function load(url, db, file) {
  const t0 = now();
  await request('PUT', `${url}/${db}`);
  const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  let batch = [], n = 0;
  for await (const line of rl) {
    if (!line) continue;
    const plan = JSON.parse(line);
    plan._id = plan.nhs_number;
    batch.push(plan);
    if (batch.length === 1000) { await request('POST', `${url}/${db}/_bulk_docs`, { docs: batch }); n += batch.length; batch = []; }
  }
  if (batch.length) { await request('POST', `${url}/${db}/_bulk_docs`, { docs: batch }); n += batch.length; }
  out({ docs: n, load_ms: now() - t0 });
}

async function replicateOnce(local, remote, batch) {
  const opts = batch > 0 ? { batch_size: batch } : {};
  const w0 = wire();
  const t0 = now();
  const res = await local.replicate.from(remote, opts);
  const ms = now() - t0;
  return Object.assign({ ms, docs_written: res.docs_written, docs_read: res.docs_read }, wireSince(w0));
}

async function pull(url, db, localDir, batch) {
  const local = new PouchDB(localDir);
  const remote = new PouchDB(`${url}/${db}`);
  const r = await replicateOnce(local, remote, Number(batch));
  await local.close();
  await remote.close();
  const size = dirSize(localDir);
  out(Object.assign(r, { batch_size: Number(batch) || 100, docs_per_s: r.docs_written / (r.ms / 1000),
                         local_bytes: size }));
}

function dirSize(d) {
  let total = 0;
  for (const f of fs.readdirSync(d)) {
    const st = fs.statSync(path.join(d, f));
    total += st.isDirectory() ? dirSize(path.join(d, f)) : st.size;
  }
  return total;
}

async function changeDocs(url, db, ids, round) {
  const got = await request('POST', `${url}/${db}/_all_docs?include_docs=true`, { keys: ids });
  const docs = got.rows.map((r) => Object.assign(r.doc, { prognosis: `weeks (reviewed, round ${round})` }));
  await request('POST', `${url}/${db}/_bulk_docs`, { docs });
}

async function rounds(url, db, localDir, batch, nRounds, nChanges, nGets) {
  const ids = (await request('GET', `${url}/${db}/_all_docs`)).rows.map((r) => r.id);
  const remote = new PouchDB(`${url}/${db}`);
  let local = new PouchDB(localDir);
  const rand = rng(0x5eed);
  const delta = [], idle = [];
  let lastDelta = null, lastIdle = null;
  for (let r = 0; r < nRounds; r++) {
    const pick = new Set();
    while (pick.size < nChanges) pick.add(ids[rand() % ids.length]);
    await changeDocs(url, db, [...pick], r);
    lastDelta = await replicateOnce(local, remote, batch);
    delta.push(lastDelta.ms);
  }
  for (let r = 0; r < nRounds; r++) {
    lastIdle = await replicateOnce(local, remote, batch);
    idle.push(lastIdle.ms);
  }
  const warm = [];
  for (let i = 0; i < nGets; i++) {
    const id = ids[rand() % ids.length];
    const t0 = process.hrtime.bigint();
    await local.get(id);
    warm.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  const first = [], openMs = [];
  for (let i = 0; i < 20; i++) {
    await local.close();
    let t0 = now();
    local = new PouchDB(localDir);
    await local.info(); // the leveldb open completes here
    openMs.push(now() - t0);
    const id = ids[rand() % ids.length];
    const t1 = process.hrtime.bigint();
    await local.get(id);
    first.push(Number(process.hrtime.bigint() - t1) / 1e3);
  }
  await local.close();
  await remote.close();
  out({ rounds: nRounds, changes_per_round: nChanges, batch_size: batch || 100,
        delta_ms: dist(delta), idle_ms: dist(idle), last_delta: lastDelta, last_idle: lastIdle,
        warm_get_us: dist(warm), open_ms: dist(openMs), first_get_us: dist(first) });
}

async function changeOnly(url, db, nChanges, round) {
  const ids = (await request('GET', `${url}/${db}/_all_docs`)).rows.map((r) => r.id);
  const rand = rng(0x7a11 + round);
  const pick = new Set();
  while (pick.size < Math.min(nChanges, ids.length)) pick.add(ids[rand() % ids.length]);
  await changeDocs(url, db, [...pick], 2000 + round);
  out({ changed: pick.size });
}

async function once(url, db, localDir, batch) {
  const local = new PouchDB(localDir);
  const remote = new PouchDB(`${url}/${db}`);
  const r = await replicateOnce(local, remote, batch);
  await local.close();
  await remote.close();
  out(r);
}

async function main() {
  const [cmd, ...a] = process.argv.slice(2);
  if (cmd === 'load' && a.length === 3) return load(a[0], a[1], a[2]);
  if (cmd === 'pull' && a.length === 4) return pull(a[0], a[1], a[2], a[3]);
  if (cmd === 'rounds' && a.length === 7)
    return rounds(a[0], a[1], a[2], Number(a[3]), Number(a[4]), Number(a[5]), Number(a[6]));
  if (cmd === 'change' && a.length === 4) return changeOnly(a[0], a[1], Number(a[2]), Number(a[3]));
  if (cmd === 'once' && a.length === 4) return once(a[0], a[1], a[2], Number(a[3]));
  throw new Error('usage: peer.js load|pull|rounds|change|once ... (see the comment at the top)');
}

main().catch((e) => { process.stderr.write(`peer.js: ${e.message}\n`); process.exit(1); });

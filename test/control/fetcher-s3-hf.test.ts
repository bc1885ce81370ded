/**
 * s3:// (AWS SDK) and hf:// (Hugging Face hub client) artifact sources, against loopback fakes:
 * a path-style S3 server implementing ListObjectsV2 + GetObject, and a hub server implementing the
 * tree listing and `resolve` downloads. No network.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { ArtifactCache, ArtifactError } from '../../src/control/adapters/fetcher.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const weights = Buffer.alloc(200 * 1024);
for (let i = 0; i < weights.length; i++) weights[i] = (i * 131 + 7) & 0xff;
const config = Buffer.from(JSON.stringify({ r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'], peft_type: 'LORA' }));

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const xmlEsc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

// ---------------------------------------------------------------------------------------------
// Fake S3 (path-style): GET /<bucket>?list-type=2&prefix=... and GET /<bucket>/<key>.

const s3Objects: Record<string, Record<string, Buffer>> = {
  adapters: { 'sql-lora/adapter_config.json': config, 'sql-lora/adapter_model.safetensors': weights, 'other/x.bin': Buffer.from('nope') },
};
const s3Seen: { method: string; url: string; auth?: string }[] = [];
const s3 = await listen((req, res) => {
  s3Seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization });
  const u = new URL(req.url!, 'http://x');
  const [, bucket, ...rest] = u.pathname.split('/');
  const key = decodeURIComponent(rest.join('/'));
  const err = (status: number, code: string, message: string) => {
    res.writeHead(status, { 'content-type': 'application/xml' }).end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message><RequestId>1</RequestId></Error>`);
  };
  const auth = req.headers.authorization ?? '';
  if (!auth.startsWith('AWS4-HMAC-SHA256 Credential=')) return err(403, 'AccessDenied', 'Anonymous access is forbidden');
  if (!auth.startsWith('AWS4-HMAC-SHA256 Credential=AKIDTEST/')) return err(403, 'AccessDenied', 'Access Denied');
  const objs = s3Objects[bucket!];
  if (!objs) return err(404, 'NoSuchBucket', 'The specified bucket does not exist');
  if (!key && u.searchParams.get('list-type') === '2') {
    const prefix = u.searchParams.get('prefix') ?? '';
    const keys = Object.keys(objs).filter((k) => k.startsWith(prefix)).sort();
    const contents = keys.map((k) => `<Contents><Key>${xmlEsc(k)}</Key><Size>${objs[k]!.length}</Size><ETag>"${sha(objs[k]!).slice(0, 32)}"</ETag><StorageClass>STANDARD</StorageClass></Contents>`).join('');
    res.writeHead(200, { 'content-type': 'application/xml' });
    res.end(`<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${bucket}</Name><Prefix>${xmlEsc(prefix)}</Prefix><KeyCount>${keys.length}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${contents}</ListBucketResult>`);
    return;
  }
  const obj = objs[key];
  if (!obj) return err(404, 'NoSuchKey', 'The specified key does not exist.');
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': obj.length, etag: `"${sha(obj).slice(0, 32)}"` });
  res.end(obj);
});

// ---------------------------------------------------------------------------------------------
// Fake HF hub: GET /api/models/<org>/<repo>/tree/<rev>[/<path>]?recursive=true and GET /<org>/<repo>/resolve/<rev>/<path>.

const hfRepos: Record<string, Record<string, Record<string, Buffer>>> = {
  'acme/sql-lora': { main: { 'adapter_config.json': config, 'adapter_model.safetensors': weights, 'README.md': Buffer.from('# sql') } },
  'acme/multi': { v2: { 'a/adapter_config.json': config, 'a/adapter_model.safetensors': weights, 'b/adapter_config.json': Buffer.from('{}') } },
};
const HF_TOKEN = 'hf_testtoken';
const hfSeen: { url: string; auth?: string; range?: string }[] = [];
const hf = await listen((req, res) => {
  hfSeen.push({ url: req.url!, auth: req.headers.authorization, range: req.headers.range });
  const u = new URL(req.url!, 'http://x');
  const fail = (status: number, msg: string, extra: Record<string, string> = {}) => res.writeHead(status, { 'content-type': 'application/json', ...extra }).end(JSON.stringify({ error: msg }));
  if (req.headers.authorization !== `Bearer ${HF_TOKEN}`) return fail(401, 'Invalid credentials in Authorization header');
  let m = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)(?:\/(.*))?$/.exec(u.pathname);
  if (m) {
    const files = hfRepos[m[1]!]?.[decodeURIComponent(m[2]!)];
    if (!files) return fail(404, 'Repository not found', { 'x-error-code': 'RepoNotFound' });
    const under = m[3] ? `${m[3]}/` : '';
    const list = Object.keys(files)
      .filter((p) => p.startsWith(under))
      .map((p) => ({ type: 'file', oid: sha(files[p]!).slice(0, 40), size: files[p]!.length, path: p }));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(list));
    return;
  }
  m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.*)$/.exec(u.pathname);
  if (m) {
    const body = hfRepos[m[1]!]?.[decodeURIComponent(m[2]!)]?.[decodeURIComponent(m[3]!)];
    if (!body) return fail(404, 'Entry not found', { 'x-error-code': 'EntryNotFound' });
    const r = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const etag = `"${sha(body).slice(0, 40)}"`;
    if (r) {
      const from = Number(r[1]);
      const to = r[2] ? Math.min(Number(r[2]), body.length - 1) : body.length - 1;
      res.writeHead(206, { 'content-length': to - from + 1, 'content-range': `bytes ${from}-${to}/${body.length}`, etag, 'accept-ranges': 'bytes' });
      res.end(body.subarray(from, to + 1));
      return;
    }
    res.writeHead(200, { 'content-length': body.length, etag }).end(body);
    return;
  }
  fail(404, `no route ${u.pathname}`);
});

const cacheDir = await mkdtemp(join(tmpdir(), 'inferplane-fetch-s3hf-'));
after(async () => {
  s3.server.close();
  hf.server.close();
  s3.server.closeAllConnections();
  hf.server.closeAllConnections();
  await rm(cacheDir, { recursive: true, force: true });
});

const s3Env = { AWS_ACCESS_KEY_ID: 'AKIDTEST', AWS_SECRET_ACCESS_KEY: 'secret', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL: s3.url };

async function listDir(d: string): Promise<string[]> {
  return (await readdir(d, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath ?? e.path, e.name).slice(d.length + 1)).sort();
}

test('s3://: downloads every object under the prefix with SigV4, caches, and shares concurrent fetches', async () => {
  const cache = new ArtifactCache(join(cacheDir, 's3a'), undefined, { env: s3Env });
  const url = 's3://adapters/sql-lora';
  s3Seen.length = 0;
  const [a, b] = await Promise.all([cache.fetch({ url }), cache.fetch({ url })]);
  assert.equal(a, b, 'concurrent fetches share one promise');
  assert.equal(a.cacheHit, false);
  assert.equal(a.downloadedBytes, weights.length + config.length);
  assert.deepEqual(await listDir(a.localPath), ['.complete.json', 'adapter_config.json', 'adapter_model.safetensors']);
  assert.deepEqual(await readFile(join(a.localPath, 'adapter_model.safetensors')), weights);
  assert.deepEqual(await readFile(join(a.localPath, 'adapter_config.json')), config);
  assert.equal(cache.downloads, 2, 'one GetObject per object, once');
  // Requests: path-style, ListObjectsV2 with the prefix, signed.
  const list = s3Seen.filter((r) => r.url.includes('list-type=2'));
  assert.equal(list.length, 1);
  assert.match(list[0]!.url, /^\/adapters\/?\?/);
  assert.match(list[0]!.url, /prefix=sql-lora%2F/);
  assert.equal(s3Seen.filter((r) => r.url.startsWith('/adapters/sql-lora/')).length, 2);
  for (const r of s3Seen) assert.match(r.auth ?? '', /^AWS4-HMAC-SHA256 Credential=AKIDTEST\/\d{8}\/us-east-1\/s3\/aws4_request/);
  await assert.rejects(stat(`${a.localPath}.partial`), 'no temp dir left behind');

  const before = s3Seen.length;
  const again = await cache.fetch({ url });
  assert.equal(again.cacheHit, true);
  assert.equal(again.downloadedBytes, 0);
  assert.equal(s3Seen.length, before, 'a cache hit sends no request');
  assert.equal(cache.downloads, 2);
});

test('s3://: credentials from the token (secret/env value) as KEY:SECRET and JSON; checksums verified', async () => {
  const cache = new ArtifactCache(join(cacheDir, 's3b'), undefined, { env: { AWS_ENDPOINT_URL: s3.url } });
  s3Seen.length = 0;
  const r = await cache.fetch({ url: 's3://adapters/sql-lora/', token: 'AKIDTEST:secret', sha256: { 'adapter_model.safetensors': sha(weights) } });
  assert.deepEqual(await readFile(join(r.localPath, 'adapter_model.safetensors')), weights);
  assert.ok(s3Seen.every((x) => x.auth?.startsWith('AWS4-HMAC-SHA256 Credential=AKIDTEST/')));

  const cache2 = new ArtifactCache(join(cacheDir, 's3c'), undefined, { env: {} });
  s3Seen.length = 0;
  const r2 = await cache2.fetch({ url: 's3://adapters/sql-lora', token: JSON.stringify({ accessKeyId: 'AKIDTEST', secretAccessKey: 'x', region: 'eu-west-1' }), endpointUrl: s3.url });
  assert.equal(r2.cacheHit, false);
  assert.match(s3Seen[0]!.auth ?? '', /Credential=AKIDTEST\/\d{8}\/eu-west-1\/s3\//);

  const cache3 = new ArtifactCache(join(cacheDir, 's3d'), undefined, { env: s3Env });
  await assert.rejects(cache3.fetch({ url: 's3://adapters/sql-lora', sha256: { 'adapter_model.safetensors': '0'.repeat(64) } }), (e: unknown) => e instanceof ArtifactError && /checksum mismatch/.test(e.message));
  await assert.rejects(stat(cache3.dirFor('s3://adapters/sql-lora')), 'a failed download leaves nothing that looks complete');
  await assert.rejects(stat(`${cache3.dirFor('s3://adapters/sql-lora')}.partial`));
  // A single sha256 cannot verify a directory: rejected before anything is requested.
  s3Seen.length = 0;
  await assert.rejects(cache3.fetch({ url: 's3://adapters/sql-lora', sha256: sha(weights) }), (e: unknown) => e instanceof ArtifactError && /sha256 must be a map/.test(e.message) && !e.retriable);
  assert.equal(s3Seen.length, 0, 'nothing downloaded for a spec that cannot be verified');
});

test('s3://: missing bucket, empty prefix, access denied and no credentials give clear errors', async () => {
  const cache = new ArtifactCache(join(cacheDir, 's3e'), undefined, { env: s3Env });
  await assert.rejects(cache.fetch({ url: 's3://nobucket/x' }), (e: unknown) => e instanceof ArtifactError && /s3:\/\/nobucket\/x: S3 ListObjectsV2 failed: NoSuchBucket \(HTTP 404\)/.test(e.message) && !e.retriable);
  await assert.rejects(cache.fetch({ url: 's3://adapters/missing' }), (e: unknown) => e instanceof ArtifactError && /no objects under s3:\/\/adapters\/missing\//.test(e.message));
  await assert.rejects(cache.fetch({ url: 's3://adapters/sql-lora', token: 'WRONGKEY:secret' }), (e: unknown) => e instanceof ArtifactError && /AccessDenied \(HTTP 403\)/.test(e.message) && !e.retriable);
  const noCreds = new ArtifactCache(join(cacheDir, 's3f'), undefined, { env: { AWS_ENDPOINT_URL: s3.url } });
  await assert.rejects(noCreds.fetch({ url: 's3://adapters/sql-lora' }), (e: unknown) => e instanceof ArtifactError && /no S3 credentials/.test(e.message) && !e.retriable);
  await assert.rejects(noCreds.fetch({ url: 's3://adapters/sql-lora', token: 'garbage' }), (e: unknown) => e instanceof ArtifactError && /ACCESS_KEY_ID:SECRET_ACCESS_KEY/.test(e.message));
});

test('hf://: downloads the repo files with the bearer token, caches, and shares concurrent fetches', async () => {
  const cache = new ArtifactCache(join(cacheDir, 'hfa'), undefined, { env: { HF_TOKEN, HF_ENDPOINT: hf.url } });
  const url = 'hf://acme/sql-lora';
  hfSeen.length = 0;
  const [a, b] = await Promise.all([cache.fetch({ url }), cache.fetch({ url })]);
  assert.equal(a, b);
  assert.equal(a.cacheHit, false);
  assert.deepEqual(await listDir(a.localPath), ['.complete.json', 'README.md', 'adapter_config.json', 'adapter_model.safetensors']);
  assert.deepEqual(await readFile(join(a.localPath, 'adapter_model.safetensors')), weights);
  assert.deepEqual(await readFile(join(a.localPath, 'adapter_config.json')), config);
  assert.equal(a.downloadedBytes, weights.length + config.length + 5);
  assert.equal(cache.downloads, 3);
  assert.ok(hfSeen.length > 0 && hfSeen.every((r) => r.auth === `Bearer ${HF_TOKEN}`), 'every hub request carries the token');
  assert.equal(hfSeen.filter((r) => r.url.startsWith('/api/models/acme/sql-lora/tree/main')).length, 1);
  assert.ok(hfSeen.some((r) => r.url === '/acme/sql-lora/resolve/main/adapter_model.safetensors'));

  const n = hfSeen.length;
  const again = await cache.fetch({ url });
  assert.equal(again.cacheHit, true);
  assert.equal(hfSeen.length, n, 'a cache hit sends no request');
});

test('hf://: revision and subdir; token from the request; hubUrl option', async () => {
  const cache = new ArtifactCache(join(cacheDir, 'hfb'), undefined, { env: {} });
  hfSeen.length = 0;
  const r = await cache.fetch({ url: 'hf://acme/multi@v2/a', token: HF_TOKEN, hubUrl: hf.url, sha256: { 'adapter_model.safetensors': sha(weights) } });
  assert.deepEqual(await listDir(r.localPath), ['.complete.json', 'adapter_config.json', 'adapter_model.safetensors']);
  assert.deepEqual(await readFile(join(r.localPath, 'adapter_model.safetensors')), weights);
  assert.ok(hfSeen.some((x) => x.url.startsWith('/api/models/acme/multi/tree/v2/a?')));
  assert.ok(hfSeen.some((x) => x.url === '/acme/multi/resolve/v2/a/adapter_config.json'));
});

test('hf://: missing repo, missing revision, bad token and bad URL give clear errors', async () => {
  const cache = new ArtifactCache(join(cacheDir, 'hfc'), undefined, { env: { HF_TOKEN, HF_ENDPOINT: hf.url } });
  await assert.rejects(cache.fetch({ url: 'hf://acme/nope' }), (e: unknown) => e instanceof ArtifactError && /hf:\/\/acme\/nope: Hugging Face hub listing acme\/nope@main failed \(HTTP 404\)/.test(e.message) && !e.retriable);
  await assert.rejects(cache.fetch({ url: 'hf://acme/sql-lora@v9' }), (e: unknown) => e instanceof ArtifactError && /HTTP 404/.test(e.message));
  await assert.rejects(cache.fetch({ url: 'hf://acme/sql-lora', token: 'hf_wrong' }), (e: unknown) => e instanceof ArtifactError && /HTTP 401/.test(e.message) && !e.retriable);
  await assert.rejects(cache.fetch({ url: 'hf://acme/multi@v2/zzz' }), (e: unknown) => e instanceof ArtifactError && /no files in acme\/multi@v2 under zzz\//.test(e.message));
  await assert.rejects(cache.fetch({ url: 'hf://justname' }), (e: unknown) => e instanceof ArtifactError && /expected hf:\/\/org\/repo/.test(e.message) && !e.retriable);
  await assert.rejects(stat(cache.dirFor('hf://acme/nope')));
});

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ArtifactCache, ArtifactError } from '../../src/control/adapters/fetcher.ts';

const body = Buffer.alloc(256 * 1024, 7);
for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
const digest = createHash('sha256').update(body).digest('hex');

/** Loopback artifact server. `cutFirst`: the first GET of /cut sends half the body then drops the socket. */
const seen: { url: string; range?: string }[] = [];
let cutDone = false;
const server = createServer((req: IncomingMessage, res) => {
  seen.push({ url: req.url!, range: req.headers.range });
  if (req.url === '/fail') {
    res.writeHead(500).end('boom');
    return;
  }
  if (req.url === '/auth' && req.headers.authorization !== 'Bearer s3cret') {
    res.writeHead(401).end('no');
    return;
  }
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (m) {
    const from = Number(m[1]);
    res.writeHead(206, { 'content-length': body.length - from, 'content-range': `bytes ${from}-${body.length - 1}/${body.length}` });
    res.end(body.subarray(from));
    return;
  }
  if (req.url === '/cut' && !cutDone) {
    cutDone = true;
    res.writeHead(200, { 'content-length': body.length });
    res.write(body.subarray(0, body.length / 2), () => setTimeout(() => res.socket?.destroy(), 20));
    return;
  }
  res.writeHead(200, { 'content-length': body.length });
  res.end(body);
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
const dir = await mkdtemp(join(tmpdir(), 'inferplane-fetch-'));
after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

test('http download: checksum verified, one download for concurrent fetches, then a cache hit', async () => {
  const cache = new ArtifactCache(join(dir, 'a'));
  const url = `${base}/lora/sql.safetensors`;
  const rs = await Promise.all([1, 2, 3].map(() => cache.fetch({ url, sha256: digest })));
  assert.equal(cache.downloads, 1);
  assert.equal(rs[0]!.localPath, rs[2]!.localPath);
  assert.deepEqual(await readFile(join(rs[0]!.localPath, 'sql.safetensors')), body);
  const again = await cache.fetch({ url, sha256: digest });
  assert.equal(again.cacheHit, true);
  assert.equal(cache.downloads, 1);
});

test('checksum mismatch fails and leaves no file', async () => {
  const cache = new ArtifactCache(join(dir, 'b'));
  const url = `${base}/lora/x.bin`;
  await assert.rejects(cache.fetch({ url, sha256: '0'.repeat(64) }), (e: unknown) => e instanceof ArtifactError && /checksum mismatch/.test(e.message));
  await assert.rejects(stat(join(cache.dirFor(url), 'x.bin')));
  await assert.rejects(stat(join(cache.dirFor(url), 'x.bin.partial')));
});

test('an interrupted download resumes with a Range request', async () => {
  const cache = new ArtifactCache(join(dir, 'c'));
  const url = `${base}/cut`;
  await assert.rejects(cache.fetch({ url, sha256: digest }), /interrupted|terminated|GET/);
  const partial = (await stat(join(cache.dirFor(url), 'cut.partial'))).size;
  assert.ok(partial > 0 && partial < body.length, `partial ${partial}`);
  const r = await cache.fetch({ url, sha256: digest });
  assert.equal(r.downloadedBytes, body.length - partial);
  assert.equal(seen.filter((s) => s.url === '/cut').at(-1)!.range, `bytes=${partial}-`);
  assert.deepEqual(await readFile(join(r.localPath, 'cut')), body);
});

test('directory URLs fetch each file; bearer token sent; HTTP errors and schemes are clear', async () => {
  const cache = new ArtifactCache(join(dir, 'd'));
  const r = await cache.fetch({ url: `${base}/repo/`, files: ['adapter_config.json', 'adapter_model.safetensors'] });
  assert.deepEqual(await readFile(join(r.localPath, 'adapter_config.json')), body);
  await cache.fetch({ url: `${base}/auth`, token: 's3cret' });
  await assert.rejects(cache.fetch({ url: `${base}/fail` }), (e: unknown) => e instanceof ArtifactError && /HTTP 500: boom/.test(e.message) && e.retriable);
  // s3:// and hf:// are fetched by the SDKs (test/control/fetcher-s3-hf.test.ts); here only their offline, non-retriable errors.
  const noEnv = new ArtifactCache(join(dir, 'd2'), undefined, { env: {} });
  await assert.rejects(noEnv.fetch({ url: 's3://bucket/key' }), (e: unknown) => e instanceof ArtifactError && !e.retriable && /no S3 credentials/.test(e.message));
  await assert.rejects(noEnv.fetch({ url: 'hf://repo-without-org' }), (e: unknown) => e instanceof ArtifactError && !e.retriable && /expected hf:\/\/org\/repo/.test(e.message));
  await assert.rejects(cache.fetch({ url: pathToFileURL(join(dir, 'nope')).toString() }), /artifact not found/);
  const f = join(dir, 'local.bin');
  await writeFile(f, body);
  assert.equal((await cache.fetch({ url: pathToFileURL(f).toString(), sha256: digest })).localPath, f);
  await assert.rejects(cache.fetch({ url: pathToFileURL(f).toString(), sha256: 'f'.repeat(64) }), /checksum mismatch/);
});

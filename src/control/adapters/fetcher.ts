/**
 * Artifact fetchers for LoRA adapters, with a local cache directory.
 *
 * - `file:///abs/path`: used in place (nothing copied); it must exist. A `sha256` string is checked
 *   when the path is a file.
 * - `http(s)://host/path/file`: downloaded to `<cacheDir>/<key>/file`; a URL ending in `/` is a
 *   directory: each name of `files` (default `adapter_config.json`, `adapter_model.safetensors`, the
 *   vLLM/PEFT layout) is fetched into `<cacheDir>/<key>/`. Downloads are resumable: bytes land in
 *   `<file>.partial` and a retry sends `Range: bytes=<size>-` (206 appends, 200 starts over). After the
 *   last byte the sha256 is computed and compared with the expected one (when given); a mismatch deletes
 *   the partial file and fails. A `.complete.json` marker makes later fetches cache hits. The local path
 *   handed to engines (`lora_path`) is the directory `<cacheDir>/<key>`.
 * - `s3://bucket/prefix` and `hf://org/repo[@revision][/subdir]`: every object / file under the prefix is
 *   downloaded (AWS SDK `@aws-sdk/client-s3`, Hugging Face hub client `@huggingface/hub`, both imported
 *   lazily) into `<cacheDir>/<key>`; see `./remote-sources.ts` for credentials, endpoints and errors.
 *   These are downloaded whole into `<cacheDir>/<key>.partial/` and renamed into place once complete,
 *   so a partial download is never visible as complete (no byte-range resume for these two).
 * One download per artifact however many endpoints need it: concurrent fetches of the same URL share
 * one promise, and a completed download is a cache hit.
 * AIBrix's downloaders (reference 3.2) key files by ETag; we key by URL and verify by sha256.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, basename } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

/** A fetch-compatible function (the global `fetch` of Node 20, or a fake in tests). */
export type FetchFn = (url: string, init?: { method?: string; headers?: Record<string, string>; body?: string; signal?: AbortSignal }) => Promise<Response>;

/** An artifact failed to fetch or verify. `retriable` is false for errors a retry cannot fix (bad scheme). */
export class ArtifactError extends Error {
  constructor(
    message: string,
    readonly retriable = true,
  ) {
    super(message);
    this.name = 'ArtifactError';
  }
}

/**
 * Whether a failed download is worth retrying, by HTTP status: server errors (5xx), 408 and 429, and
 * no status at all (a network error). Used for http(s), S3 and Hugging Face hub errors alike.
 */
export function retriableStatus(status: number | undefined): boolean {
  return status === undefined || status >= 500 || status === 429 || status === 408;
}

/** Default files of a directory URL (PEFT layout that vLLM's `lora_path` expects). */
export const DEFAULT_ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'];

/**
 * What to fetch. `token` is the credential resolved from the adapter's `credentials` (named secret or
 * env var): for http(s) and hf:// it is a bearer token; for s3:// it is `ACCESS_KEY_ID:SECRET_ACCESS_KEY`
 * or a JSON object `{accessKeyId, secretAccessKey, sessionToken?, region?}` (see `./remote-sources.ts`).
 * `endpointUrl` (S3-compatible store, path-style addressing) and `hubUrl` (HF mirror) override the
 * cache's defaults (env `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, `HF_ENDPOINT`).
 */
export interface ArtifactRequest {
  url: string;
  sha256?: string | Record<string, string>;
  files?: string[];
  token?: string;
  endpointUrl?: string;
  region?: string;
  hubUrl?: string;
}

/** Options of an {@link ArtifactCache}: the environment read for s3:// and hf:// defaults (default `process.env`). */
export interface ArtifactCacheOptions {
  env?: Record<string, string | undefined>;
}

/** A fetched artifact: the local path for `lora_path` and the bytes downloaded by this fetch (0 on a cache hit). */
export interface FetchedArtifact {
  localPath: string;
  downloadedBytes: number;
  cacheHit: boolean;
}

/** sha256 (hex) of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** The cache of downloaded artifacts (see module docs). */
export class ArtifactCache {
  private inflight = new Map<string, Promise<FetchedArtifact>>();
  /** Number of network downloads started (one per file fetched over http), for tests and metrics. */
  downloads = 0;

  constructor(
    readonly cacheDir: string,
    private readonly fetchFn: FetchFn = fetch as FetchFn,
    private readonly options: ArtifactCacheOptions = {},
  ) {}

  /**
   * Fetches an artifact (deduplicated by URL while in flight).
   * @throws ArtifactError on a missing file, an HTTP error, a checksum mismatch or an unsupported scheme.
   */
  fetch(req: ArtifactRequest): Promise<FetchedArtifact> {
    const running = this.inflight.get(req.url);
    if (running) return running;
    const p = this.doFetch(req).finally(() => this.inflight.delete(req.url));
    this.inflight.set(req.url, p);
    return p;
  }

  /** Local directory an http(s) URL caches into. */
  dirFor(url: string): string {
    return join(this.cacheDir, createHash('sha256').update(url).digest('hex').slice(0, 24));
  }

  private async doFetch(req: ArtifactRequest): Promise<FetchedArtifact> {
    const u = new URL(req.url);
    if (u.protocol === 'file:') {
      const p = fileURLToPath(u);
      let s;
      try {
        s = await stat(p);
      } catch {
        throw new ArtifactError(`artifact not found: ${p}`);
      }
      if (typeof req.sha256 === 'string' && s.isFile()) {
        const got = await sha256File(p);
        if (got !== req.sha256) throw new ArtifactError(`checksum mismatch for ${p}: expected sha256 ${req.sha256}, got ${got}`, false);
      }
      return { localPath: p, downloadedBytes: 0, cacheHit: true };
    }
    if (u.protocol === 's3:' || u.protocol === 'hf:') return this.fetchRemoteDir(req, u.protocol === 's3:' ? 's3' : 'hf');
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ArtifactError(`unsupported artifact scheme ${u.protocol}//`, false);

    const dir = this.dirFor(req.url);
    await mkdir(dir, { recursive: true });
    const isDir = u.pathname.endsWith('/');
    const files = isDir ? (req.files ?? DEFAULT_ADAPTER_FILES) : [basename(decodeURIComponent(u.pathname)) || 'artifact'];
    const marker = join(dir, '.complete.json');
    if (await exists(marker)) {
      try {
        const m = JSON.parse(await readFile(marker, 'utf8')) as { url: string; files: Record<string, string> };
        const want = (f: string) => (typeof req.sha256 === 'string' ? req.sha256 : req.sha256?.[f]);
        let ok = m.url === req.url;
        for (const f of files) ok &&= m.files[f] !== undefined && (want(f) === undefined || want(f) === m.files[f]) && (await exists(join(dir, f)));
        if (ok) return { localPath: dir, downloadedBytes: 0, cacheHit: true };
      } catch {
        /* unreadable marker: download again */
      }
    }
    let bytes = 0;
    const sums: Record<string, string> = {};
    for (const f of files) {
      const src = isDir ? new URL(f, u).toString() : req.url;
      const expected = typeof req.sha256 === 'string' ? (isDir ? undefined : req.sha256) : req.sha256?.[f];
      const r = await this.download(src, join(dir, f), expected, req.token);
      bytes += r.bytes;
      sums[f] = r.sha256;
    }
    await writeFile(marker, JSON.stringify({ url: req.url, files: sums }));
    return { localPath: dir, downloadedBytes: bytes, cacheHit: false };
  }

  /**
   * s3:// and hf://: a cache hit when `<dir>/.complete.json` names this URL (and matches any expected
   * sha256); otherwise downloads everything into `<dir>.partial/`, verifies, writes the marker there and
   * renames the directory into place.
   */
  private async fetchRemoteDir(req: ArtifactRequest, kind: 's3' | 'hf'): Promise<FetchedArtifact> {
    if (typeof req.sha256 === 'string') throw new ArtifactError(`${req.url}: sha256 must be a map of file name -> sha256 for a ${kind}:// directory`, false);
    const dir = this.dirFor(req.url);
    const marker = join(dir, '.complete.json');
    if (await exists(marker)) {
      try {
        const m = JSON.parse(await readFile(marker, 'utf8')) as { url: string; files: Record<string, string> };
        let ok = m.url === req.url && Object.keys(m.files).length > 0;
        for (const [f, h] of Object.entries(req.sha256 ?? {})) ok &&= m.files[f] === h;
        for (const f of Object.keys(m.files)) ok &&= await exists(join(dir, f));
        if (ok) return { localPath: dir, downloadedBytes: 0, cacheHit: true };
      } catch {
        /* unreadable marker: download again */
      }
    }
    const tmp = `${dir}.partial`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    const env = this.options.env ?? process.env;
    const remote = await import('./remote-sources.ts');
    let got: { files: Record<string, string>; bytes: number };
    try {
      got =
        kind === 's3'
          ? await remote.downloadS3Prefix(req, tmp, env, () => void this.downloads++)
          : await remote.downloadHfRepo(req, tmp, env, this.fetchFn, () => void this.downloads++);
      for (const [f, h] of Object.entries(req.sha256 ?? {})) {
        if (got.files[f] === undefined) throw new ArtifactError(`${req.url}: expected file ${f} (sha256 given) is not in the artifact`, false);
        if (got.files[f] !== h) throw new ArtifactError(`checksum mismatch for ${req.url} ${f}: expected sha256 ${h}, got ${got.files[f]}`);
      }
      await writeFile(join(tmp, '.complete.json'), JSON.stringify({ url: req.url, files: got.files }));
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
    return { localPath: dir, downloadedBytes: got.bytes, cacheHit: false };
  }

  /** Downloads one file with resume (Range) and sha256 verification; returns bytes transferred now and the digest. */
  private async download(url: string, dest: string, expected: string | undefined, token: string | undefined): Promise<{ bytes: number; sha256: string }> {
    const partial = `${dest}.partial`;
    let have = 0;
    let transferred = 0;
    try {
      have = (await stat(partial)).size;
    } catch {
      have = 0;
    }
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (have > 0) headers.range = `bytes=${have}-`;
    this.downloads++;
    let res: Response;
    try {
      res = await this.fetchFn(url, { method: 'GET', headers });
    } catch (e) {
      throw new ArtifactError(`GET ${url}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (res.status === 416 && have > 0) {
      // Range not satisfiable: the partial file is already complete (or the server's copy changed). Verify below.
      await res.body?.cancel();
    } else if (res.status === 200 || res.status === 206) {
      const append = res.status === 206 && have > 0;
      if (!append) have = 0;
      if (!res.body) throw new ArtifactError(`GET ${url}: empty body`);
      const out = createWriteStream(partial, { flags: append ? 'a' : 'w' });
      let n = 0;
      const counted = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
      counted.on('data', (c: Buffer) => {
        n += c.length;
      });
      try {
        await pipeline(counted, out);
      } catch (e) {
        throw new ArtifactError(`GET ${url}: interrupted after ${have + n} bytes (${e instanceof Error ? e.message : String(e)}); will resume`);
      }
      have += n;
      transferred = n;
    } else {
      const text = (await res.text().catch(() => '')).slice(0, 4096);
      throw new ArtifactError(`GET ${url}: HTTP ${res.status}${text ? `: ${text}` : ''}`, retriableStatus(res.status));
    }
    const digest = await sha256File(partial);
    if (expected !== undefined && digest !== expected) {
      await rm(partial, { force: true });
      throw new ArtifactError(`checksum mismatch for ${url}: expected sha256 ${expected}, got ${digest}`);
    }
    await rename(partial, dest);
    return { bytes: transferred, sha256: digest };
  }
}

/**
 * API keys (bearer tokens) and their limits. Keys come from the fleet file (`apiKeys`) and from the
 * admin API (`POST /admin/keys`). When no key exists at all, authentication is off (a local demo);
 * once one exists, every inference request needs `Authorization: Bearer <key>`.
 */
import { randomBytes } from 'node:crypto';
import { badApiKey } from './errors.ts';

/** One API key's identity and limits. */
export interface ApiKeyInfo {
  name: string;
  key: string;
  /** Requests per minute; undefined = unlimited. */
  rpm?: number;
  /** Tokens (prompt + completion, from usage) per minute; undefined = unlimited. */
  tpm?: number;
}

export class KeyStore {
  private readonly byKey = new Map<string, ApiKeyInfo>();

  constructor(keys: readonly ApiKeyInfo[] = []) {
    for (const k of keys) this.add(k);
  }

  get enabled(): boolean {
    return this.byKey.size > 0;
  }

  /** Adds or replaces (by name) a key; generates one (`ik-` + 32 hex) when `key` is absent. @throws Error on a key owned by another name. */
  add(k: Omit<ApiKeyInfo, 'key'> & { key?: string }): ApiKeyInfo {
    const key = k.key ?? `ik-${randomBytes(16).toString('hex')}`;
    const owner = this.byKey.get(key);
    if (owner && owner.name !== k.name) throw new Error(`that key already belongs to "${owner.name}"`);
    this.remove(k.name);
    const info: ApiKeyInfo = { name: k.name, key, rpm: k.rpm, tpm: k.tpm };
    this.byKey.set(key, info);
    return info;
  }

  /** Removes the key(s) of `name`; returns whether one existed. */
  remove(name: string): boolean {
    let found = false;
    for (const [key, info] of this.byKey) if (info.name === name) (this.byKey.delete(key), (found = true));
    return found;
  }

  list(): Omit<ApiKeyInfo, 'key'>[] {
    return [...this.byKey.values()].map(({ name, rpm, tpm }) => ({ name, rpm, tpm }));
  }

  /**
   * Authenticates an `Authorization` header value. Returns undefined when auth is off.
   * @throws ApiError 401 when the header is missing, not `Bearer`, or the key is unknown.
   */
  authenticate(header: string | undefined): ApiKeyInfo | undefined {
    if (this.byKey.size === 0) return undefined;
    if (!header) throw badApiKey(true);
    const sp = header.indexOf(' ');
    if (sp < 0 || header.slice(0, sp).toLowerCase() !== 'bearer') throw badApiKey(true);
    const info = this.byKey.get(header.slice(sp + 1).trim());
    if (!info) throw badApiKey(false);
    return info;
  }
}

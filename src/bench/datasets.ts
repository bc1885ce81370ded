/**
 * Dataset files for `bench run --dataset FILE`, detected by content:
 * - ShareGPT JSON (a JSON array of `{conversations: [{from: "human"|"gpt", value}]}`, e.g.
 *   `ShareGPT_V3_unfiltered_cleaned_split.json`): single-turn by default (the first human message,
 *   with the next reply's token count as the output length, as `vllm bench serve` does), or one
 *   session per conversation with `multiTurn`.
 * - AIBrix dataset JSONL (reference A1.1): plain lines `{prompt, completion?, output_length?}` and
 *   sessioned lines `{session_id, prompts: [...], completions?: [...]}`.
 * - An AIBrix workload JSONL (`workload_generator.py` output, reference A1.2): lines
 *   `{timestamp (ms), requests: [{prompt, prompt_length?, output_length?}]}`, replayed at their
 *   timestamps.
 * - A results file of an earlier `bench run` (lines of {@link RequestRecord}): a replay, every
 *   request with its recorded spec at its recorded scheduled time (sessions are replayed open-loop
 *   at the times their turns were sent before).
 * Errors name the file, and the line (JSONL) or the array index (JSON).
 */
import { readFileSync } from 'node:fs';
import type { Tokenizer } from '../engines/tokenizer.ts';
import { recordProblem, type RequestRecord } from './record.ts';
import type { RequestSpec, SessionSpec, WorkItem } from './workload.ts';

/** A loaded dataset: the items, and for a replay their recorded send times. */
export interface Dataset {
  format: 'sharegpt' | 'jsonl' | 'replay' | 'aibrix-workload';
  items: WorkItem[];
  /** Replays and AIBrix workloads: the scheduled send time of each item, ms from the run start. */
  arrivalsMs?: number[];
}

/** Options for {@link loadDataset} / {@link parseDataset}. */
export interface DatasetOptions {
  /** Counts prompt and reply tokens. */
  tokenizer: Tokenizer;
  /** Output tokens when a line gives no completion or output length (default 128). */
  defaultOutputTokens?: number;
  /** ShareGPT: one session per conversation instead of its first exchange. */
  multiTurn?: boolean;
  /** Stop after this many items (ShareGPT files are large; tokenizing all of them is slow). */
  maxItems?: number;
}

/** Reads `path` and parses it with {@link parseDataset}. @throws Error naming the file. */
export function loadDataset(path: string, opts: DatasetOptions): Dataset {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read dataset (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseDataset(text, path, opts);
}

/** Parses dataset text (format detected as in the module doc). @throws Error `FILE:LINE: ...`. */
export function parseDataset(text: string, file: string, opts: DatasetOptions): Dataset {
  const t = text.trimStart();
  if (t.startsWith('[')) return parseShareGpt(t, file, opts);
  return parseJsonl(text, file, opts);
}

function tokens(tok: Tokenizer, s: string): number {
  return tok.encode(s).length;
}

function parseShareGpt(text: string, file: string, opts: DatasetOptions): Dataset {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: invalid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(data)) throw new Error(`${file}: a ShareGPT file must be a JSON array`);
  const max = opts.maxItems ?? Infinity;
  const items: WorkItem[] = [];
  for (let i = 0; i < data.length && items.length < max; i++) {
    const conv = data[i] as Record<string, unknown> | null;
    const turns = conv && typeof conv === 'object' ? (conv.conversations ?? conv.conversation) : undefined;
    if (!Array.isArray(turns)) throw new Error(`${file}: [${i}].conversations must be an array`);
    const msgs: Array<{ role: 'user' | 'assistant'; text: string }> = [];
    for (const [j, m] of turns.entries()) {
      const mm = m as Record<string, unknown> | null;
      if (!mm || typeof mm.value !== 'string' || typeof mm.from !== 'string') {
        throw new Error(`${file}: [${i}].conversations[${j}] must have string fields "from" and "value"`);
      }
      const from = mm.from.toLowerCase();
      if (from === 'human' || from === 'user') msgs.push({ role: 'user', text: mm.value });
      else if (from === 'gpt' || from === 'assistant' || from === 'chatgpt' || from === 'bard') msgs.push({ role: 'assistant', text: mm.value });
      // system and other roles are skipped
    }
    const pairs: Array<{ user: string; reply: string }> = [];
    for (let k = 0; k + 1 < msgs.length; k++) {
      if (msgs[k]!.role === 'user' && msgs[k + 1]!.role === 'assistant') {
        pairs.push({ user: msgs[k]!.text, reply: msgs[k + 1]!.text });
        k++;
      }
    }
    // vLLM's ShareGPT sampling skips conversations without a reply and very short texts.
    const usable = pairs.filter((p) => p.user.length > 0 && p.reply.length > 0);
    if (usable.length === 0) continue;
    const spec = (p: { user: string; reply: string }, key: string): RequestSpec => ({
      inputTokens: tokens(opts.tokenizer, p.user),
      outputTokens: Math.max(1, tokens(opts.tokenizer, p.reply)),
      key,
      text: p.user,
    });
    const id = typeof conv!.id === 'string' ? conv!.id : `sg${i}`;
    if (opts.multiTurn) {
      items.push({ kind: 'session', session: { id, systemTokens: 0, turns: usable.map((p, k) => ({ request: spec(p, `sg/${i}/${k}`), thinkTimeMs: 0 })) } });
    } else {
      items.push({ kind: 'request', request: spec(usable[0]!, `sg/${i}`) });
    }
  }
  if (items.length === 0) throw new Error(`${file}: no usable conversations (each needs a human message followed by a reply)`);
  return { format: 'sharegpt', items };
}

function parseJsonl(text: string, file: string, opts: DatasetOptions): Dataset {
  const lines = text.split('\n');
  const max = opts.maxItems ?? Infinity;
  const defOut = opts.defaultOutputTokens ?? 128;
  const items: WorkItem[] = [];
  const arrivals: number[] = [];
  let format: Dataset['format'] | undefined;
  for (let k = 0; k < lines.length && items.length < max; k++) {
    const line = lines[k]!.trim();
    if (line === '') continue;
    const where = `${file}:${k + 1}`;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch (e) {
      throw new Error(`${where}: invalid JSON (${(e as Error).message})`);
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new Error(`${where}: expected a JSON object`);
    const r = o as Record<string, unknown>;
    const lineFormat: Dataset['format'] = 'scheduledMs' in r && 'spec' in r ? 'replay' : 'timestamp' in r && 'requests' in r ? 'aibrix-workload' : 'jsonl';
    if (format === undefined) format = lineFormat;
    else if (format !== lineFormat) throw new Error(`${where}: mixes ${format} lines and ${lineFormat} lines`);
    // Output length of a dataset line: `length` (null = absent), else the completion's tokens, else the default.
    const outOf = (completion: unknown, length: unknown, what: string): number => {
      if (length !== undefined && length !== null) {
        if (!(Number.isInteger(length) && (length as number) >= 1)) throw new Error(`${where}: ${what} must be an integer >= 1`);
        return length as number;
      }
      if (typeof completion === 'string' && completion.length > 0) return Math.max(1, tokens(opts.tokenizer, completion));
      return defOut;
    };
    if (lineFormat === 'replay') {
      const problem = recordProblem(r);
      if (problem) throw new Error(`${where}: not a results line: ${problem}`);
      const rec = r as unknown as RequestRecord;
      const s = rec.spec;
      if (!(Number.isInteger(s.inputTokens) && s.inputTokens >= 0 && Number.isInteger(s.outputTokens) && s.outputTokens >= 1 && typeof s.key === 'string')) {
        throw new Error(`${where}: spec needs integer inputTokens >= 0, outputTokens >= 1 and a string key`);
      }
      items.push({ kind: 'request', request: { ...s } });
      arrivals.push(rec.scheduledMs);
      continue;
    }
    if (lineFormat === 'aibrix-workload') {
      const ts = r.timestamp;
      if (typeof ts !== 'number' || !Number.isFinite(ts) || ts < 0) throw new Error(`${where}: timestamp must be a number of ms >= 0`);
      if (!Array.isArray(r.requests)) throw new Error(`${where}: requests must be an array`);
      for (const [j, q] of r.requests.entries()) {
        const qq = q as Record<string, unknown> | null;
        if (!qq || typeof qq.prompt !== 'string') throw new Error(`${where}: requests[${j}].prompt must be a string`);
        items.push({
          kind: 'request',
          request: { inputTokens: tokens(opts.tokenizer, qq.prompt), outputTokens: outOf(undefined, qq.output_length, `requests[${j}].output_length`), key: `aw/${k + 1}/${j}`, text: qq.prompt },
        });
        arrivals.push(ts);
        if (items.length >= max) break;
      }
      continue;
    }
    if ('prompts' in r || 'session_id' in r) {
      if (!Array.isArray(r.prompts) || r.prompts.length === 0 || !r.prompts.every((p) => typeof p === 'string')) {
        throw new Error(`${where}: prompts must be a non-empty array of strings`);
      }
      const comps = Array.isArray(r.completions) ? r.completions : [];
      const lens = Array.isArray(r.output_lengths) ? r.output_lengths : [];
      const sid = r.session_id === undefined ? `l${k + 1}` : String(r.session_id);
      const session: SessionSpec = {
        id: sid,
        systemTokens: 0,
        turns: (r.prompts as string[]).map((p, j) => ({
          request: { inputTokens: tokens(opts.tokenizer, p), outputTokens: outOf(comps[j], lens[j], `output_lengths[${j}]`), key: `ds/${k + 1}/${j}`, text: p },
          thinkTimeMs: 0,
        })),
      };
      items.push({ kind: 'session', session });
    } else if (typeof r.prompt === 'string') {
      items.push({
        kind: 'request',
        request: { inputTokens: tokens(opts.tokenizer, r.prompt), outputTokens: outOf(r.completion, r.output_length, 'output_length'), key: `ds/${k + 1}`, text: r.prompt },
      });
    } else {
      throw new Error(`${where}: a dataset line needs "prompt" (a string) or "session_id" and "prompts"`);
    }
  }
  if (items.length === 0) throw new Error(`${file}: no requests in the file`);
  if (format === 'replay' || format === 'aibrix-workload') {
    // Keep schedule order.
    const order = arrivals.map((_, i) => i).sort((a, b) => arrivals[a]! - arrivals[b]! || a - b);
    return { format, items: order.map((i) => items[i]!), arrivalsMs: order.map((i) => arrivals[i]!) };
  }
  return { format: 'jsonl', items };
}

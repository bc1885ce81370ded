/**
 * Prompt text of an exact token length, deterministic for a seed.
 *
 * How it is exact: the text is a run of `" word"` pieces drawn from a list of common English words,
 * keeping only words for which `" " + word` encodes to exactly one token with the model's tokenizer
 * (checked once per tokenizer). Llama 3's pre-tokenizer regex splits text into `" ?\p{L}+"` pieces
 * before BPE, so BPE never merges across two pieces and N pieces encode to exactly N tokens. Blocks
 * made this way concatenate exactly too (prefix + suffix, Mooncake 512-token blocks). Tests verify
 * this by re-encoding; {@link PromptFactory.verify} does it at run time.
 *
 * With the chat API the server wraps the text in the chat template, so the server-side prompt is
 * this many tokens plus the template's few tokens; the completions API sends exactly these tokens.
 */
import { tokenizerFor, type Tokenizer } from '../engines/tokenizer.ts';
import { createRng, seedOf, type Rng } from './rng.ts';
import { MOONCAKE_BLOCK_TOKENS } from './traces.ts';

const WORDS =
  'the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her she there one all we their can has been if more when will would who so no out up into do than time only other new some could these two may first then any like now my such make over our even most after also made many before must through back years where much your way well down should because each just those people how too little state good very world still own see men work long here get both between life being under never day same another know while last might great old year off come since against go came right used take three states himself few house use during without again place around however home small found thought went say part once general high upon school every number think fact head public days hand others course give early end although point four least system far order keep water took power city best better light white young open whole sense five told want face given together done felt feel side body book room car mind case door turn line land asked among eyes free black real war today form half play voice move party children big became change began night country'.split(
    ' ',
  );

const vocabCache = new WeakMap<Tokenizer, string[]>();

/** The `" word"` pieces that are one token each for `tok` (at least 32 are required). */
export function singleTokenPieces(tok: Tokenizer): string[] {
  let v = vocabCache.get(tok);
  if (!v) {
    v = WORDS.map((w) => ' ' + w).filter((p) => tok.encode(p).length === 1);
    if (v.length < 32) throw new Error(`tokenizer ${tok.name}: only ${v.length} single-token words; exact-length prompts need at least 32`);
    vocabCache.set(tok, v);
  }
  return v;
}

/** Text of exactly `tokens` tokens for `tok`, drawn from `rng`. `tokens` must be an integer >= 0. */
export function randomText(tokens: number, rng: Rng, tok: Tokenizer): string {
  if (!(Number.isInteger(tokens) && tokens >= 0)) throw new Error(`token count must be an integer >= 0, got ${tokens}`);
  const pieces = singleTokenPieces(tok);
  const parts = new Array<string>(tokens);
  for (let i = 0; i < tokens; i++) parts[i] = pieces[Math.floor(rng.next() * pieces.length)]!;
  return parts.join('');
}

/**
 * Makes prompt text for workload items: unique text, shared prefixes and hash-id blocks, all
 * deterministic for `(seed, key)`. Prefix and block texts are cached (bounded).
 */
export class PromptFactory {
  readonly tokenizer: Tokenizer;
  private readonly cache = new Map<string, string>();

  /**
   * `model` picks the tokenizer (`tokenizerFor`), `seed` makes every text reproducible (a string
   * seed, e.g. `"0/run-b"`, gives other text for the same workload).
   */
  constructor(
    model: string,
    readonly seed: number | string = 0,
    tokenizer?: Tokenizer,
  ) {
    this.tokenizer = tokenizer ?? tokenizerFor(model);
    singleTokenPieces(this.tokenizer);
  }

  /** Exactly `tokens` tokens of text, the same for the same `(seed, key)`. */
  text(tokens: number, key: string | number): string {
    return randomText(tokens, createRng(seedOf(`${this.seed}/${key}`)), this.tokenizer);
  }

  private cached(key: string, make: () => string): string {
    let t = this.cache.get(key);
    if (t === undefined) {
      t = make();
      if (this.cache.size >= 4096) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(key, t);
    }
    return t;
  }

  /** The first `tokens` tokens of shared prefix `id` (a prefix of a longer one is its start). */
  prefix(id: number | string, tokens: number): string {
    return this.cached(`p/${id}/${tokens}`, () => this.text(tokens, `prefix/${id}`));
  }

  /** Mooncake block `id`: 512 tokens (or `tokens`, for a partial last block, its first tokens). */
  block(id: number, tokens = MOONCAKE_BLOCK_TOKENS): string {
    const full = this.cached(`b/${id}`, () => this.text(MOONCAKE_BLOCK_TOKENS, `block/${id}`));
    if (tokens === MOONCAKE_BLOCK_TOKENS) return full;
    // Every piece is one token and starts with a space: cut after the `tokens`-th piece.
    let cut = 0;
    for (let k = 0; k < tokens; k++) {
      const next = full.indexOf(' ', cut + 1);
      cut = next === -1 ? full.length : next;
    }
    return full.slice(0, cut);
  }

  /** `inputTokens` tokens made of the blocks `hashIds` (512 tokens each, the last one cut). */
  blocks(hashIds: readonly number[], inputTokens: number): string {
    let out = '';
    let left = inputTokens;
    for (const id of hashIds) {
      if (left <= 0) break;
      const n = Math.min(MOONCAKE_BLOCK_TOKENS, left);
      out += this.block(id, n);
      left -= n;
    }
    // More tokens than blocks cover (not in valid Mooncake rows): pad with unique text.
    if (left > 0) out += this.text(left, `pad/${hashIds.join(',')}`);
    return out;
  }

  /** Re-encodes `text` and throws unless it is exactly `tokens` tokens. */
  verify(text: string, tokens: number): void {
    const n = this.tokenizer.encode(text).length;
    if (n !== tokens) throw new Error(`prompt text encodes to ${n} tokens, expected ${tokens}`);
  }
}

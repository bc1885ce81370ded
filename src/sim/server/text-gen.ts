/**
 * Deterministic generated text for the simulator: a request's output is a sequence of common English
 * words, each one token (with its leading space) in the serving tokenizer, so the text of N output
 * tokens re-tokenizes to exactly N tokens (the Llama 3 pre-tokenizer splits ` word` pieces apart).
 * The words are drawn from a seeded PRNG (mulberry32), so the same seed gives the same text.
 */
import type { Tokenizer } from '../../engines/tokenizer.ts';
import { mulberry32 } from '../../common/hash32.ts';

const CANDIDATE_WORDS = (
  'the of and to in is it that for was on are as with his they at be this from have or by one had not but what all were when we there can an your which their said if do will each about how up out them then she many some so these would other into has more her two like him see time could no make than first been its who now people my made over did down only way find use may water long little very after words called just where most know get through back much go good new write our me man too any day same right look think also around another came come work three word must because does part even place well such here take why things help put years different away again off went old number great tell men say small every found still between name should home big give air line set own under read last never us left end along while might next sound below saw something thought both few those always looked show large often together asked house world going want school important until form food keep children feet land side without boy once animals life enough took sometimes four head above kind began almost live page got earth need far hand high year mother light parts country father let night following picture being study second eyes soon times story boys since white days ever paper hard near sentence better best across during today others however sure means knew'
).split(' ');

/** Words (with a leading space) that encode to exactly one token, with their ids. */
export interface WordVocab {
  words: string[];
  ids: number[];
}

const vocabCache = new Map<string, WordVocab>();

/**
 * The single-token words of a tokenizer (cached per tokenizer name).
 * @throws Error if the tokenizer has fewer than 16 such words (cannot generate text honestly).
 */
export function wordVocab(tok: Tokenizer): WordVocab {
  let v = vocabCache.get(tok.name);
  if (v) return v;
  v = { words: [], ids: [] };
  for (const w of CANDIDATE_WORDS) {
    const text = ` ${w}`;
    const ids = tok.encode(text);
    if (ids.length === 1 && tok.decode(ids) === text) {
      v.words.push(text);
      v.ids.push(ids[0]!);
    }
  }
  if (v.words.length < 16) throw new Error(`tokenizer ${tok.name}: only ${v.words.length} single-token words; cannot generate text`);
  vocabCache.set(tok.name, v);
  return v;
}

/** FNV-1a over token ids and a seed: a 32-bit key for per-request determinism. */
export function seedFor(seed: number, tokens: ArrayLike<number>): number {
  let h = (0x811c9dc5 ^ (seed >>> 0)) >>> 0;
  for (let i = 0; i < tokens.length; i++) {
    h ^= tokens[i]! & 0xffff;
    h = Math.imul(h, 0x01000193) >>> 0;
    h ^= tokens[i]! >>> 16;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Generates one request's output tokens on demand, deterministically from its seed. */
export class TextStream {
  private readonly rand: () => number;
  constructor(
    private readonly vocab: WordVocab,
    seed: number,
  ) {
    this.rand = mulberry32(seed);
  }

  /** The next `n` tokens: their text and ids. */
  next(n: number): { text: string; ids: number[] } {
    let text = '';
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const k = Math.floor(this.rand() * this.vocab.words.length);
      text += this.vocab.words[k]!;
      ids.push(this.vocab.ids[k]!);
    }
    return { text, ids };
  }
}

/**
 * The output length a request would reach before emitting EOS when `ignore_eos` is false: a
 * deterministic draw in [16, 512] tokens from the request's seed (the simulator has no model; the
 * range is an assumption, close to chat answers' typical lengths).
 */
export function naturalOutputLength(seed: number): number {
  const r = mulberry32(seed ^ 0x9e3779b9)();
  return 16 + Math.floor(r * 497);
}

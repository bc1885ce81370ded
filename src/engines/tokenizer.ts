/**
 * Tokenizers for prompts, shared by the simulator, the gateway (cache-aware routing) and the
 * benchmark client. Nothing is downloaded at run time: the Llama 3 BPE vocabulary ships inside the
 * `llama3-tokenizer-js` npm package.
 *
 * Models from other families (Qwen, Mistral, ...) are tokenized with the Llama 3 tokenizer unless a
 * caller supplies its own: token counts are then close to, not equal to, the real model's. Callers
 * that need exact counts for another family pass a `Tokenizer` of their own.
 */
import { createRequire } from 'node:module';
import type { Llama3Tokenizer } from 'llama3-tokenizer-js';

const require = createRequire(import.meta.url);
let llama3Codec: Llama3Tokenizer | undefined;
/**
 * Loads the Llama 3 vocabulary on first use only: decompressing it costs about 0.5 s of CPU, which a
 * gateway that never tokenizes (no cache-aware strategy) should not pay at start-up.
 */
function llama3Tokenizer(): Llama3Tokenizer {
  llama3Codec ??= (require('llama3-tokenizer-js/bundle/commonjs-llama3-tokenizer-with-baked-data.cjs') as { llama3Tokenizer: Llama3Tokenizer }).llama3Tokenizer;
  return llama3Codec;
}

/** A text <-> token-id codec. Ids are non-negative integers. */
export interface Tokenizer {
  readonly name: string;
  /** Encodes text to token ids, without BOS/EOS. */
  encode(text: string): number[];
  /** Decodes token ids to text (special tokens rendered as their strings). */
  decode(ids: readonly number[]): string;
  /** Vocabulary size (ids are in [0, vocabSize)). */
  readonly vocabSize: number;
}

const LLAMA3_VOCAB = 128256;

const llama3: Tokenizer = {
  name: 'llama3',
  vocabSize: LLAMA3_VOCAB,
  encode: (text) => llama3Tokenizer().encode(text, { bos: false, eos: false }),
  decode: (ids) => llama3Tokenizer().decode([...ids]),
};

/** Returns the tokenizer used for `model` (today: Llama 3's for every model; see the module doc). */
export function tokenizerFor(_model: string): Tokenizer {
  return llama3;
}

/** One chat message as the OpenAI API carries it (text content only; parts are concatenated). */
export interface ChatMessage {
  role: string;
  content: string | Array<{ type: string; text?: string }> | null;
}

/**
 * Renders chat messages to the prompt text the engine tokenizes, in the Llama 3 chat template
 * (`<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>` ... plus the assistant header).
 * Deterministic, so the gateway and the simulator agree on token ids for prefix matching.
 */
export function renderChat(messages: readonly ChatMessage[]): string {
  let out = '<|begin_of_text|>';
  for (const m of messages) {
    const text = typeof m.content === 'string' ? m.content : Array.isArray(m.content) ? m.content.map((p) => p.text ?? '').join('') : '';
    out += `<|start_header_id|>${m.role}<|end_header_id|>\n\n${text}<|eot_id|>`;
  }
  return out + '<|start_header_id|>assistant<|end_header_id|>\n\n';
}

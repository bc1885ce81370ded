import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { BlockHashChain, digestToU64, hashBlockChain, hashBlockChainDigests, noneHash } from '../../src/engines/vllm/block-hash.ts';

const sha = (hex: string) => new Uint8Array(createHash('sha256').update(Buffer.from(hex, 'hex')).digest());
const hex = (u: Uint8Array) => Buffer.from(u).toString('hex');

// Hand-built canonical CBOR (RFC 8949): 0x83 = array(3); 0x5820 = bytes(32); 0x90 = array(16);
// ints 0..23 are one byte; 0x1a = uint32; 0xf6 = null; 0x81 = array(1); 0x66 = text(6).
const NONE_0 = sha('6130'); // sha256(cbor("0")) = NONE_HASH with PYTHONHASHSEED=0

test('NONE_HASH is sha256 of the CBOR text string of PYTHONHASHSEED', () => {
  assert.equal(hex(noneHash('0')), hex(NONE_0));
  assert.equal(hex(noneHash('42')), hex(sha('623432')));
});

test('block chain matches hand-computed sha256_cbor vectors', () => {
  const b0 = Array.from({ length: 16 }, (_, i) => i); // 0..15, one byte each
  const b1 = Array.from({ length: 16 }, () => 128000); // 0x1a 0001f400 each
  const h0 = sha('835820' + hex(NONE_0) + '90' + b0.map((t) => t.toString(16).padStart(2, '0')).join('') + 'f6');
  const h1 = sha('835820' + hex(h0) + '90' + '1a0001f400'.repeat(16) + 'f6');
  const tokens = [...b0, ...b1, 5, 6, 7]; // trailing partial block is not hashed
  const d = hashBlockChainDigests(tokens, 16);
  assert.equal(d.length, 2);
  assert.equal(hex(d[0]!), hex(h0));
  assert.equal(hex(d[1]!), hex(h1));
  // KV-event form: lower 64 bits read big-endian = last 8 bytes
  const ints = hashBlockChain(tokens, 16);
  assert.equal(ints[0], BigInt('0x' + hex(h0).slice(48)));
  assert.equal(ints[1], BigInt('0x' + hex(h1).slice(48)));
  assert.equal(digestToU64(h1), ints[1]);
});

test('LoRA name goes into every block; cache_salt only into the first', () => {
  const b0 = Array.from({ length: 4 }, (_, i) => i + 1);
  const loraKey = '81' + '66' + Buffer.from('lora-a').toString('hex');
  const h0 = sha('835820' + hex(NONE_0) + '84' + '01020304' + loraKey);
  const h1 = sha('835820' + hex(h0) + '84' + '01020304' + loraKey);
  const d = hashBlockChainDigests([...b0, ...b0], 4, { loraName: 'lora-a' });
  assert.deepEqual(d.map(hex), [hex(h0), hex(h1)]);
  const salted = hashBlockChainDigests([...b0, ...b0], 4, { cacheSalt: 'salt' });
  const s0 = sha('835820' + hex(NONE_0) + '84' + '01020304' + '81' + '64' + Buffer.from('salt').toString('hex'));
  const s1 = sha('835820' + hex(s0) + '84' + '01020304' + 'f6');
  assert.deepEqual(salted.map(hex), [hex(s0), hex(s1)]);
});

test('chaining: a shared prefix gives shared hashes, a different first block changes all later ones', () => {
  const a = hashBlockChain([1, 2, 3, 4, 5, 6, 7, 8], 4);
  const b = hashBlockChain([1, 2, 3, 4, 5, 6, 7, 9], 4);
  const c = hashBlockChain([0, 2, 3, 4, 5, 6, 7, 8], 4);
  assert.equal(a[0], b[0]);
  assert.notEqual(a[1], b[1]);
  assert.notEqual(a[1], c[1]);
  assert.notEqual(hashBlockChain([1, 2, 3, 4], 4, { hashSeed: '1' })[0], a[0]);
  assert.throws(() => hashBlockChain([1], 0), RangeError);
});

test('incremental chain equals the one-shot chain', () => {
  const toks = Array.from({ length: 50 }, (_, i) => (i * 7919) % 128000);
  const chain = new BlockHashChain(16, { loraName: 'x' });
  const got = [...chain.extend(toks.slice(0, 10)), ...chain.extend(toks.slice(10, 33)), ...chain.extend(toks.slice(33))];
  assert.deepEqual(got.map(hex), hashBlockChainDigests(toks, 16, { loraName: 'x' }).map(hex));
  assert.equal(chain.blocks, 3);
});

test('matches vectors computed with Python cbor2 (6.1.4, canonical=True) + hashlib, PYTHONHASHSEED=0', () => {
  // python: h = lambda x: hashlib.sha256(cbor2.dumps(x, canonical=True)).digest(); none = h("0")
  //         chain h((parent, tuple(block), extra_keys)); uint64 = int.from_bytes(d, "big") & (2**64 - 1)
  const toks = Array.from({ length: 32 }, (_, i) => 100 + i);
  assert.deepEqual(hashBlockChain(toks, 16), [8468860364822751900n, 5659426989048894505n]);
  assert.deepEqual(hashBlockChain(toks.slice(0, 16), 16, { loraName: 'lora-a' }), [3733651109250492991n]);
  const mixed = [128000, 70000, 300, 24, 23, 128000, 70000, 300, 24, 23, 128000, 70000, 300, 24, 23, 127999];
  assert.deepEqual(hashBlockChain(mixed, 16), [17605112732876995911n]);
});

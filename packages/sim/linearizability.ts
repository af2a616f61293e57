/**
 * A linearizability checker: the Wing & Gong search with Lowe's memoization ("WGL", as in
 * Porcupine and Knossos), partitioned per key when the model allows it, with support for
 * operations whose outcome is unknown (a request that timed out may or may not have taken
 * effect, at any time after it was invoked).
 *
 * References: J. M. Wing, C. Gong, "Testing and verifying concurrent objects" (1993);
 * G. Lowe, "Testing for linearizability" (2017); P. Athalye, Porcupine.
 * @module
 */

/**
 * One operation of a concurrent history, as a client saw it.
 *
 * `call` and `return` are times on one shared clock (real or logical). An operation whose
 * `return` is `undefined` has an unknown outcome: it never returned (timeout, crash, lost
 * connection), so it may have taken effect at any time after `call`, or never. Operations
 * known not to have happened (the server rejected them) should be left out of the history.
 *
 * When `a.return < b.call`, `a` happened before `b`; when `a.return === b.call` the two are
 * treated as concurrent, because clocks with coarse ticks cannot order them.
 */
export interface Operation<I, O> {
  /** Who issued the operation; only used to describe failures. */
  readonly clientId: number | string;
  /** What the client asked for. */
  readonly input: I;
  /** When the client invoked the operation. */
  readonly call: number;
  /** When the client saw the result; `undefined` for an unknown outcome. */
  readonly return?: number;
  /** The result the client saw; ignored when `return` is `undefined`. */
  readonly output?: O;
}

/** The outcome of applying one operation to a model state. */
export type StepResult<S> = { ok: true; state: S } | { ok: false; state?: S };

/**
 * A sequential specification: what the object would do if operations ran one at a time.
 * States must be treated as immutable: `step` returns a new state instead of changing the
 * one it is given, because the search backtracks to earlier states.
 */
export interface Model<S, I, O> {
  /** The state before any operation. */
  init(): S;
  /**
   * Applies `input` to `state` and says whether a sequential object could have answered
   * `output`. `output` is `undefined` exactly when the outcome is unknown: then accept any
   * output (and apply the effect the operation has when it takes effect).
   */
  step(state: S, input: I, output: O | undefined): StepResult<S>;
  /**
   * A string that is equal for equal states, used to memoize the search. Without it (and
   * without `equal`) states are hashed structurally (primitives, arrays, plain objects,
   * `Map`, `Set`, `Date`).
   */
  hash?(state: S): string;
  /**
   * State equality, when equal states can have different hashes. With `equal` and no
   * `hash`, all states with the same set of linearized operations are compared pairwise.
   */
  equal?(a: S, b: S): boolean;
  /**
   * Says that an operation with this input and output never changes the state wherever
   * the model accepts it (a read; a CAS that reported failure). Optional, but it lets the
   * checker place such operations as early as possible instead of trying every position,
   * which removes most of the search in read-heavy, highly concurrent histories. Answering
   * true for an operation that can change the state makes the checker unsound.
   */
  readOnly?(input: I, output: O | undefined): boolean;
  /**
   * Splits a history into independent sub-histories (for example one per key) that are
   * linearizable together exactly when each one is. Every operation must appear in exactly
   * one part. Checking parts separately is what makes large histories cheap.
   */
  partition?(history: readonly Operation<I, O>[]): Operation<I, O>[][];
}

/** Options of {@linkcode checkLinearizability}. */
export interface CheckLinearizabilityOptions {
  /**
   * Time budget for the whole check; when it runs out the result is `"unknown"`.
   * @default Infinity
   */
  timeoutMs?: number;
  /**
   * The clock the budget is measured with, in milliseconds.
   * @default Date.now
   */
  now?: () => number;
}

/** Why a history is not linearizable: where the deepest attempt got stuck. */
export interface IllegalExplanation<S, I, O> {
  /** Index of the failing part in what `model.partition` returned (0 when unpartitioned). */
  readonly partitionIndex: number;
  /** The operations of the failing part. */
  readonly partition: readonly Operation<I, O>[];
  /** The longest sequence of operations the search managed to linearize, in order. */
  readonly linearized: readonly Operation<I, O>[];
  /** The model state after `linearized`. */
  readonly state: S;
  /**
   * A completed operation that could not be linearized next: its return time had come, so
   * it had to be placed before anything invoked later, and neither it nor any other
   * pending operation fit.
   */
  readonly failedOp: Operation<I, O>;
  /** Every operation that could have come next at that point (includes `failedOp`). */
  readonly pending: readonly Operation<I, O>[];
  /** A human-readable account of the above. */
  readonly message: string;
}

/** Result of {@linkcode checkLinearizability}. */
export type LinearizabilityResult<S, I, O> =
  | { readonly result: "ok" }
  | { readonly result: "illegal"; readonly explanation: IllegalExplanation<S, I, O> }
  | { readonly result: "unknown"; readonly reason: string };

/**
 * Checks that a concurrent history is linearizable with respect to a sequential model:
 * that some total order of its operations (keeping every operation that completed before
 * another was invoked ahead of it) is accepted by the model step by step. Operations with
 * an unknown outcome may be placed anywhere after their call, or left out.
 *
 * The search is exponential in the worst case; memoization over (set of linearized
 * operations, model state), per-key partitioning and the model's `readOnly` hint keep
 * real histories fast (100 000 operations over 50 keys in about a second). The costly
 * case is proving a violation on one key under high concurrency, where every
 * interleaving of the concurrent writes before the violation must be ruled out; use
 * `timeoutMs` to bound it.
 *
 * @param model the sequential specification
 * @param history the operations, in any order
 * @param options time budget
 * @returns `"ok"`, `"illegal"` with an explanation, or `"unknown"` when the budget ran out
 * @throws {RangeError} when an operation has a non-finite call time or returns before its
 *   call, or when `timeoutMs` is negative
 * @throws {TypeError} when `model.partition` loses or invents operations
 *
 * @example
 * ```ts
 * import { checkLinearizability, kvModel } from "@tsraft/core/testing";
 * // Client 1 writes x=a (time 0..10); client 2 reads x concurrently and sees "a",
 * // then reads again after the write completed and sees nothing: a stale read.
 * const history = [
 *   { clientId: 1, input: { op: "put", key: "x", value: "a" } as const, call: 0, return: 10, output: "ok" },
 *   { clientId: 2, input: { op: "get", key: "x" } as const, call: 1, return: 5, output: "a" },
 *   { clientId: 2, input: { op: "get", key: "x" } as const, call: 11, return: 12, output: null },
 * ];
 * const verdict = checkLinearizability(kvModel, history);
 * if (verdict.result !== "illegal") throw new Error("expected a stale read to be illegal");
 * // The explanation points at the read that cannot be placed (its `message` says more).
 * if (verdict.explanation.failedOp !== history[2]) throw new Error("wrong culprit");
 * ```
 */
export function checkLinearizability<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
  options: CheckLinearizabilityOptions = {},
): LinearizabilityResult<S, I, O> {
  const timeoutMs = options.timeoutMs ?? Infinity;
  if (!(timeoutMs >= 0)) throw new RangeError(`Cannot check with a timeout of ${timeoutMs} ms`);
  for (const op of history) validateOperation(op);
  const now = options.now ?? Date.now;
  const deadlineMs = timeoutMs === Infinity ? Infinity : now() + timeoutMs;
  const budget = {
    expired: deadlineMs === Infinity ? () => false : () => now() > deadlineMs,
  };

  const parts = model.partition ? model.partition(history) : [history];
  if (model.partition) {
    let total = 0;
    for (const part of parts) total += part.length;
    if (total !== history.length) {
      throw new TypeError(
        `Cannot check a partitioned history: model.partition returned ${total} operations ` +
          `for a history of ${history.length}`,
      );
    }
  }
  // Small parts first: they are cheap, and a violation in one makes the rest moot.
  const order = parts.map((_, index) => index)
    .sort((a, b) => parts[a]!.length - parts[b]!.length);
  for (const index of order) {
    const part = parts[index]!;
    const outcome = checkPart(model, part, budget);
    if (outcome === "timeout") {
      return {
        result: "unknown",
        reason: `Timed out after ${timeoutMs} ms while checking part ${index} ` +
          `(${part.length} operations) of ${parts.length}`,
      };
    }
    if (outcome !== "ok") return { result: "illegal", explanation: explain(index, part, outcome) };
  }
  return { result: "ok" };
}

function validateOperation(op: Operation<unknown, unknown>): void {
  if (!Number.isFinite(op.call)) {
    throw new RangeError(`Cannot check an operation called at ${op.call}: times must be finite`);
  }
  if (op.return !== undefined && !(Number.isFinite(op.return) && op.return >= op.call)) {
    throw new RangeError(
      `Cannot check an operation that returns at ${op.return} but is called at ${op.call}`,
    );
  }
}

interface StuckAt<S> {
  linearized: number[];
  state: S;
  failedOp: number;
  pending: number[];
}

/**
 * The WGL search over one part. Entries (a call and a return per operation) sit in a
 * doubly linked list in time order; linearizing an operation unlinks both of its entries
 * (dancing links), backtracking relinks them. Reaching a return entry means its operation
 * had to be linearized before anything later, so the current prefix is a dead end.
 */
function checkPart<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  budget: { expired(): boolean },
): "ok" | "timeout" | StuckAt<S> {
  const n = ops.length;
  const known = ops.map((op) => op.return !== undefined);
  let remainingKnown = 0;
  for (const isKnown of known) if (isKnown) remainingKnown++;
  if (remainingKnown === 0) return "ok";

  // Entry 2i is the call of operation i, 2i+1 its return; HEAD is a sentinel.
  const entries = Array.from({ length: 2 * n }, (_, e) => e);
  const timeOf = (e: number) => {
    const op = ops[e >> 1]!;
    return (e & 1) === 0 ? op.call : op.return ?? Infinity;
  };
  // Calls before returns at equal times: such operations count as concurrent.
  entries.sort((a, b) => timeOf(a) - timeOf(b) || (a & 1) - (b & 1) || a - b);
  const HEAD = 2 * n;
  const next = new Int32Array(2 * n + 1);
  const prev = new Int32Array(2 * n + 1);
  let last = HEAD;
  for (const e of entries) {
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  next[last] = -1;
  const unlink = (e: number) => {
    next[prev[e]!] = next[e]!;
    if (next[e]! !== -1) prev[next[e]!] = prev[e]!;
  };
  const relink = (e: number) => {
    next[prev[e]!] = e;
    if (next[e]! !== -1) prev[next[e]!] = e;
  };

  const hashOf = stateHasher(model);
  const sameState = (a: S, aHash: string, b: S, bHash: string) =>
    aHash === bHash && (model.equal === undefined || model.equal(a, b));
  const linearized = new LinearizedSet(n);
  const seen = new Seen<S>(linearized.bits.length, model.equal);
  const stackOp = new Int32Array(n);
  const stackForced = new Uint8Array(n);
  const stackState: (S | undefined)[] = new Array(n);
  const stackHash: string[] = new Array(n);
  let depth = 0;
  let state = model.init();
  let stateHash = hashOf(state);
  let stuck: StuckAt<S> | undefined;
  let steps = 0;

  let entry = next[HEAD]!;
  for (;;) {
    if ((++steps & 0x3ff) === 0 && budget.expired()) return "timeout";
    let dead = entry === -1 || (entry & 1) === 1;
    if (dead && entry !== -1 && (stuck === undefined || depth > stuck.linearized.length)) {
      const pending: number[] = [];
      for (let e = next[HEAD]!; e !== entry; e = next[e]!) pending.push(e >> 1);
      stuck = {
        linearized: Array.from(stackOp.subarray(0, depth)),
        state,
        failedOp: entry >> 1,
        pending,
      };
    }

    if (!dead) {
      const op = entry >> 1;
      const operation = ops[op]!;
      const output = known[op] ? operation.output : undefined;
      const result = model.step(state, operation.input, output);
      entry = next[entry]!;
      if (!result.ok) continue;
      const newState = result.state;
      const newHash = hashOf(newState);
      const unchanged = sameState(state, stateHash, newState, newHash);
      // An unknown-outcome operation that leaves the state alone never needs placing here:
      // leaving it out is equivalent, and it stays available for later.
      if (unchanged && !known[op]) continue;
      // A read-only operation that fits now may as well go now: in any completion that
      // places it later, moving it here keeps every model step and real-time constraint
      // valid. So if placing it here fails, this whole node fails, and the search skips
      // the 2^k ways of interleaving k concurrent reads.
      const forced = unchanged && model.readOnly !== undefined &&
        model.readOnly(operation.input, output);
      linearized.add(op);
      if (seen.add(linearized, newHash, newState)) {
        stackOp[depth] = op;
        stackForced[depth] = forced ? 1 : 0;
        stackState[depth] = state;
        stackHash[depth] = stateHash;
        depth++;
        state = newState;
        stateHash = newHash;
        unlink(2 * op);
        unlink(2 * op + 1);
        if (known[op] && --remainingKnown === 0) return "ok";
        entry = next[HEAD]!;
        continue;
      }
      linearized.delete(op);
      if (!forced) continue;
      dead = true;
    }

    // Backtrack out of every node known to be dead: the current one, and the parents
    // whose only option was a forced read-only operation.
    for (;;) {
      if (depth === 0) return stuck!;
      depth--;
      const op = stackOp[depth]!;
      state = stackState[depth] as S;
      stateHash = stackHash[depth]!;
      stackState[depth] = undefined;
      linearized.delete(op);
      relink(2 * op + 1);
      relink(2 * op);
      if (known[op]) remainingKnown++;
      if (stackForced[depth] === 0) {
        entry = next[2 * op]!;
        break;
      }
    }
  }
}

/**
 * The set of linearized operations as a bitset, with an incrementally maintained 64-bit
 * Zobrist hash so that memo lookups cost O(1) until a candidate match is compared.
 */
class LinearizedSet {
  readonly bits: Uint32Array;
  #zobrist: Uint32Array;
  hi = 0;
  lo = 0;

  constructor(n: number) {
    this.bits = new Uint32Array(Math.ceil(n / 32));
    this.#zobrist = new Uint32Array(2 * n);
    // Fixed seed: the check is deterministic; the hash only has to spread.
    let seed = 0x9e3779b9;
    for (let i = 0; i < this.#zobrist.length; i++) {
      seed = (seed + 0x6d2b79f5) >>> 0;
      let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      this.#zobrist[i] = (t ^ (t >>> 14)) >>> 0;
    }
  }

  add(op: number): void {
    this.bits[op >> 5]! |= 1 << (op & 31);
    this.#toggle(op);
  }

  delete(op: number): void {
    this.bits[op >> 5]! &= ~(1 << (op & 31));
    this.#toggle(op);
  }

  #toggle(op: number): void {
    this.hi ^= this.#zobrist[2 * op]!;
    this.lo ^= this.#zobrist[2 * op + 1]!;
  }
}

/**
 * The memo of visited (linearized set, state) pairs: an open-addressing hash set over
 * typed arrays, because it grows to millions of entries on hard histories and a `Map`
 * of objects spends most of the search in hashing and garbage collection. A hit is
 * confirmed exactly (set bits, state hash, `equal`), so a collision only costs time.
 */
class Seen<S> {
  #equal: ((a: S, b: S) => boolean) | undefined;
  #words: number;
  #slots = new Int32Array(1024).fill(-1);
  #count = 0;
  #entryHash = new Int32Array(512);
  #arena: Uint32Array;
  #stateHashes: string[] = [];
  #states: S[] = [];

  constructor(words: number, equal: ((a: S, b: S) => boolean) | undefined) {
    this.#equal = equal;
    this.#words = words;
    this.#arena = new Uint32Array(512 * words);
  }

  /** @returns true when the pair is new (and now remembered) */
  add(set: LinearizedSet, stateHash: string, state: S): boolean {
    let h = Math.imul(set.hi ^ stringHash(stateHash), 0x9e3779b1) ^ set.lo;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
    const mask = this.#slots.length - 1;
    let slot = h & mask;
    for (let e = this.#slots[slot]!; e !== -1; e = this.#slots[slot]!) {
      if (
        this.#entryHash[e] === h && this.#stateHashes[e] === stateHash &&
        this.#sameBits(e, set.bits) &&
        (this.#equal === undefined || this.#equal(this.#states[e]!, state))
      ) {
        return false;
      }
      slot = (slot + 1) & mask;
    }
    const e = this.#count++;
    if (e === this.#entryHash.length) {
      this.#entryHash = grow(this.#entryHash, 2 * e);
      this.#arena = grow(this.#arena, 2 * e * this.#words);
    }
    this.#entryHash[e] = h;
    this.#arena.set(set.bits, e * this.#words);
    this.#stateHashes.push(stateHash);
    if (this.#equal !== undefined) this.#states.push(state);
    this.#slots[slot] = e;
    if (2 * this.#count > this.#slots.length) this.#rehash();
    return true;
  }

  #sameBits(e: number, bits: Uint32Array): boolean {
    const base = e * this.#words;
    for (let i = 0; i < bits.length; i++) if (this.#arena[base + i] !== bits[i]) return false;
    return true;
  }

  #rehash(): void {
    const slots = new Int32Array(2 * this.#slots.length).fill(-1);
    const mask = slots.length - 1;
    for (let e = 0; e < this.#count; e++) {
      let slot = this.#entryHash[e]! & mask;
      while (slots[slot] !== -1) slot = (slot + 1) & mask;
      slots[slot] = e;
    }
    this.#slots = slots;
  }
}

function grow<T extends Int32Array | Uint32Array>(array: T, length: number): T {
  const bigger = new (array.constructor as new (length: number) => T)(length);
  bigger.set(array);
  return bigger;
}

/** FNV-1a over UTF-16 code units. */
function stringHash(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

function stateHasher<S>(model: Model<S, unknown, unknown>): (state: S) => string {
  if (model.hash) return (state) => model.hash!(state);
  // With only `equal`, states are told apart by `equal` alone.
  if (model.equal) return () => "";
  return structuralHash;
}

/**
 * A canonical string for plain data, so that structurally equal states memoize together.
 * @throws {TypeError} for functions and symbols, which have no structure to compare
 */
function structuralHash(value: unknown): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
      return Object.is(value, -0) ? "-0" : String(value);
    case "bigint":
      return `${value}n`;
    case "boolean":
    case "undefined":
      return String(value);
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) return `[${value.map(structuralHash).join(",")}]`;
      if (value instanceof Map) {
        const items = [...value].map(([k, v]) => `${structuralHash(k)}:${structuralHash(v)}`);
        return `Map{${items.sort().join(",")}}`;
      }
      if (value instanceof Set) return `Set{${[...value].map(structuralHash).sort().join(",")}}`;
      if (value instanceof Date) return `Date(${value.getTime()})`;
      const items = Object.keys(value).sort().map((k) =>
        `${JSON.stringify(k)}:${structuralHash((value as Record<string, unknown>)[k])}`
      );
      return `{${items.join(",")}}`;
    }
    default:
      throw new TypeError(
        `Cannot hash a model state containing a ${typeof value}: give the model a hash()`,
      );
  }
}

function explain<S, I, O>(
  partitionIndex: number,
  partition: readonly Operation<I, O>[],
  stuck: StuckAt<S>,
): IllegalExplanation<S, I, O> {
  const linearized = stuck.linearized.map((i) => partition[i]!);
  const failedOp = partition[stuck.failedOp]!;
  const pending = stuck.pending.map((i) => partition[i]!);
  const others = pending.filter((op) => op !== failedOp);
  const lines = [
    `Not linearizable (part ${partitionIndex}, ${partition.length} operations): ` +
    `after linearizing ${linearized.length} operation(s), reaching state ` +
    `${describe(stuck.state)}, the completed operation`,
    `  ${describeOperation(failedOp)}`,
    others.length === 0
      ? `could not be placed next.`
      : `could not be placed next, nor could any other pending operation:`,
    ...others.map((op) => `  ${describeOperation(op)}`),
  ];
  if (linearized.length > 0) {
    lines.push(
      `Linearized so far:`,
      ...linearized.slice(-10).map((op) => `  ${describeOperation(op)}`),
    );
    if (linearized.length > 10) lines.push(`  (last 10 of ${linearized.length} shown)`);
  }
  return {
    partitionIndex,
    partition,
    linearized,
    state: stuck.state,
    failedOp,
    pending,
    message: lines.join("\n"),
  };
}

function describeOperation(op: Operation<unknown, unknown>): string {
  const result = op.return === undefined
    ? "(outcome unknown)"
    : `-> ${describe(op.output)}, returned at ${op.return}`;
  return `client ${op.clientId}: ${describe(op.input)} ${result}, called at ${op.call}`;
}

function describe(value: unknown): string {
  try {
    return JSON.stringify(
      value,
      (_, v) =>
        typeof v === "bigint"
          ? `${v}n`
          : v instanceof Map
          ? Object.fromEntries(v)
          : v instanceof Set
          ? [...v]
          : v,
    ) ?? String(value);
  } catch {
    return String(value);
  }
}

/** An input of {@linkcode kvModel}: one operation on one key. */
export type KvInput =
  | { readonly op: "get"; readonly key: string }
  | { readonly op: "put"; readonly key: string; readonly value: string }
  | { readonly op: "delete"; readonly key: string }
  | {
    readonly op: "cas";
    readonly key: string;
    /** The value the key must hold for the swap to happen; `null` means absent. */
    readonly expect: string | null;
    readonly value: string;
  };

/**
 * An output of {@linkcode kvModel}: `get` returns the value or `null` when absent; `cas`
 * returns whether it swapped; `put` and `delete` conventionally return `"ok"` (their
 * output is not checked).
 */
export type KvOutput = string | null | boolean;

/** A state of {@linkcode kvModel}: the value of each present key. */
export type KvState = ReadonlyMap<string, string>;

/**
 * A key-value store of string registers, partitioned per key. `get` must return the
 * latest value (`null` when absent), `put` sets, `delete` removes, `cas` sets `value` only
 * when the key holds `expect` (`null`: absent) and returns whether it did.
 * @example
 * ```ts
 * import { checkLinearizability, kvModel } from "@tsraft/core/testing";
 * const history = [
 *   { clientId: 1, input: { op: "cas", key: "k", expect: null, value: "1" } as const, call: 0, return: 2, output: true },
 *   { clientId: 2, input: { op: "cas", key: "k", expect: null, value: "2" } as const, call: 1, return: 3, output: true },
 * ];
 * // Both swaps from "absent" succeeded: a lost update.
 * if (checkLinearizability(kvModel, history).result !== "illegal") throw new Error("missed it");
 * ```
 */
export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => new Map(),
  step(state, input, output) {
    const current = state.get(input.key) ?? null;
    switch (input.op) {
      case "get":
        return output === undefined || output === current ? { ok: true, state } : { ok: false };
      case "put":
        return { ok: true, state: withKey(state, input.key, input.value) };
      case "delete":
        return { ok: true, state: withKey(state, input.key, null) };
      case "cas": {
        const swaps = current === input.expect;
        if (output !== undefined && output !== swaps) return { ok: false };
        return { ok: true, state: swaps ? withKey(state, input.key, input.value) : state };
      }
    }
  },
  readOnly: (input, output) => input.op === "get" || (input.op === "cas" && output === false),
  hash(state) {
    let hash = "";
    if (state.size <= 1) {
      for (const [key, value] of state) hash = JSON.stringify(key) + JSON.stringify(value);
      return hash;
    }
    const keys = [...state.keys()].sort();
    for (const key of keys) hash += JSON.stringify(key) + JSON.stringify(state.get(key));
    return hash;
  },
  partition(history) {
    const byKey = new Map<string, Operation<KvInput, KvOutput>[]>();
    for (const op of history) {
      const part = byKey.get(op.input.key);
      if (part) part.push(op);
      else byKey.set(op.input.key, [op]);
    }
    return [...byKey.values()];
  },
};

function withKey(state: KvState, key: string, value: string | null): KvState {
  if ((state.get(key) ?? null) === value) return state;
  const copy = new Map(state);
  if (value === null) copy.delete(key);
  else copy.set(key, value);
  return copy;
}

/** An input of {@linkcode registerModel}. */
export type RegisterInput =
  | { readonly op: "read" }
  | { readonly op: "write"; readonly value: number }
  | { readonly op: "cas"; readonly expect: number; readonly value: number };

/**
 * An output of {@linkcode registerModel}: `read` returns the value, `cas` whether it
 * swapped; the output of `write` is not checked.
 */
export type RegisterOutput = number | boolean | "ok";

/**
 * A single numeric register that starts at 0: `read` returns the latest value, `write`
 * sets it, `cas` sets `value` only when the register holds `expect`.
 * @example
 * ```ts
 * import { checkLinearizability, registerModel } from "@tsraft/core/testing";
 * // A write that timed out may have happened: a later read of 1 is fine.
 * const history = [
 *   { clientId: 1, input: { op: "write", value: 1 } as const, call: 0 },
 *   { clientId: 2, input: { op: "read" } as const, call: 5, return: 6, output: 1 },
 * ];
 * if (checkLinearizability(registerModel, history).result !== "ok") throw new Error("wrong");
 * ```
 */
export const registerModel: Model<number, RegisterInput, RegisterOutput> = {
  init: () => 0,
  step(state, input, output) {
    switch (input.op) {
      case "read":
        return output === undefined || output === state ? { ok: true, state } : { ok: false };
      case "write":
        return { ok: true, state: input.value };
      case "cas": {
        const swaps = state === input.expect;
        if (output !== undefined && output !== swaps) return { ok: false };
        return { ok: true, state: swaps ? input.value : state };
      }
    }
  },
  readOnly: (input, output) => input.op === "read" || (input.op === "cas" && output === false),
  hash: (state) => String(state),
};

/** Identifies an operation recorded by {@linkcode HistoryRecorder.invoke}. */
export type OperationHandle = number;

/** Options of {@linkcode HistoryRecorder}. */
export interface HistoryRecorderOptions {
  /**
   * The clock that stamps invocations and completions, e.g. `() => clock.now()` of the
   * simulator's clock. Ties count as concurrent.
   * @default a logical counter that increases at every event
   */
  now?: () => number;
}

interface RecordedOperation<I, O> {
  clientId: number | string;
  input: I;
  call: number;
  status: "pending" | "ok" | "unknown" | "failed";
  return?: number;
  output?: O;
}

/**
 * Records a concurrent history as clients run it, for {@linkcode checkLinearizability}.
 * Call `invoke` just before sending a request and exactly one of `ok` (the result came
 * back), `unknown` (timed out or the connection broke: it may have happened) or `fail`
 * (it definitely did not happen, e.g. the server rejected it before proposing it).
 * Operations still pending when `history()` is taken have unknown outcomes.
 * @example
 * ```ts
 * import { checkLinearizability, HistoryRecorder, kvModel } from "@tsraft/core/testing";
 * import type { KvInput, KvOutput } from "@tsraft/core/testing";
 * const recorder = new HistoryRecorder<KvInput, KvOutput>();
 * const put = recorder.invoke("c1", { op: "put", key: "x", value: "1" });
 * const get = recorder.invoke("c2", { op: "get", key: "x" });
 * recorder.ok(put, "ok");
 * recorder.ok(get, null); // concurrent with the put, so it may miss it
 * if (checkLinearizability(kvModel, recorder.history()).result !== "ok") throw new Error();
 * ```
 */
export class HistoryRecorder<I, O> {
  #now: () => number;
  #ops: RecordedOperation<I, O>[] = [];

  /**
   * Creates an empty recorder.
   * @param options the clock to stamp events with
   */
  constructor(options: HistoryRecorderOptions = {}) {
    let tick = 0;
    this.#now = options.now ?? (() => tick++);
  }

  /**
   * Records that `clientId` invoked `input` now.
   * @returns a handle to complete the operation with
   */
  invoke(clientId: number | string, input: I): OperationHandle {
    this.#ops.push({ clientId, input, call: this.#now(), status: "pending" });
    return this.#ops.length - 1;
  }

  /**
   * Records that the operation returned `output` now.
   * @throws {TypeError} when the handle is unknown or already completed
   */
  ok(handle: OperationHandle, output: O): void {
    const op = this.#pending(handle);
    op.status = "ok";
    op.return = this.#now();
    op.output = output;
  }

  /**
   * Records that the operation ended without a result: it may or may not take effect.
   * @throws {TypeError} when the handle is unknown or already completed
   */
  unknown(handle: OperationHandle): void {
    this.#pending(handle).status = "unknown";
  }

  /**
   * Records that the operation definitely did not take effect; it is left out of the
   * history.
   * @throws {TypeError} when the handle is unknown or already completed
   */
  fail(handle: OperationHandle): void {
    this.#pending(handle).status = "failed";
  }

  /** Number of operations invoked and not yet completed. */
  get pending(): number {
    return this.#ops.filter((op) => op.status === "pending").length;
  }

  /**
   * The history recorded so far, ready for {@linkcode checkLinearizability}.
   * @returns the operations in invocation order, without failed ones; pending operations
   *   have unknown outcomes
   */
  history(): Operation<I, O>[] {
    const history: Operation<I, O>[] = [];
    for (const op of this.#ops) {
      if (op.status === "failed") continue;
      const { clientId, input, call } = op;
      history.push(
        op.status === "ok"
          ? { clientId, input, call, return: op.return!, output: op.output as O }
          : { clientId, input, call },
      );
    }
    return history;
  }

  #pending(handle: OperationHandle): RecordedOperation<I, O> {
    const op = this.#ops[handle];
    if (op === undefined) throw new TypeError(`Cannot complete unknown operation ${handle}`);
    if (op.status !== "pending") {
      throw new TypeError(`Cannot complete operation ${handle}: it is already ${op.status}`);
    }
    return op;
  }
}

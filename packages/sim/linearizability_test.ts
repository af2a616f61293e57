import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  checkLinearizability,
  HistoryRecorder,
  type KvInput,
  kvModel,
  type KvOutput,
  type Model,
  type Operation,
  type RegisterInput,
  registerModel,
  type RegisterOutput,
} from "./linearizability.ts";
import { SeededRandom } from "@tsraft/core/testing";

type KvOp = Operation<KvInput, KvOutput>;
type RegOp = Operation<RegisterInput, RegisterOutput>;

/** A completed operation, or one with unknown outcome when `ret` is omitted. */
function op<I, O>(clientId: number, input: I, call: number, ret?: number, output?: O) {
  return ret === undefined
    ? { clientId, input, call }
    : { clientId, input, call, return: ret, output: output as O };
}
const get = (key: string) => ({ op: "get", key }) as const;
const put = (key: string, value: string) => ({ op: "put", key, value }) as const;
const del = (key: string) => ({ op: "delete", key }) as const;
const cas = (key: string, expect: string | null, value: string) =>
  ({ op: "cas", key, expect, value }) as const;
const read = { op: "read" } as const;
const write = (value: number) => ({ op: "write", value }) as const;
const rcas = (expect: number, value: number) => ({ op: "cas", expect, value }) as const;

/** The model without its read-only hint, so the plain search is cross-checked too. */
function withoutReadOnly<S, I, O>(model: Model<S, I, O>): Model<S, I, O> {
  const { readOnly: _, ...rest } = model;
  return rest;
}

function check<S, I, O>(model: Model<S, I, O>, history: Operation<I, O>[]) {
  return checkLinearizability(model, history).result;
}

/**
 * The definition, by exhaustion: some subset of the unknown-outcome operations plus all
 * completed ones, in some order that respects real time, is accepted by the model.
 */
function bruteForce<S, I, O>(model: Model<S, I, O>, history: Operation<I, O>[]): boolean {
  const known = history.filter((o) => o.return !== undefined);
  const unknown = history.filter((o) => o.return === undefined);
  for (let mask = 0; mask < 1 << unknown.length; mask++) {
    const chosen = [...known, ...unknown.filter((_, i) => (mask >> i) & 1)];
    for (const order of permutations(chosen)) {
      if (respectsRealTime(order) && accepts(model, order)) return true;
    }
  }
  return false;
}

function* permutations<T>(items: T[]): Generator<T[]> {
  if (items.length <= 1) {
    yield items;
    return;
  }
  for (let i = 0; i < items.length; i++) {
    const rest = [...items.slice(0, i), ...items.slice(i + 1)];
    for (const tail of permutations(rest)) yield [items[i]!, ...tail];
  }
}

function respectsRealTime(order: Operation<unknown, unknown>[]): boolean {
  for (let i = 0; i < order.length; i++) {
    for (let j = i + 1; j < order.length; j++) {
      const later = order[j]!;
      if (later.return !== undefined && later.return < order[i]!.call) return false;
    }
  }
  return true;
}

function accepts<S, I, O>(model: Model<S, I, O>, order: Operation<I, O>[]): boolean {
  let state = model.init();
  for (const o of order) {
    const result = model.step(state, o.input, o.return === undefined ? undefined : o.output);
    if (!result.ok) return false;
    state = result.state;
  }
  return true;
}

interface GenerateOptions {
  ops: number;
  clients: number;
  keys: number;
  values?: number;
  unknownChance?: number;
}

/**
 * A concurrent history that is linearizable by construction: every operation gets a
 * linearization point inside its interval and the outputs come from a real sequential
 * store applied in the order of those points. Unknown-outcome operations take effect at a
 * random later point, or not at all.
 */
function generateKvHistory(random: SeededRandom, options: GenerateOptions): KvOp[] {
  const { ops, clients, keys, values = 4, unknownChance = 0 } = options;
  const freeAt = new Array<number>(clients).fill(0);
  const planned: { input: KvInput; clientId: number; call: number; at: number; ret?: number }[] =
    [];
  for (let i = 0; i < ops; i++) {
    const clientId = random.int(clients);
    const call = freeAt[clientId]! + random.int(3);
    const key = `k${random.int(keys)}`;
    const value = `v${random.int(values)}`;
    const kind = random.int(4);
    const input: KvInput = kind === 0
      ? get(key)
      : kind === 1
      ? put(key, value)
      : kind === 2
      ? del(key)
      : cas(key, random.chance(0.3) ? null : `v${random.int(values)}`, value);
    if (random.chance(unknownChance)) {
      // Timed out: it lands much later, or never.
      const at = random.chance(0.5) ? call + random.int(30) : Infinity;
      planned.push({ input, clientId, call, at });
      freeAt[clientId] = call + 5;
    } else {
      const at = call + random.int(4);
      const ret = at + random.int(4);
      planned.push({ input, clientId, call, at, ret });
      freeAt[clientId] = ret + 1;
    }
  }
  const store = new Map<string, string>();
  const outputs = new Map<object, KvOutput>();
  for (const p of [...planned].sort((a, b) => a.at - b.at)) {
    if (p.at === Infinity) break;
    outputs.set(p, applyKv(store, p.input));
  }
  return planned.map((p) =>
    p.ret === undefined ? { clientId: p.clientId, input: p.input, call: p.call } : {
      clientId: p.clientId,
      input: p.input,
      call: p.call,
      return: p.ret,
      output: outputs.get(p)!,
    }
  );
}

function applyKv(store: Map<string, string>, input: KvInput): KvOutput {
  const current = store.get(input.key) ?? null;
  switch (input.op) {
    case "get":
      return current;
    case "put":
      store.set(input.key, input.value);
      return "ok";
    case "delete":
      store.delete(input.key);
      return "ok";
    case "cas":
      if (current !== input.expect) return false;
      store.set(input.key, input.value);
      return true;
  }
}

/** Replaces the output of the `index`th checkable (get or cas) completed op. */
function mutate(random: SeededRandom, history: KvOp[]): KvOp[] | undefined {
  const candidates = history.map((o, i) => [o, i] as const).filter(([o]) =>
    o.return !== undefined && (o.input.op === "get" || o.input.op === "cas")
  );
  if (candidates.length === 0) return undefined;
  const [target, index] = candidates[random.int(candidates.length)]!;
  let output: KvOutput;
  if (target.input.op === "cas") output = !target.output;
  else {
    const choices = [null, "v0", "v1", "v2", "v3", "never"].filter((v) => v !== target.output);
    output = choices[random.int(choices.length)]!;
  }
  const copy = [...history];
  copy[index] = { ...target, output };
  return copy;
}

describe("checkLinearizability() on linearizable histories", () => {
  test("accepts an empty history and a sequential one", () => {
    assert.equal(check(kvModel, []), "ok");
    assert.equal(
      check(kvModel, [
        op(1, put("x", "a"), 0, 1, "ok"),
        op(1, get("x"), 2, 3, "a"),
        op(2, cas("x", "a", "b"), 4, 5, true),
        op(2, cas("x", "a", "c"), 6, 7, false),
        op(1, del("x"), 8, 9, "ok"),
        op(1, get("x"), 10, 11, null),
      ]),
      "ok",
    );
  });

  test("accepts overlapping writes and reads that see the write in flight", () => {
    const history: RegOp[] = [
      op(1, write(1), 0, 10, "ok"),
      op(2, write(2), 2, 12, "ok"),
      op(3, read, 3, 4, 0),
      op(4, read, 5, 6, 2),
      op(3, read, 7, 8, 1),
      op(4, read, 13, 14, 1),
    ];
    assert.equal(check(registerModel, history), "ok");
  });

  test("accepts reads that observe either of two concurrent writes", () => {
    const writes: RegOp[] = [op(1, write(1), 0, 10, "ok"), op(2, write(2), 0, 10, "ok")];
    assert.equal(check(registerModel, [...writes, op(3, read, 11, 12, 1)]), "ok");
    assert.equal(check(registerModel, [...writes, op(3, read, 11, 12, 2)]), "ok");
    // Two readers during the writes may disagree, as long as each order is possible.
    assert.equal(
      check(registerModel, [...writes, op(3, read, 1, 2, 1), op(4, read, 3, 4, 2)]),
      "ok",
    );
  });

  test("accepts a chain of concurrent CAS operations in the one order the model allows", () => {
    const history: RegOp[] = [
      op(3, rcas(2, 3), 0, 10, true),
      op(1, rcas(0, 1), 1, 10, true),
      op(2, rcas(1, 2), 2, 10, true),
      op(4, rcas(0, 9), 3, 10, false),
      op(5, read, 11, 12, 3),
    ];
    assert.equal(check(registerModel, history), "ok");
  });

  test("treats operations that touch at one instant as concurrent", () => {
    // A coarse clock cannot order a return and a call stamped with the same tick.
    const history: RegOp[] = [op(1, read, 5, 6, 1), op(2, write(1), 6, 7, "ok")];
    assert.equal(check(registerModel, history), "ok");
    assert.equal(
      check(registerModel, [op(1, read, 5, 6, 1), op(2, write(1), 7, 8, "ok")]),
      "illegal",
    );
  });
});

describe("checkLinearizability() on non-linearizable histories", () => {
  test("rejects a stale read and explains where it got stuck", () => {
    const history: KvOp[] = [
      op(1, put("x", "a"), 0, 1, "ok"),
      op(1, put("x", "b"), 2, 3, "ok"),
      op(2, get("x"), 4, 5, "a"),
    ];
    const verdict = checkLinearizability(kvModel, history);
    assert.equal(verdict.result, "illegal");
    assert.ok(verdict.result === "illegal");
    const { explanation } = verdict;
    assert.equal(explanation.failedOp, history[2]);
    assert.deepEqual(explanation.linearized, [history[0], history[1]]);
    assert.deepEqual([...explanation.state], [["x", "b"]]);
    assert.deepEqual(explanation.pending, [history[2]]);
    assert.match(explanation.message, /client 2: \{"op":"get","key":"x"\} -> "a"/);
  });

  test("rejects a lost update: two CAS from the same expected value both succeed", () => {
    const history: KvOp[] = [
      op(1, put("x", "0"), 0, 1, "ok"),
      op(1, cas("x", "0", "1"), 2, 6, true),
      op(2, cas("x", "0", "2"), 3, 7, true),
    ];
    assert.equal(check(kvModel, history), "illegal");
    assert.equal(
      check(registerModel, [op(1, rcas(0, 1), 0, 5, true), op(2, rcas(0, 2), 1, 4, true)]),
      "illegal",
    );
  });

  test("rejects a read of a value that was never written", () => {
    const history: KvOp[] = [op(1, put("x", "a"), 0, 10, "ok"), op(2, get("x"), 1, 9, "z")];
    assert.equal(check(kvModel, history), "illegal");
  });

  test("rejects a value going back in time across two sequential reads", () => {
    const history: RegOp[] = [
      op(1, write(1), 0, 1, "ok"),
      op(1, write(2), 2, 20, "ok"),
      op(2, read, 3, 4, 2),
      op(2, read, 5, 6, 1),
    ];
    assert.equal(check(registerModel, history), "illegal");
    // After two concurrent writes completed, readers must agree on the winner.
    assert.equal(
      check(registerModel, [
        op(1, write(1), 0, 10, "ok"),
        op(2, write(2), 0, 10, "ok"),
        op(3, read, 11, 12, 1),
        op(3, read, 13, 14, 2),
      ]),
      "illegal",
    );
  });

  test("reports the failing part of a partitioned history", () => {
    const history: KvOp[] = [
      op(1, put("a", "1"), 0, 1, "ok"),
      op(1, put("b", "1"), 2, 3, "ok"),
      op(2, get("a"), 4, 5, "1"),
      op(2, get("b"), 6, 7, null),
    ];
    const verdict = checkLinearizability(kvModel, history);
    assert.ok(verdict.result === "illegal");
    assert.equal(verdict.explanation.partitionIndex, 1);
    assert.deepEqual(verdict.explanation.partition, [history[1], history[3]]);
    assert.equal(verdict.explanation.failedOp, history[3]);
  });
});

describe("checkLinearizability() with unknown outcomes", () => {
  test("lets a timed-out write take effect, even long after it was invoked", () => {
    assert.equal(
      check(registerModel, [op(1, write(1), 0), op(2, read, 50, 51, 1)]),
      "ok",
    );
    // It lands after a later completed write.
    assert.equal(
      check(registerModel, [
        op(1, write(1), 0),
        op(2, write(2), 5, 6, "ok"),
        op(2, read, 7, 8, 2),
        op(2, read, 9, 10, 1),
      ]),
      "ok",
    );
  });

  test("lets a timed-out operation never take effect", () => {
    assert.equal(
      check(registerModel, [op(1, write(1), 0), op(2, read, 50, 51, 0)]),
      "ok",
    );
    assert.equal(
      check(kvModel, [op(1, cas("x", null, "a"), 0), op(2, get("x"), 5, 6, null)]),
      "ok",
    );
  });

  test("lets an unknown CAS take effect between two reads", () => {
    const history: RegOp[] = [
      op(1, rcas(0, 1), 0),
      op(2, read, 1, 2, 0),
      op(2, read, 3, 4, 1),
    ];
    assert.equal(check(registerModel, history), "ok");
  });

  test("still rejects effects before the invocation, or twice", () => {
    assert.equal(
      check(registerModel, [op(2, read, 0, 1, 1), op(1, write(1), 5)]),
      "illegal",
    );
    assert.equal(
      check(registerModel, [
        op(1, write(1), 0),
        op(2, write(2), 1, 2, "ok"),
        op(3, read, 3, 4, 1),
        op(3, read, 5, 6, 2),
        op(3, read, 7, 8, 1),
      ]),
      "illegal",
    );
  });

  test("accepts a history of only unknown outcomes", () => {
    assert.equal(check(registerModel, [op(1, write(1), 0), op(2, read, 1)]), "ok");
  });
});

describe("checkLinearizability() at scale", () => {
  test("checks thousands of operations over 50 keys by partitioning per key", () => {
    const random = new SeededRandom(42);
    const history = generateKvHistory(random, {
      ops: 5000,
      clients: 10,
      keys: 50,
      unknownChance: 0.02,
    });
    assert.equal(check(kvModel, history), "ok");
    // A stale read in the middle: the key was overwritten by a completed put before the
    // read began, and no other write of that key is concurrent with the read.
    const last = Math.max(...history.map((o) => o.return ?? o.call));
    const stale: KvOp[] = [
      ...history,
      op(100, put("fresh", "old"), last + 1, last + 2, "ok"),
      op(100, put("fresh", "new"), last + 3, last + 4, "ok"),
      op(101, get("fresh"), last + 5, last + 6, "old"),
    ];
    const verdict = checkLinearizability(kvModel, stale);
    assert.ok(verdict.result === "illegal");
    assert.equal(verdict.explanation.failedOp, stale.at(-1));
  });

  test("checks a read-heavy single key with 10 concurrent clients", () => {
    const random = new SeededRandom(7);
    const history = generateKvHistory(random, { ops: 1000, clients: 10, keys: 1 });
    assert.equal(check(kvModel, history), "ok");
    assert.equal(check(withoutReadOnly(kvModel), history), "ok");
  });

  test("returns unknown when the time budget runs out", () => {
    const history: RegOp[] = [];
    for (let i = 0; i < 3000; i++) history.push(op(1, write(i), 2 * i, 2 * i + 1, "ok"));
    let fakeNowMs = 0;
    const verdict = checkLinearizability(registerModel, history, {
      timeoutMs: 100,
      now: () => fakeNowMs += 60,
    });
    assert.equal(verdict.result, "unknown");
    assert.equal(checkLinearizability(registerModel, history, { timeoutMs: 60_000 }).result, "ok");
  });
});

describe("checkLinearizability() against a brute-force checker", () => {
  test("accepts random histories generated from a sequential execution", () => {
    for (let seed = 1; seed <= 200; seed++) {
      const random = new SeededRandom(seed);
      const history = generateKvHistory(random, {
        ops: 4 + random.int(40),
        clients: 1 + random.int(5),
        keys: 1 + random.int(3),
        unknownChance: 0.1,
      });
      const verdict = checkLinearizability(kvModel, history);
      assert.equal(verdict.result, "ok", `seed ${seed}: ${JSON.stringify(verdict)}`);
    }
  });

  test("agrees with brute force on tiny histories with a mutated output", () => {
    let illegal = 0;
    for (let seed = 1; seed <= 400; seed++) {
      const random = new SeededRandom(seed);
      const history = generateKvHistory(random, {
        ops: 2 + random.int(5),
        clients: 1 + random.int(4),
        keys: 1 + random.int(2),
        values: 2,
        unknownChance: 0.15,
      });
      const mutated = mutate(random, history);
      if (mutated === undefined) continue;
      const expected = bruteForce(kvModel, mutated) ? "ok" : "illegal";
      assert.equal(check(kvModel, mutated), expected, `seed ${seed}: ${JSON.stringify(mutated)}`);
      assert.equal(check(withoutReadOnly(kvModel), mutated), expected, `seed ${seed}`);
      if (expected === "illegal") illegal++;
    }
    // The mutations must exercise the illegal branch, not only the easy one.
    assert.ok(illegal > 100, `only ${illegal} illegal histories`);
  });

  test("agrees with brute force on tiny random register histories", () => {
    let ok = 0, illegal = 0;
    for (let seed = 1; seed <= 600; seed++) {
      const random = new SeededRandom(seed);
      const history: RegOp[] = [];
      const count = 1 + random.int(6);
      for (let i = 0; i < count; i++) {
        const call = random.int(10);
        const ret = random.chance(0.15) ? undefined : call + random.int(6);
        const kind = random.int(3);
        const input: RegisterInput = kind === 0
          ? read
          : kind === 1
          ? write(random.int(3))
          : rcas(random.int(3), random.int(3));
        const output: RegisterOutput = kind === 1
          ? "ok"
          : kind === 0
          ? random.int(3)
          : random.chance(0.5);
        history.push(op(i, input, call, ret, output));
      }
      const expected = bruteForce(registerModel, history) ? "ok" : "illegal";
      assert.equal(check(registerModel, history), expected, `seed ${seed}`);
      assert.equal(check(withoutReadOnly(registerModel), history), expected, `seed ${seed}`);
      if (expected === "ok") ok++;
      else illegal++;
    }
    assert.ok(ok > 100 && illegal > 100, `${ok} ok, ${illegal} illegal`);
  });
});

describe("checkLinearizability() with user models", () => {
  // A set of numbers, with and without hash/equal, to exercise each memo strategy.
  type SetInput = { add: number } | { has: number };
  const setModel: Model<number[], SetInput, boolean> = {
    init: () => [],
    step(state, input, output) {
      if ("add" in input) {
        return { ok: true, state: state.includes(input.add) ? state : [...state, input.add] };
      }
      const has = state.includes(input.has);
      return { ok: output === undefined || output === has, state };
    },
  };
  const history: Operation<SetInput, boolean>[] = [
    op(1, { add: 1 }, 0, 10, true),
    op(2, { add: 2 }, 0, 10, true),
    op(3, { has: 1 }, 1, 2, true),
    op(4, { has: 2 }, 1, 2, true),
    op(5, { has: 1 }, 3, 4, false),
  ];

  test("memoizes structurally when the model has neither hash nor equal", () => {
    assert.equal(check(setModel, history), "illegal");
    assert.equal(check(setModel, history.slice(0, 4)), "ok");
  });

  test("uses equal alone, or hash with equal, when given", () => {
    const sameSet = (a: number[], b: number[]) =>
      a.length === b.length && a.every((x) => b.includes(x));
    const byEqual = { ...setModel, equal: sameSet };
    const byBoth = { ...byEqual, hash: (s: number[]) => String(s.length) };
    for (const model of [byEqual, byBoth]) {
      assert.equal(check(model, history), "illegal");
      assert.equal(check(model, history.slice(0, 4)), "ok");
    }
  });

  test("rejects malformed histories and partitions", () => {
    assert.throws(() => check(registerModel, [op(1, read, 5, 4, 0)]), RangeError);
    assert.throws(() => check(registerModel, [op(1, read, NaN, 4, 0)]), RangeError);
    assert.throws(
      () => checkLinearizability(registerModel, [], { timeoutMs: -1 }),
      RangeError,
    );
    const lossy = { ...registerModel, partition: () => [] };
    assert.throws(() => check(lossy, [op(1, read, 0, 1, 0)]), TypeError);
  });
});

describe("HistoryRecorder", () => {
  test("stamps events with a logical clock and keeps invocation order", () => {
    const recorder = new HistoryRecorder<KvInput, KvOutput>();
    const a = recorder.invoke(1, put("x", "1"));
    const b = recorder.invoke(2, get("x"));
    const c = recorder.invoke(3, put("x", "2"));
    const d = recorder.invoke(4, del("x"));
    assert.equal(recorder.pending, 4);
    recorder.ok(b, "1");
    recorder.ok(a, "ok");
    recorder.unknown(c);
    recorder.fail(d);
    recorder.invoke(5, get("x"));
    assert.equal(recorder.pending, 1);
    assert.deepEqual(recorder.history(), [
      { clientId: 1, input: put("x", "1"), call: 0, return: 5, output: "ok" },
      { clientId: 2, input: get("x"), call: 1, return: 4, output: "1" },
      { clientId: 3, input: put("x", "2"), call: 2 },
      { clientId: 5, input: get("x"), call: 6 },
    ]);
    assert.equal(checkLinearizability(kvModel, recorder.history()).result, "ok");
  });

  test("uses an injected clock", () => {
    let nowMs = 100;
    const recorder = new HistoryRecorder<RegisterInput, RegisterOutput>({ now: () => nowMs });
    const h = recorder.invoke("c", write(1));
    nowMs = 130;
    recorder.ok(h, "ok");
    assert.deepEqual(recorder.history(), [
      { clientId: "c", input: write(1), call: 100, return: 130, output: "ok" },
    ]);
  });

  test("refuses to complete an operation twice or one it never saw", () => {
    const recorder = new HistoryRecorder<RegisterInput, RegisterOutput>();
    const h = recorder.invoke(1, read);
    recorder.ok(h, 0);
    assert.throws(() => recorder.ok(h, 0), TypeError);
    assert.throws(() => recorder.unknown(h), TypeError);
    assert.throws(() => recorder.fail(7), TypeError);
  });
});

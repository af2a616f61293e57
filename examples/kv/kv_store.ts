import { type Command, CommandRegistry, type Context, type StateMachine } from "@tsraft/core";

/** What a client session remembers: its latest sequence number and that request's result. */
export interface Session {
  /** Highest sequence number applied for this client. */
  seq: number;
  /** Result of that request, returned again when it is retried. */
  result: KvResult;
}

/** Result of a write applied to a {@link KvStore}. */
export interface KvResult {
  /** Whether the write took effect (false only for a failed compare-and-set). */
  ok: boolean;
  /** Value of the key before the write (`null` when absent). */
  previous: string | null;
  /** Set when the same client id and sequence number was already applied. */
  duplicate?: true;
  /** Set for a retry older than the client's latest request; its result is gone. */
  stale?: true;
}

/** Identifies a client request so a retry is applied once (Raft thesis §6.3). */
export interface ClientRequest {
  /** Client id, `""` for requests that are not deduplicated. */
  client: string;
  /** Client's sequence number, increasing per client; 0 when `client` is `""`. */
  seq: number;
}

const SNAPSHOT_VERSION = 1;

/**
 * The replicated key-value map, plus the table of client sessions that makes retried
 * requests idempotent. Both are in every snapshot, so a node restored from a snapshot
 * rejects the same duplicates as one that replayed the whole log.
 * @example
 * ```ts
 * import { KvStore } from "./kv_store.ts";
 * const store = new KvStore();
 * const copy = new KvStore();
 * copy.recovery(store.save());
 * ```
 */
export class KvStore implements StateMachine {
  readonly #data = new Map<string, string>();
  readonly #sessions = new Map<string, Session>();

  /** Number of keys. */
  get size(): number {
    return this.#data.size;
  }

  /** Number of client sessions remembered. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Local value of a key; linearizable only after `server.readIndex()`. @param key the key @returns the value or undefined */
  get(key: string): string | undefined {
    return this.#data.get(key);
  }

  /**
   * Applies one write exactly once per client request.
   * @param request who sent it (client id and sequence number)
   * @param write the write, run when the request is new
   * @returns the write's result, or the remembered result of a duplicate
   */
  applyOnce(request: ClientRequest, write: () => KvResult): KvResult {
    if (request.client === "") return write();
    const session = this.#sessions.get(request.client);
    if (session !== undefined && request.seq <= session.seq) {
      if (request.seq === session.seq) return { ...session.result, duplicate: true };
      return { ok: false, previous: null, duplicate: true, stale: true };
    }
    const result = write();
    this.#sessions.set(request.client, { seq: request.seq, result });
    return result;
  }

  /** Sets a key. @param key the key @param value the value @returns the result */
  put(key: string, value: string): KvResult {
    const previous = this.#data.get(key) ?? null;
    this.#data.set(key, value);
    return { ok: true, previous };
  }

  /** Deletes a key. @param key the key @returns the result (`ok` even when absent) */
  delete(key: string): KvResult {
    const previous = this.#data.get(key) ?? null;
    this.#data.delete(key);
    return { ok: true, previous };
  }

  /**
   * Sets a key only when its current value is `expect` (`null`: only when absent).
   * @param key the key @param expect the expected value @param value the new value
   * @returns the result; `ok` false when the value differed
   */
  cas(key: string, expect: string | null, value: string): KvResult {
    const previous = this.#data.get(key) ?? null;
    if (previous !== expect) return { ok: false, previous };
    this.#data.set(key, value);
    return { ok: true, previous };
  }

  /** @returns the map and the session table as JSON bytes */
  save(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify({
      version: SNAPSHOT_VERSION,
      data: [...this.#data],
      sessions: [...this.#sessions],
    }));
  }

  /** Replaces the state with {@link save}'s bytes. @param bytes a snapshot's state */
  recovery(bytes: Uint8Array): void {
    const parsed = JSON.parse(new TextDecoder().decode(bytes)) as {
      version: number;
      data: [string, string][];
      sessions: [string, Session][];
    };
    if (parsed.version !== SNAPSHOT_VERSION) {
      throw new TypeError(`Cannot read KV snapshot version ${parsed.version}`);
    }
    this.#data.clear();
    this.#sessions.clear();
    for (const [key, value] of parsed.data) this.#data.set(key, value);
    for (const [client, session] of parsed.sessions) this.#sessions.set(client, session);
  }
}

function storeOf(context: Context): KvStore {
  const server = context.server as { stateMachine?: unknown };
  if (!(server.stateMachine instanceof KvStore)) {
    throw new TypeError("KV commands need a server whose stateMachine is a KvStore");
  }
  return server.stateMachine;
}

function parseRequest(json: Record<string, unknown>): ClientRequest {
  const client = json.client ?? "";
  const seq = json.seq ?? 0;
  if (typeof client !== "string" || !Number.isSafeInteger(seq) || (seq as number) < 0) {
    throw new TypeError("A KV command needs a string client and a non-negative integer seq");
  }
  return { client, seq: seq as number };
}

function stringField(json: Record<string, unknown>, name: string): string {
  const value = json[name];
  if (typeof value !== "string") throw new TypeError(`A KV command needs a string ${name}`);
  return value;
}

/** Sets `key` to `value`. @example `await server.do(new PutCommand("x", "1"))` */
export class PutCommand implements Command<KvResult> {
  /** Name in the log. */
  static readonly commandName = "kv:put";
  /** Name in the log. */
  readonly commandName = PutCommand.commandName;
  /** @param key the key @param value the value @param client client id, "" for none @param seq its sequence number */
  constructor(
    readonly key: string,
    readonly value: string,
    readonly client = "",
    readonly seq = 0,
  ) {}
  /** @param json the stored JSON @returns the command */
  static fromJSON(json: unknown): PutCommand {
    const record = json as Record<string, unknown>;
    const { client, seq } = parseRequest(record);
    return new PutCommand(stringField(record, "key"), stringField(record, "value"), client, seq);
  }
  /** @param context apply context @returns the result */
  apply(context: Context): KvResult {
    const store = storeOf(context);
    return store.applyOnce(this, () => store.put(this.key, this.value));
  }
}

/** Deletes `key`. */
export class DeleteCommand implements Command<KvResult> {
  /** Name in the log. */
  static readonly commandName = "kv:delete";
  /** Name in the log. */
  readonly commandName = DeleteCommand.commandName;
  /** @param key the key @param client client id, "" for none @param seq its sequence number */
  constructor(readonly key: string, readonly client = "", readonly seq = 0) {}
  /** @param json the stored JSON @returns the command */
  static fromJSON(json: unknown): DeleteCommand {
    const record = json as Record<string, unknown>;
    const { client, seq } = parseRequest(record);
    return new DeleteCommand(stringField(record, "key"), client, seq);
  }
  /** @param context apply context @returns the result */
  apply(context: Context): KvResult {
    const store = storeOf(context);
    return store.applyOnce(this, () => store.delete(this.key));
  }
}

/** Sets `key` to `value` when it currently holds `expect` (`null`: absent). */
export class CasCommand implements Command<KvResult> {
  /** Name in the log. */
  static readonly commandName = "kv:cas";
  /** Name in the log. */
  readonly commandName = CasCommand.commandName;
  /**
   * @param key the key @param expect expected current value @param value new value
   * @param client client id, "" for none @param seq its sequence number
   */
  constructor(
    readonly key: string,
    readonly expect: string | null,
    readonly value: string,
    readonly client = "",
    readonly seq = 0,
  ) {}
  /** @param json the stored JSON @returns the command */
  static fromJSON(json: unknown): CasCommand {
    const record = json as Record<string, unknown>;
    const { client, seq } = parseRequest(record);
    const expect = record.expect;
    if (expect !== null && typeof expect !== "string") {
      throw new TypeError("kv:cas needs expect to be a string or null");
    }
    return new CasCommand(
      stringField(record, "key"),
      expect,
      stringField(record, "value"),
      client,
      seq,
    );
  }
  /** @param context apply context @returns the result */
  apply(context: Context): KvResult {
    const store = storeOf(context);
    return store.applyOnce(this, () => store.cas(this.key, this.expect, this.value));
  }
}

/**
 * One write of a {@link BatchCommand}, as stored in the log (a JSON array, compact):
 * `["put", key, value, client, seq]`, `["delete", key, client, seq]` or
 * `["cas", key, expect, value, client, seq]`.
 */
export type KvOp =
  | readonly ["put", string, string, string, number]
  | readonly ["delete", string, string, number]
  | readonly ["cas", string, string | null, string, string, number];

/**
 * Applies one write to a store, exactly once per client request.
 * @param store the state machine
 * @param op the write
 * @returns its result
 */
export function applyOp(store: KvStore, op: KvOp): KvResult {
  switch (op[0]) {
    case "put":
      return store.applyOnce({ client: op[3], seq: op[4] }, () => store.put(op[1], op[2]));
    case "delete":
      return store.applyOnce({ client: op[2], seq: op[3] }, () => store.delete(op[1]));
    case "cas":
      return store.applyOnce(
        { client: op[4], seq: op[5] },
        () => store.cas(op[1], op[2], op[3]),
      );
  }
}

function isRequest(client: unknown, seq: unknown): boolean {
  return typeof client === "string" && Number.isSafeInteger(seq) && (seq as number) >= 0;
}

/**
 * Whether a value is a well-formed {@link KvOp}.
 * @param value anything (e.g. parsed JSON)
 * @returns true when it is a KvOp
 */
export function isKvOp(value: unknown): value is KvOp {
  if (!Array.isArray(value) || typeof value[1] !== "string") return false;
  switch (value[0]) {
    case "put":
      return value.length === 5 && typeof value[2] === "string" && isRequest(value[3], value[4]);
    case "delete":
      return value.length === 4 && isRequest(value[2], value[3]);
    case "cas":
      return value.length === 6 && (value[2] === null || typeof value[2] === "string") &&
        typeof value[3] === "string" && isRequest(value[4], value[5]);
    default:
      return false;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Several clients' writes in one log entry: the service groups the requests that arrive
 * while earlier entries are being replicated, so one entry, one AppendEntries and one
 * fsync carry many of them. Each write keeps its own exactly-once session check, and
 * `apply` returns one result per write, in order.
 */
export class BatchCommand implements Command<KvResult[]> {
  /** Name in the log. */
  static readonly commandName = "kv:batch";
  /** Name in the log. */
  readonly commandName = BatchCommand.commandName;
  /** @param ops the writes, applied in this order */
  constructor(readonly ops: readonly KvOp[]) {}
  /** @returns the writes as a JSON array */
  encode(): Uint8Array {
    return encoder.encode(JSON.stringify(this.ops));
  }
  /**
   * @param data bytes from {@link encode}
   * @returns the command
   * @throws TypeError when the bytes are not a list of writes
   */
  static decode(data: Uint8Array): BatchCommand {
    const ops = JSON.parse(decoder.decode(data)) as unknown;
    if (!Array.isArray(ops) || !ops.every(isKvOp)) {
      throw new TypeError("kv:batch needs a JSON array of writes");
    }
    return new BatchCommand(ops);
  }
  /** @param context apply context @returns one result per write */
  apply(context: Context): KvResult[] {
    const store = storeOf(context);
    return this.ops.map((op) => applyOp(store, op));
  }
}

/**
 * A command registry holding the KV commands (and the built-in ones).
 * @returns a new registry
 */
export function kvRegistry(): CommandRegistry {
  const registry = new CommandRegistry();
  registry.register(PutCommand);
  registry.register(DeleteCommand);
  registry.register(CasCommand);
  registry.register(BatchCommand);
  return registry;
}

/**
 * UTF-8 length of a string without encoding it.
 * @param text the string
 * @returns its length in UTF-8 bytes (a lone surrogate counts 3, as U+FFFD)
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) bytes += 1;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 2; // 4 bytes for the pair of 2 UTF-16 units
        i++;
      } else bytes += 2;
    } else bytes += 2;
  }
  return bytes;
}

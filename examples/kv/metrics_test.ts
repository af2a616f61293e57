import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type KvNode, startKvNode } from "./kv_node.ts";
import { LOG_TAIL_ENTRIES, type NodeStats, prometheusText } from "./metrics.ts";
import { freePorts, waitFor } from "./node_process.ts";

/** One sample of a parsed exposition. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A parsed exposition: samples, and each family's HELP and TYPE. */
interface Parsed {
  samples: Sample[];
  types: Map<string, string>;
  helps: Map<string, string>;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/gy;

/** Parses the Prometheus text format strictly enough to catch malformed lines. */
function parse(text: string): Parsed {
  assert.ok(text.endsWith("\n"), "the exposition ends with a newline");
  const parsed: Parsed = { samples: [], types: new Map(), helps: new Map() };
  for (const line of text.slice(0, -1).split("\n")) {
    const meta = /^# (HELP|TYPE) (\S+) (.+)$/.exec(line);
    if (meta !== null) {
      const map = meta[1] === "HELP" ? parsed.helps : parsed.types;
      assert.ok(!map.has(meta[2]!), `one ${meta[1]} for ${meta[2]}`);
      map.set(meta[2]!, meta[3]!);
      continue;
    }
    const match = SAMPLE.exec(line);
    assert.ok(match, `malformed line: ${line}`);
    const labels: Record<string, string> = {};
    if (match[2] !== undefined) {
      LABEL.lastIndex = 0;
      let consumed = 0;
      for (let label = LABEL.exec(match[2]); label !== null; label = LABEL.exec(match[2])) {
        labels[label[1]!] = label[2]!.replace(/\\(.)/g, (_, c) => c === "n" ? "\n" : c);
        consumed = LABEL.lastIndex;
      }
      assert.equal(consumed, match[2].length, `malformed labels: ${line}`);
    }
    const value = match[3] === "+Inf" ? Infinity : Number(match[3]);
    assert.ok(!Number.isNaN(value), `malformed value: ${line}`);
    parsed.samples.push({ name: match[1]!, labels, value });
  }
  for (const sample of parsed.samples) {
    const family = sample.name.replace(/_(bucket|sum|count)$/, "");
    const type = parsed.types.get(sample.name) ?? parsed.types.get(family);
    assert.ok(type, `${sample.name} has a TYPE line`);
    assert.ok(parsed.helps.has(parsed.types.has(sample.name) ? sample.name : family));
  }
  return parsed;
}

function value(parsed: Parsed, name: string, labels: Record<string, string> = {}): number {
  const found = parsed.samples.filter((sample) =>
    sample.name === name &&
    Object.entries(labels).every(([key, text]) => sample.labels[key] === text)
  );
  assert.equal(found.length, 1, `one sample ${name} ${JSON.stringify(labels)}`);
  return found[0]!.value;
}

async function scrape(node: KvNode): Promise<Parsed> {
  const response = await fetch(`${node.url}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return parse(await response.text());
}

describe("GET /metrics of examples/kv (3 nodes in one process, http transport)", () => {
  let nodes: KvNode[] = [];
  let dataRoot = "";

  before(async () => {
    dataRoot = await mkdtemp(join(tmpdir(), "tsraft-metrics-test-"));
    const ports = await freePorts(3);
    const ids = ports.map((_, i) => `n${i + 1}`);
    nodes = await Promise.all(ports.map((port, i) =>
      startKvNode({
        id: ids[i]!,
        port,
        peers: ports.flatMap((other, j) =>
          j === i ? [] : [{ name: ids[j]!, connectionString: `127.0.0.1:${other}` }]
        ),
        dataDir: join(dataRoot, ids[i]!),
        transport: "http",
        electionTimeoutMs: 300,
      })
    ));
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node.close()));
    await rm(dataRoot, { recursive: true, force: true });
  });

  async function leader(): Promise<KvNode> {
    return await waitFor(() => nodes.find((node) => node.server.state === "leader"), {
      timeoutMs: 10_000,
      message: "a leader",
    });
  }

  test("the leader's exposition parses and names its followers and RPC kinds", async () => {
    const lead = await leader();
    const parsed = await scrape(lead);
    assert.equal(value(parsed, "tsraft_state", { state: "leader" }), 1);
    assert.equal(value(parsed, "tsraft_state", { state: "follower" }), 0);
    assert.equal(parsed.types.get("tsraft_term"), "gauge");
    assert.equal(parsed.types.get("tsraft_proposals_total"), "counter");
    assert.equal(parsed.types.get("tsraft_storage_write_duration_seconds"), "histogram");
    assert.equal(value(parsed, "tsraft_term"), lead.server.term);
    assert.equal(value(parsed, "tsraft_members"), 3);
    const peers = parsed.samples.filter((s) => s.name === "tsraft_follower_match_index")
      .map((s) => s.labels.peer).sort();
    assert.deepEqual(peers, nodes.filter((n) => n !== lead).map((n) => n.server.name).sort());
    for (const rpc of ["append_entries", "request_vote", "timeout_now"]) {
      value(parsed, "tsraft_rpc_sent_messages_total", { rpc });
      value(parsed, "tsraft_rpc_received_bytes_total", { rpc });
    }
    // A follower reports no per-follower series, but still every family's HELP and TYPE.
    const follower = await scrape(nodes.find((n) => n !== lead)!);
    assert.equal(value(follower, "tsraft_state", { state: "follower" }), 1);
    assert.equal(follower.samples.filter((s) => s.name.startsWith("tsraft_follower_")).length, 0);
    assert.equal(follower.types.get("tsraft_follower_match_index"), "gauge");
  });

  test("the histogram's buckets are cumulative and end at +Inf with the count", async () => {
    const parsed = await scrape(await leader());
    const bound = (s: Sample) => s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    const buckets = parsed.samples.filter((s) =>
      s.name === "tsraft_storage_write_duration_seconds_bucket"
    );
    assert.ok(buckets.length > 2);
    assert.equal(buckets.at(-1)!.labels.le, "+Inf");
    for (let i = 1; i < buckets.length; i++) {
      assert.ok(bound(buckets[i]!) > bound(buckets[i - 1]!), "bounds increase");
      assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, "cumulative");
    }
    const count = value(parsed, "tsraft_storage_write_duration_seconds_count");
    assert.equal(buckets.at(-1)!.value, count);
    assert.ok(count >= 1, "the leader wrote at least its term and vote");
    assert.ok(value(parsed, "tsraft_storage_write_duration_seconds_sum") > 0);
  });

  test("values move after a write: indexes, proposals, bytes sent, storage writes", async () => {
    const lead = await leader();
    const before = await scrape(lead);
    const value0 = "x".repeat(100);
    const response = await fetch(`${lead.url}/kv/metrics-key`, { method: "PUT", body: value0 });
    assert.equal(response.status, 200, await response.text());
    // The write is acknowledged once committed; followers learn the commit index later.
    const after = await waitFor(async () => {
      const parsed = await scrape(lead);
      const matches = parsed.samples.filter((s) => s.name === "tsraft_follower_match_index");
      return matches.every((s) => s.value >= value(parsed, "tsraft_commit_index")) && parsed;
    }, { message: "both followers match the commit index" });
    const grew = (name: string, labels: Record<string, string> = {}, by = 1) =>
      assert.ok(
        value(after, name, labels) >= value(before, name, labels) + by,
        `${name} ${JSON.stringify(labels)}: ${value(before, name, labels)} -> ${
          value(after, name, labels)
        }`,
      );
    grew("tsraft_commit_index");
    grew("tsraft_last_index");
    grew("tsraft_applied_index");
    grew("tsraft_proposals_total");
    grew("tsraft_entries_applied_total");
    grew("tsraft_kv_writes_total");
    grew("tsraft_storage_writes_total");
    grew("tsraft_storage_write_duration_seconds_count");
    grew("tsraft_commit_duration_seconds_count");
    grew("tsraft_rpc_sent_messages_total", { rpc: "append_entries" }, 2);
    // Both followers received the entry, whose command holds the 100-byte value.
    grew("tsraft_rpc_sent_bytes_total", { rpc: "append_entries" }, 200);
    const follower = nodes.find((n) => n !== lead)!;
    assert.equal(value(after, "tsraft_follower_lag_entries", { peer: follower.server.name }), 0);
  });

  test("GET /stats answers the stats, the service counters and the log tail", async () => {
    const lead = await leader();
    const stats = await (await fetch(`${lead.url}/stats`)).json() as NodeStats;
    assert.equal(stats.raft.state, "leader");
    assert.equal(stats.raft.followers.length, 2);
    assert.ok(stats.logTail.length > 0 && stats.logTail.length <= LOG_TAIL_ENTRIES);
    assert.equal(stats.logTail.at(-1)!.index, stats.raft.lastIndex);
    assert.equal(stats.logTail.at(-1)!.term, stats.raft.term);
    assert.equal(typeof stats.service.writes, "number");
  });
});

test("prometheusText() escapes label values", () => {
  const text = prometheusText({
    name: "a",
    state: "leader",
    term: 1,
    leader: "a",
    commitIndex: 0,
    appliedIndex: 0,
    lastIndex: 0,
    snapshotIndex: 0,
    members: ["a", 'b"\\\n'],
    followers: [{
      name: 'b"\\\n',
      matchIndex: 0,
      nextIndex: 1,
      mode: "probe",
      voter: true,
      inflightMessages: 0,
      lastContactMsAgo: 0,
    }],
    counters: {
      electionsStarted: 0,
      leadershipsWon: 0,
      proposals: 0,
      entriesApplied: 0,
      storageWrites: 0,
      storageWriteErrors: 0,
      snapshotsTaken: 0,
      snapshotsSent: 0,
      snapshotsInstalled: 0,
    },
    sent: rpcs(),
    received: rpcs(),
    storageWriteLatency: { boundsMs: [1, Infinity], counts: [0, 0], count: 0, sumMs: 0 },
    commitLatency: { boundsMs: [1, Infinity], counts: [0, 0], count: 0, sumMs: 0 },
    leaderContactMsAgo: 0,
  });
  const parsed = parse(text);
  assert.equal(
    parsed.samples.find((s) => s.name === "tsraft_follower_match_index")?.labels.peer,
    'b"\\\n',
  );
  assert.match(text, /tsraft_follower_match_index\{peer="b\\"\\\\\\n"\} 0/);
});

function rpcs() {
  const zero = () => ({ messages: 0, bytes: 0 });
  return {
    appendEntries: zero(),
    requestVote: zero(),
    timeoutNow: zero(),
    requestSnapshot: zero(),
    snapshotRecoveryRequest: zero(),
  };
}

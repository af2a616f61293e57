/**
 * The mutations `deno task mutate` (scripts/mutate.ts) applies, one at a time: each is a
 * deliberate bug, made by replacing exact text, that the suite or the simulator must catch.
 * The find text must occur exactly once in its file; when the code it names changes, the
 * mutation fails loudly ("stale") and is rewritten against the new code.
 * @module
 */

/** One textual change. */
export interface Edit {
  /** File relative to the repository root. */
  file: string;
  /** Exact text to find; it must occur exactly once in the file. */
  find: string;
  /** What replaces it. */
  replace: string;
}

/** A command that should fail once the mutation is applied, cheapest first. */
export type Catcher =
  /** `deno test -A --unstable-kv --fail-fast` of these paths. */
  | { test: string[] }
  /** `deno task sim --seeds N --quiet`. */
  | { sim: number };

/** A deliberate bug and the commands expected to catch it. */
export interface Mutation {
  /** Short id for `--only`. */
  id: string;
  /** What the bug is. */
  description: string;
  /** The changes that make it. */
  edits: Edit[];
  /** Commands run in order until one fails; the mutation survives when none does. */
  catchers: Catcher[];
}

const CONSENSUS = "packages/core/consensus.ts";
const SERVER = "packages/core/server.ts";
/** Core's tests, the simulator's tests, then the simulator at the seed count the issue names. */
const CORE: Catcher[] = [{ test: ["packages/core"] }, { test: ["packages/sim"] }, { sim: 1000 }];

/** The table. */
export const MUTATIONS: Mutation[] = [
  {
    id: "figure8",
    description:
      "Figure 8 rule removed: a leader commits an earlier term's entry by counting replicas",
    edits: [{
      file: CONSENSUS,
      find: "candidate > this.#log.commitIndex && this.#log.termAt(candidate) === this.#term",
      replace: "candidate > this.#log.commitIndex",
    }],
    catchers: CORE,
  },
  {
    id: "vote-not-persisted",
    description:
      "Vote granted within an already-persisted term without marking the hard state for persisting",
    edits: [{
      file: CONSENSUS,
      find: "this.#votedFor = req.candidateName;\n      this.#hardStateDirty = true;",
      replace: "this.#votedFor = req.candidateName;",
    }],
    catchers: CORE,
  },
  {
    id: "vote-no-log-check",
    description: "Vote granted without the candidate's log being up to date (logOk)",
    edits: [{
      file: CONSENSUS,
      find:
        "const logOk = req.lastLogTerm > this.lastTerm ||\n      (req.lastLogTerm === this.lastTerm && req.lastLogIndex >= this.lastIndex);",
      replace: "const logOk = req.lastLogTerm >= 0;",
    }],
    catchers: CORE,
  },
  {
    id: "commit-no-min",
    description: "Follower sets commit index = leaderCommit, without min(last new entry)",
    edits: [{
      file: CONSENSUS,
      find: "this.#log.commitTo(Math.min(req.commitIndex, lastNew));",
      replace: "this.#log.commitTo(req.commitIndex);",
    }],
    catchers: CORE,
  },
  {
    id: "ignore-prev-log-term",
    description: "Follower ignores prevLogTerm: appends after an entry of another term",
    edits: [{
      file: CONSENSUS,
      find: "if (localTerm !== req.prevLogTerm) {",
      replace: "if (localTerm < 0) {",
    }],
    catchers: CORE,
  },
  {
    id: "two-membership-changes",
    description:
      "A leader appends a membership change while another is uncommitted (one at a time, §4.1)",
    edits: [{
      file: CONSENSUS,
      find: "if (this.membershipChangePending) throw new MembershipChangeInProgressError();",
      replace:
        "if (this.membershipChangePending && this.#term < 0) throw new MembershipChangeInProgressError();",
    }, {
      file: SERVER,
      find: "if (this.#core.membershipChangePending) throw new MembershipChangeInProgressError();",
      replace: "",
    }],
    catchers: CORE,
  },
  {
    id: "ack-before-durable",
    description: "Server answers AppendEntries before the entries it acknowledges are durable",
    edits: [{
      file: SERVER,
      find:
        "const expectedTerm = this.#core.termAt(response.index);\n    await this.#loop.flushed();",
      replace: "const expectedTerm = this.#core.termAt(response.index);",
    }],
    catchers: CORE,
  },
  {
    id: "no-record-crc",
    description: "FileStorage skips the record CRC check when reading the log",
    edits: [{
      file: "packages/storage-file/_format.ts",
      find: "return crc === view.getUint32(36, true);",
      replace: "return crc === crc || view.getUint32(36, true) === 0;",
    }],
    catchers: [{ test: ["packages/storage-file"] }],
  },
  {
    id: "no-frame-limit",
    description: "TCP transport accepts frames of any size (frame size limit dropped)",
    edits: [{
      file: "packages/transport-tcp/_frame.ts",
      find: "if (length - HEADER_BYTES > this.maxPayloadBytes) {",
      replace: "if (length - HEADER_BYTES > Infinity) {",
    }],
    catchers: [{ test: ["packages/transport-tcp"] }],
  },
  {
    id: "no-body-limit",
    description: "HTTP transport reads request bodies of any size (body limit dropped)",
    edits: [{
      file: "packages/transport-http/_body.ts",
      find: "if (Number.isFinite(length) && length > maxBytes) {",
      replace: "if (Number.isFinite(length) && length > Infinity) {",
    }, {
      file: "packages/transport-http/_body.ts",
      find: "if (total > maxBytes) {",
      replace: "if (total > Infinity) {",
    }],
    catchers: [{ test: ["packages/transport-http"] }],
  },
  {
    id: "no-request-body-limit",
    description: "HttpTransporter's routes read request bodies of any size (no 413)",
    edits: [{
      file: "packages/transport-http/http_transporter.ts",
      find: "bytes = await readBodyLimited(request, this.#maxBodyBytes);",
      replace: "bytes = await readBodyLimited(request, Number.MAX_SAFE_INTEGER);",
    }],
    catchers: [{ test: ["packages/transport-http"] }],
  },
  // Issue 11: each fix of cd44ebf reverted at its key lines.
  {
    id: "i11-membership-before-commit",
    description:
      "Issue 11.1: a leader appends a membership change before committing an entry of its term (Consensus.propose and Server.addPeer/removePeer)",
    edits: [{
      file: CONSENSUS,
      find:
        'if (!this.hasCommittedInTerm) {\n        throw new MembershipChangeInProgressError(\n          "The leader has not yet committed',
      replace:
        'if (!this.hasCommittedInTerm && this.#term < 0) {\n        throw new MembershipChangeInProgressError(\n          "The leader has not yet committed',
    }, {
      file: SERVER,
      find: "return this.#core.hasCommittedInTerm;",
      replace: "return true;",
    }],
    catchers: CORE,
  },
  {
    id: "i11-restart-keeps-role",
    description:
      "Issue 11.2: stop() then start() reuses the old Consensus (role, progress, votes kept)",
    edits: [{
      file: SERVER,
      find: "      : [];\n    this.#core = this.#createCore();\n    this.#loop.restore(",
      replace: "      : [];\n    this.#loop.restore(",
    }, {
      file: CONSENSUS,
      find: "if (this.#restored) {",
      replace: "if (this.#restored && this.#term < 0) {",
    }],
    catchers: CORE,
  },
  {
    id: "i11-restart-reapplies",
    description:
      "Issue 11.2: a restart in place applies the log again from the snapshot to a state machine that kept it",
    edits: [{
      file: SERVER,
      find:
        "if (recover || !this.#initializedBefore) {\n      this.#applier.appliedIndex = snapshotMeta?.lastIndex ?? 0;\n    }",
      replace: "this.#applier.appliedIndex = snapshotMeta?.lastIndex ?? 0;",
    }],
    catchers: CORE,
  },
  {
    id: "i11-late-timeout-now",
    description:
      "Issue 11.3: TimeoutNow re-sent on every ack and lease reads not suspended after it",
    edits: [{
      file: CONSENSUS,
      find: "if (this.#transfer === undefined || this.#transfer.timeoutNowSent) return;",
      replace: "if (this.#transfer === undefined) return;",
    }, {
      file: "packages/core/reads.ts",
      find: "if (quorumSentAtMs < options.notBeforeMs) return false;",
      replace: "",
    }],
    catchers: CORE,
  },
  {
    id: "i11-restarted-voter-forgets-lease",
    description: "Issue 11.4: a restarted voter grants (pre-)votes at once, forgetting its lease",
    edits: [{
      file: CONSENSUS,
      find: "this.#voteRefusalUntilMs = nowMs + this.#options.electionTimeoutMs;",
      replace: "this.#voteRefusalUntilMs = nowMs;",
    }],
    catchers: CORE,
  },
  {
    id: "i11-snapshot-strands-do",
    description: "Issue 11.5: installing a snapshot leaves do() waiters it covers unsettled",
    edits: [{
      file: SERVER,
      find: "this.#applier.settleCoveredBySnapshot(meta.lastIndex);",
      replace: "",
    }],
    catchers: CORE,
  },
];

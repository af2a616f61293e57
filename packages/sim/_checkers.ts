// Safety checkers of the simulator: the Raft properties of Figure 3 of the paper, checked on
// what the servers show through their public API and events, and on their durable logs.
import type { LogEntry } from "@tsraft/core";

const decoder = new TextDecoder();

/** What identifies an entry's content: its command name and bytes. */
export function contentOf(entry: LogEntry): string {
  return `${entry.commandName}|${decoder.decode(entry.command)}`;
}

/** A durable log as a checker sees it. */
export interface LogView {
  name: string;
  snapshotIndex: number;
  snapshotTerm: number;
  entries: readonly LogEntry[];
}

interface Committed {
  term: number;
  content: string;
  /** Lowest term in which some node saw the entry committed. */
  commitTerm: number;
}

/** Collects violations of election safety, log matching, leader completeness and state machine safety. */
export class SafetyChecker {
  readonly violations: string[] = [];
  #now: () => number;
  #leaders = new Map<number, string>();
  #entries = new Map<string, string>();
  #seen = new WeakSet<LogEntry>();
  #committed = new Map<number, Committed>();
  #applied = new Map<number, string>();

  constructor(now: () => number) {
    this.#now = now;
  }

  violation(text: string): void {
    if (this.violations.length < 25) this.violations.push(`t=${this.#now()}ms: ${text}`);
    this.onViolation?.(text);
  }

  /** Called with each violation as it is found (the simulator traces it). */
  onViolation: ((text: string) => void) | undefined;

  /** Number of terms that had a leader. */
  get leaderTerms(): number {
    return this.#leaders.size;
  }

  /** Election safety: at most one leader per term. */
  noteLeader(term: number, name: string): void {
    const known = this.#leaders.get(term);
    if (known === undefined) this.#leaders.set(term, name);
    else if (known !== name) {
      this.violation(`election safety: ${known} and ${name} are both leaders of term ${term}`);
    }
  }

  /** Log matching, part 1: an (index, term) pair names one entry in every log, ever. */
  noteEntries(node: string, entries: readonly LogEntry[]): void {
    for (const entry of entries) {
      // Logs hand out the same (immutable) entry objects again and again: check each once.
      if (this.#seen.has(entry)) continue;
      this.#seen.add(entry);
      const key = `${entry.index}:${entry.term}`;
      const content = contentOf(entry);
      const known = this.#entries.get(key);
      if (known === undefined) this.#entries.set(key, content);
      else if (known !== content) {
        this.violation(
          `log matching: ${node} holds entry ${key} = ${content}, another log holds ${known}`,
        );
      }
    }
  }

  /** Records that a node saw `entry` committed while in `term`. */
  noteCommitted(node: string, entry: LogEntry, term: number): void {
    const content = contentOf(entry);
    const known = this.#committed.get(entry.index);
    if (known === undefined) {
      this.#committed.set(entry.index, { term: entry.term, content, commitTerm: term });
    } else if (known.term !== entry.term || known.content !== content) {
      this.violation(
        `state machine safety: ${node} commits ${entry.index}:${entry.term} ${content}, ` +
          `but ${entry.index}:${known.term} ${known.content} was committed before`,
      );
    } else if (term < known.commitTerm) known.commitTerm = term;
  }

  /** The committed entry at `index` as far as the checker knows. */
  committedContent(index: number): string | undefined {
    return this.#committed.get(index)?.content ?? this.#applied.get(index);
  }

  /** State machine safety: every node applies the same command at each index. */
  noteApplied(node: string, index: number, content: string): void {
    const known = this.#applied.get(index);
    if (known === undefined) this.#applied.set(index, content);
    else if (known !== content) {
      this.violation(
        `state machine safety: ${node} applies ${content} at ${index}, another node applied ${known}`,
      );
    }
  }

  /** Leader completeness: a leader of term T holds every entry committed in a term before T. */
  checkLeaderCompleteness(
    leader: string,
    term: number,
    snapshotIndex: number,
    termAt: (index: number) => number | undefined,
  ): void {
    for (const [index, committed] of this.#committed) {
      if (committed.commitTerm >= term || index < snapshotIndex) continue;
      const have = termAt(index);
      if (have !== committed.term) {
        this.violation(
          `leader completeness: ${leader}, leader of term ${term}, holds term ${have} at ${index}, ` +
            `but ${index}:${committed.term} was committed in term ${committed.commitTerm}`,
        );
        return;
      }
    }
  }

  /**
   * Log matching, part 2: logs that hold an entry with the same index and term hold the same
   * entries before it. Positions covered by either snapshot are skipped: a snapshot covers
   * committed entries only, which the commit checks compare.
   */
  checkLogMatching(logs: readonly LogView[]): void {
    for (let a = 0; a < logs.length; a++) {
      for (let b = a + 1; b < logs.length; b++) this.#matchPair(logs[a]!, logs[b]!);
    }
  }

  #matchPair(a: LogView, b: LogView): void {
    const lo = Math.max(a.snapshotIndex, b.snapshotIndex) + 1;
    const hi = Math.min(lastIndex(a), lastIndex(b));
    let i = hi;
    while (i >= lo && termIn(a, i) !== termIn(b, i)) i--;
    for (let j = i; j >= lo; j--) {
      if (termIn(a, j) !== termIn(b, j)) {
        this.violation(
          `log matching: ${a.name} and ${b.name} agree on ${i}:${termIn(a, i)} but differ at ` +
            `${j} (${termIn(a, j)} vs ${termIn(b, j)})`,
        );
        return;
      }
    }
  }
}

function lastIndex(log: LogView): number {
  const last = log.entries[log.entries.length - 1];
  return last === undefined ? log.snapshotIndex : Math.max(last.index, log.snapshotIndex);
}

function termIn(log: LogView, index: number): number | undefined {
  const first = log.entries[0];
  if (first === undefined) return undefined;
  return log.entries[index - first.index]?.term;
}

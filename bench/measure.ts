/**
 * bench/measure.ts — side-by-side measurement: every contestant runs once per round, in a rotating order,
 * and each round's rate is divided by the peer's rate in that same round. The median of those per-round
 * ratios is robust against a slow round (another process, a GC) that would skew a ratio of totals.
 */

export interface Contestant {
  name: string;
  /**
   * Runs one round and returns how many operations (or bytes) it did — or, when it timed itself (a load
   * generator in another process), the operations and the seconds they took.
   */
  run: () => Promise<number | { operations: number; seconds: number }>;
}

export interface Result {
  name: string;
  /** Median operations per second over the rounds. */
  rate: number;
  /** Median over rounds of (this rate ÷ the peer's rate in the same round), keyed by peer name. */
  ratios: Record<string, number>;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Runs `warmupRounds` unmeasured rounds, then `rounds` measured ones, rotating the order each round. */
export async function compare(contestants: Contestant[], rounds = 7, warmupRounds = 1): Promise<Result[]> {
  const rates = new Map<string, number[]>(contestants.map(({ name }) => [name, []]));
  for (let round = 0; round < warmupRounds + rounds; round++) {
    const order = contestants.map((_, index) => contestants[(index + round) % contestants.length]!);
    for (const contestant of order) {
      const started = performance.now();
      const outcome = await contestant.run();
      const measured =
        typeof outcome === "number"
          ? { operations: outcome, seconds: (performance.now() - started) / 1000 }
          : outcome;
      if (round >= warmupRounds) rates.get(contestant.name)!.push(measured.operations / measured.seconds);
    }
  }
  return contestants.map(({ name }) => {
    const own = rates.get(name)!;
    const ratios: Record<string, number> = {};
    for (const peer of contestants) {
      if (peer.name === name) continue;
      const theirs = rates.get(peer.name)!;
      ratios[peer.name] = median(own.map((rate, round) => rate / theirs[round]!));
    }
    return { name, rate: median(own), ratios };
  });
}

/** Prints results as a table: name, rate, and ratios against the named peers. */
export function report(
  title: string,
  unit: string,
  results: Result[],
  peersOf: string,
  targets: Record<string, number> = {},
) {
  console.log(`\n${title}`);
  const subject = results.find(({ name }) => name === peersOf)!;
  for (const { name, rate } of results) {
    console.log(`  ${name.padEnd(36)} ${formatRate(rate).padStart(10)} ${unit}`);
  }
  for (const [peer, ratio] of Object.entries(subject.ratios)) {
    const target = targets[peer];
    const verdict =
      target === undefined
        ? ""
        : ratio >= target
          ? `  (target ≥ ${target}×: met)`
          : `  (target ≥ ${target}×: NOT met)`;
    console.log(`  ${peersOf} ÷ ${peer}: ${ratio.toFixed(2)}×${verdict}`);
  }
}

export function formatRate(rate: number): string {
  if (rate >= 1e6) return `${(rate / 1e6).toFixed(2)}M`;
  if (rate >= 1e3) return `${(rate / 1e3).toFixed(1)}k`;
  return rate.toFixed(1);
}

/** Starts a script in a child process and waits for its first stdout line (`listening on HOST:PORT`). */
export async function startChild(
  argv: string[],
): Promise<{ port: number; host: string; child: ReturnType<typeof Bun.spawn> }> {
  const child = Bun.spawn(argv, { stdout: "pipe", stderr: "inherit" });
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${argv.join(" ")} exited before saying where it listens`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  const match = /listening on (\S+):(\d+)/.exec(text);
  if (!match) throw new Error(`unexpected first line from ${argv.join(" ")}: ${text}`);
  return { host: match[1]!, port: Number(match[2]), child };
}

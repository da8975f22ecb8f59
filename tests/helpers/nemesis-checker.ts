/**
 * The checker of the nemesis test (tests/07-nemesis.test.ts): given what every chat session saw and sent,
 * and when each fault was injected, it finds the first violation of the room's promises — or none.
 *
 * Terms (every time is the test process's `performance.now()`, in ms):
 * - A session is one connection of one scripted user: it registers a name (`okAt`: when its `OK welcome`
 *   arrived), sends lines one at a time — each waits for its outcome: the sender's own copy, an `ERR`
 *   reply, or nothing before the connection ended or a timeout — and ends (`endAt`: EOF, a reset, or
 *   the end of the test; `null` while still connected at the end).
 * - Every line a user sends is unique (`s<session>m<k>`): a user line `NAME: TEXT` names its sender.
 * - A line is *accepted* when some session saw it (it is in the room's stream). `sentAt` is when its
 *   sender wrote it; `lastSeenAt` the latest time any session received it.
 * - A fault is an interval on one node (SIGSTOP…SIGCONT, SIGKILL…restart, a link cut, a blackhole, error
 *   replies) or on Redis (SIGKILL and an empty restart), which touches every node.
 * - Session S is *disturbed* over [a, b] when a fault on S's node or on Redis overlaps
 *   [a − margin, b + margin] (`margin`: the node timeout plus a second — the reconnect, its backoff, and
 *   catching up all outlast the fault itself).
 * - Session S *stayed connected through* line L when: L was sent more than {@link FEED_SETTLE_MS} after S's
 *   `OK` (S's feed starts at its own join notice, published just after the OK); S was still connected
 *   {@link FEED_SETTLE_MS} after L's `lastSeenAt`; and S was not disturbed over [sentAt, lastSeenAt].
 *   A session whose node was paused, killed or cut off, or which lived through a Redis restart, during
 *   that window is excused from completeness — but never from the other rules.
 *
 * The rules, checked in this order (the first violation is reported):
 * 1. No duplicates: no session sees the same user line twice.
 * 2. One order: any two sessions see the user lines they both saw in the same order.
 * 3. No impersonation: a line `NAME: TEXT` was sent by a session registered as NAME (ignoring case), and
 *    was not sent after another session got `OK` for NAME — by then the sender's hold on NAME had ended,
 *    so the line was added to the room after someone else claimed the name.
 * 4. Departures once: in any session's view, two departure notices of one name (`* NAME left…`,
 *    `* NAME was disconnected…`) always have a join notice of that name between them — unless Redis
 *    restarted empty in between (with the margin): the join notice may have been lost with the stream.
 * 5. Completeness: every accepted line reaches every session that stayed connected through it.
 * 6. No silent drop: a line whose sender got neither its copy nor an ERR, while the sender stayed
 *    connected and undisturbed for {@link OUTCOME_TIMEOUT_MS} after sending it, is a violation.
 */

/** A session's feed starts at its join notice, published right after its OK: lines sent within this are not owed to it. */
export const FEED_SETTLE_MS = 500;
/** How long a scripted user waits for its line's outcome. */
export const OUTCOME_TIMEOUT_MS = 5000;

export interface SessionHistory {
  id: number;
  name: string;
  node: number;
  okAt: number;
  /** Null: still connected at the end. */
  endAt: number | null;
  /** Every line received after OK, with when. */
  received: { text: string; at: number }[];
  /** Every line sent after OK, and what came of it. */
  sent: { text: string; at: number; outcome: "copy" | "err" | "none" }[];
}

export interface Fault {
  kind: string;
  /** Node index, or null for Redis (every node). */
  node: number | null;
  start: number;
  end: number;
}

export interface Violation {
  rule: string;
  detail: string;
}

const USER_LINE = /^([A-Za-z0-9_-]{1,32}): (s(\d+)m\d+)$/;
const JOIN = /^\* ([A-Za-z0-9_-]{1,32}) joined$/;
const DEPARTURE = /^\* ([A-Za-z0-9_-]{1,32}) (?:left|was disconnected)\b/;

export function checkHistories(
  sessions: SessionHistory[],
  faults: Fault[],
  marginMs: number,
): Violation | null {
  const byId = new Map(sessions.map((session) => [session.id, session]));
  const disturbed = (session: SessionHistory, from: number, to: number) =>
    faults.some(
      (fault) =>
        (fault.node === null || fault.node === session.node) &&
        fault.start <= to + marginMs &&
        fault.end >= from - marginMs,
    );
  // Per session: its user lines in order; and per line: when it was sent, last seen.
  const views = new Map<number, string[]>();
  const lastSeen = new Map<string, number>();
  for (const session of sessions) {
    const view: string[] = [];
    const seen = new Set<string>();
    for (const { text, at } of session.received) {
      const match = USER_LINE.exec(text);
      if (!match) continue;
      if (seen.has(text))
        return {
          rule: "no duplicates",
          detail: `session ${session.id} (${session.name}) saw "${text}" twice`,
        };
      seen.add(text);
      view.push(text);
      lastSeen.set(text, Math.max(lastSeen.get(text) ?? 0, at));
    }
    views.set(session.id, view);
  }
  const order = checkOrder(sessions, views);
  if (order) return order;
  const sentBy = new Map<string, { session: SessionHistory; at: number }>();
  for (const session of sessions)
    for (const line of session.sent) sentBy.set(`${session.name}: ${line.text}`, { session, at: line.at });
  for (const text of lastSeen.keys()) {
    const [, name, , sender] = USER_LINE.exec(text)!;
    const origin = sentBy.get(text);
    const senderSession = byId.get(Number(sender));
    if (!origin || !senderSession || senderSession.name.toLowerCase() !== name!.toLowerCase()) {
      return { rule: "no impersonation", detail: `"${text}" was not sent by a session named ${name}` };
    }
    const successor = sessions.find(
      (other) =>
        other.id !== senderSession.id &&
        other.name.toLowerCase() === name!.toLowerCase() &&
        other.okAt > senderSession.okAt &&
        other.okAt < origin.at,
    );
    if (successor) {
      return {
        rule: "no impersonation",
        detail: `"${text}" (session ${senderSession.id}) was sent ${Math.round(origin.at - successor.okAt)} ms after session ${successor.id} got OK for ${name}, and reached the room`,
      };
    }
  }
  const redisRestarts = faults.filter((fault) => fault.node === null);
  for (const session of sessions) {
    /** Per name: when the last departure notice arrived, and what it said; null after a join. */
    const departed = new Map<string, { at: number; text: string } | null>();
    for (const { text, at } of session.received) {
      const join = JOIN.exec(text);
      if (join) departed.set(join[1]!.toLowerCase(), null);
      const departure = DEPARTURE.exec(text);
      if (!departure) continue;
      const name = departure[1]!.toLowerCase();
      const earlier = departed.get(name);
      // A join notice can be lost with the stream when Redis restarts empty: then two departures of one
      // name (two sessions' departures) may meet with no join between. Excused across a Redis restart.
      const acrossRestart =
        earlier &&
        redisRestarts.some((fault) => fault.start <= at + marginMs && fault.end >= earlier.at - marginMs);
      if (earlier && !acrossRestart) {
        return {
          rule: "departures once",
          detail: `session ${session.id} (${session.name}) saw "${text}" at ${Math.round(at)} ms after "${earlier.text}" at ${Math.round(earlier.at)} ms, with no join of ${departure[1]} between`,
        };
      }
      departed.set(name, { at, text });
    }
  }
  for (const text of lastSeen.keys()) {
    const origin = sentBy.get(text)!;
    const until = lastSeen.get(text)!;
    for (const session of sessions) {
      if (origin.at <= session.okAt + FEED_SETTLE_MS) continue;
      if (session.endAt !== null && session.endAt <= until + FEED_SETTLE_MS) continue;
      if (disturbed(session, origin.at, until)) continue;
      if (!views.get(session.id)!.includes(text)) {
        return {
          rule: "completeness",
          detail: `session ${session.id} (${session.name}, node ${session.node}) stayed connected through "${text}" and never got it`,
        };
      }
    }
  }
  for (const session of sessions) {
    for (const line of session.sent) {
      if (line.outcome !== "none") continue;
      if (session.endAt !== null && session.endAt <= line.at + OUTCOME_TIMEOUT_MS) continue;
      if (disturbed(session, line.at, line.at + OUTCOME_TIMEOUT_MS)) continue;
      return {
        rule: "no silent drop",
        detail: `session ${session.id} (${session.name}) sent "${line.text}": no copy, no ERR, while connected and undisturbed`,
      };
    }
  }
  return null;
}

/** Rule 2: for each pair of sessions, their common lines in the same order. */
function checkOrder(sessions: SessionHistory[], views: Map<number, string[]>): Violation | null {
  const positions = new Map<number, Map<string, number>>();
  for (const [id, view] of views) positions.set(id, new Map(view.map((text, index) => [text, index])));
  for (const a of sessions) {
    const inA = positions.get(a.id)!;
    for (const b of sessions) {
      if (b.id <= a.id) continue;
      let last = -1;
      let lastText = "";
      for (const text of views.get(b.id)!) {
        const at = inA.get(text);
        if (at === undefined) continue;
        if (at < last) {
          return {
            rule: "one order",
            detail: `session ${a.id} saw "${text}" before "${lastText}", session ${b.id} after it`,
          };
        }
        last = at;
        lastText = text;
      }
    }
  }
  return null;
}

import { afterEach, describe, expect, test } from "bun:test";
import { type LineServer, startLineServer } from "../lib/streams.ts";
import {
  type ChatConnection,
  ChatRoom,
  type LineFraming,
  LocalNames,
  type NameRegistry,
  PAUSED_REPLY,
  type RoomBus,
  type RoomOptions,
  WHO_MAX_NAMES,
  type WhoList,
} from "../scripts/05-chat-server.ts";
import { LineClient } from "./helpers/servers.ts";

const OPTIONS: RoomOptions = {
  idleSeconds: 60,
  maxLineBytes: 4096,
  sendQueueBytes: 256 * 1024,
  floodBurst: 10,
  floodRate: 5,
  maxUsers: 100,
  log: () => {},
};

/** A registry that answers like a remote one: every answer after `delayMs`; `down` makes them all fail. */
class SlowNames implements NameRegistry {
  readonly local = new LocalNames();
  down = false;
  constructor(readonly delayMs: number) {}
  async claim(name: string): Promise<number | null> {
    await Bun.sleep(this.delayMs);
    if (this.down) throw new Error("registry unreachable");
    return this.local.claim(name);
  }
  release(name: string): void {
    this.local.release(name);
  }
  async who(limit: number): Promise<WhoList> {
    await Bun.sleep(this.delayMs);
    if (this.down) throw new Error("registry unreachable");
    return this.local.who(limit);
  }
}

/** A bus that delivers like a remote stream: each publish comes back alone, a little later. */
class SlowBus implements RoomBus {
  room!: ChatRoom;
  published: string[] = [];
  publish(line: string): void {
    this.published.push(line);
    setTimeout(() => this.room.deliver([line]), 5);
  }
}

/** A bus that delivers everything published within `windowMs` of the first line as one batch. */
class GatheringBus implements RoomBus {
  room!: ChatRoom;
  readonly batchSizes: number[] = [];
  #lines: string[] = [];
  constructor(readonly windowMs: number) {}
  publish(line: string): void {
    if (this.#lines.length === 0) {
      setTimeout(() => {
        const lines = this.#lines;
        this.#lines = [];
        this.batchSizes.push(lines.length);
        this.room.deliver(lines);
      }, this.windowMs);
    }
    this.#lines.push(line);
  }
}

let server: LineServer | undefined;
afterEach(() => server?.close(true));

function serve(room: ChatRoom): number {
  server = startLineServer(room.lineHandlers(), { maxLineBytes: OPTIONS.maxLineBytes });
  return server.port;
}

describe("ChatRoom with a registry and a bus that answer later", () => {
  test("a user's lines keep their order while its name claim is pending", async () => {
    const names = new SlowNames(50);
    const bus = new SlowBus();
    const room = new ChatRoom(OPTIONS, { names, bus });
    bus.room = room;
    const client = await LineClient.connect(serve(room));
    client.send("CONNECT ann\n/who\nhello\n/dance\n");
    const lines = [await client.line(), await client.line(), await client.line(), await client.line()];
    // Replies to ann come at once; her message goes round the bus and comes back a little later.
    expect(lines.filter((line) => !line!.startsWith("ann:"))).toEqual([
      "OK welcome ann, 1 user online",
      "* online (1): ann",
      "ERR unknown command /dance (commands: /who, /quit)",
    ]);
    expect(bus.published).toEqual(["* ann joined", "ann: hello"]);
    expect(lines).toContain("ann: hello");
    client.close();
  });

  test("two users racing for one name ignoring case: exactly one OK", async () => {
    const room = new ChatRoom(OPTIONS, { names: new SlowNames(30) });
    const port = serve(room);
    const racers = await Promise.all([LineClient.connect(port), LineClient.connect(port)]);
    racers[0]!.send("CONNECT Zoe\n");
    racers[1]!.send("CONNECT zoe\n");
    const replies = (await Promise.all(racers.map((racer) => racer.line()))).sort();
    expect(replies).toEqual(["ERR name taken: zoe", "OK welcome Zoe, 1 user online"]);
    for (const racer of racers) racer.close();
  });

  test("a newcomer gets no line published before its own join, and not its own join notice", async () => {
    const bus = new SlowBus();
    const room = new ChatRoom(OPTIONS, { bus });
    bus.room = room;
    const port = serve(room);
    const ann = await LineClient.connect(port);
    ann.send("CONNECT ann\n");
    expect(await ann.line()).toBe("OK welcome ann, 1 user online");
    ann.send("before bob\n");
    const bob = await LineClient.connect(port);
    bob.send("CONNECT bob\n");
    expect(await bob.line()).toBe("OK welcome bob, 2 users online");
    ann.send("after bob\n");
    expect(await bob.line()).toBe("ann: after bob");
    expect([await ann.line(), await ann.line(), await ann.line()]).toEqual([
      "ann: before bob",
      "* bob joined",
      "ann: after bob",
    ]);
    ann.close();
    bob.close();
  });

  test("a claim that fails tells the user to try again, and the next one works", async () => {
    const names = new SlowNames(10);
    const room = new ChatRoom(OPTIONS, { names });
    const client = await LineClient.connect(serve(room));
    names.down = true;
    client.send("CONNECT ann\n");
    expect(await client.line()).toBe(PAUSED_REPLY);
    names.down = false;
    client.send("CONNECT ann\n");
    expect(await client.line()).toBe("OK welcome ann, 1 user online");
    client.close();
  });

  test("while paused, lines, CONNECT and /who get ERR chat paused, and users stay connected", async () => {
    const room = new ChatRoom(OPTIONS);
    const port = serve(room);
    const ann = await LineClient.connect(port);
    ann.send("CONNECT ann\n");
    expect(await ann.line()).toBe("OK welcome ann, 1 user online");
    room.pause();
    const bob = await LineClient.connect(port);
    bob.send("CONNECT bob\n");
    ann.send("anyone?\n/who\n");
    expect(await bob.line()).toBe(PAUSED_REPLY);
    expect([await ann.line(), await ann.line()]).toEqual([PAUSED_REPLY, PAUSED_REPLY]);
    room.resume();
    ann.send("back\n");
    expect(await ann.line()).toBe("ann: back");
    ann.close();
    bob.close();
  });

  test("every join and departure goes through the bus, once", async () => {
    const bus = new SlowBus();
    const room = new ChatRoom(OPTIONS, { bus });
    bus.room = room;
    const port = serve(room);
    for (const [name, leave] of [
      ["q", (client: LineClient) => client.send("/quit\n")],
      ["e", (client: LineClient) => client.writer.writeEof()],
      ["r", (client: LineClient) => client.abort()],
    ] as const) {
      const client = await LineClient.connect(port);
      client.send(`CONNECT ${name}\n`);
      await client.line();
      leave(client);
    }
    await Bun.sleep(200);
    expect(bus.published.filter((line) => line.startsWith("* ")).sort()).toEqual(
      [
        "* e joined",
        "* e left",
        "* q joined",
        "* q left",
        "* r joined",
        expect.stringMatching(/^\* r left/),
      ].sort(),
    );
  });

  test(`/who in a big room lists the count and the first ${WHO_MAX_NAMES} names, sorted`, async () => {
    const names = new LocalNames();
    for (let i = 0; i < 1000; i++) names.claim(`user${String(i).padStart(4, "0")}`);
    const room = new ChatRoom(OPTIONS, { names });
    const client = await LineClient.connect(serve(room));
    client.send("CONNECT Aaron\n/who\n");
    expect(await client.line()).toBe("OK welcome Aaron, 1001 users online");
    const reply = (await client.line())!;
    const listed = reply
      .replace(/^\* online \(1001\): /, "")
      .replace(/, … and 901 more$/, "")
      .split(", ");
    expect(listed).toHaveLength(WHO_MAX_NAMES);
    expect(listed[0]).toBe("Aaron");
    expect(listed[1]).toBe("user0000");
    expect(listed.at(-1)).toBe("user0098");
    client.close();
  });
});

/** A framing another protocol might use: each line as `> text\n`; counts how often a batch is encoded. */
class QuotedFraming implements LineFraming {
  batchesEncoded = 0;
  readonly #utf8 = new TextEncoder();
  encodeLine(text: string): Uint8Array {
    return this.#utf8.encode(`> ${text}\n`);
  }
  encodeBatch(lines: readonly string[]): Uint8Array {
    this.batchesEncoded++;
    return this.#utf8.encode(lines.map((line) => `> ${line}\n`).join(""));
  }
  lineStarts(lines: readonly string[]): number[] {
    const starts: number[] = [];
    let offset = 0;
    for (const line of lines) {
      starts.push(offset);
      offset += Buffer.byteLength(`> ${line}\n`);
    }
    return starts;
  }
}

describe("ChatRoom with connections that bring their own framing", () => {
  /** Serves `room`; connections whose port is odd get `framing` and record why they were closed. */
  function serveMixed(room: ChatRoom, framing: LineFraming, closes: string[]): number {
    const handlers = room.lineHandlers();
    let count = 0;
    server = startLineServer(
      {
        ...handlers,
        onConnect: (connection) => {
          // Every second connection speaks the quoted framing: the first is plain, the second quoted, …
          if (count++ % 2 === 0) return room.accept(connection);
          const quoted: ChatConnection = {
            writer: connection.writer,
            peer: connection.peer,
            pauseReading: () => connection.pauseReading(),
            resumeReading: () => connection.resumeReading(),
            framing,
            beforeClose: (why) => closes.push(why),
          };
          return room.accept(quoted);
        },
      },
      { maxLineBytes: OPTIONS.maxLineBytes },
    );
    return server.port;
  }

  test("each framing gets the same lines, encoded once per batch whatever the number of its users", async () => {
    const framing = new QuotedFraming();
    const closes: string[] = [];
    const room = new ChatRoom(OPTIONS);
    const port = serveMixed(room, framing, closes);
    const [ann, bob, cat] = [
      await LineClient.connect(port),
      await LineClient.connect(port),
      await LineClient.connect(port),
    ];
    ann.send("CONNECT ann\n");
    expect(await ann.line()).toBe("OK welcome ann, 1 user online");
    bob.send("CONNECT bob\n");
    expect(await bob.line()).toBe("> OK welcome bob, 2 users online");
    expect(await ann.lineMatching("* bob joined")).toBe("* bob joined");
    cat.send("CONNECT cat\n");
    expect(await cat.line()).toBe("OK welcome cat, 3 users online");
    // cat is plain (the third connection); bob is quoted. Wait until everyone has seen cat join.
    await ann.lineMatching("* cat joined");
    await bob.lineMatching("> * cat joined");
    const before = framing.batchesEncoded;
    ann.send("one\ntwo\n");
    expect([await bob.line(), await bob.line()]).toEqual(["> ann: one", "> ann: two"]);
    expect([await cat.line(), await cat.line()]).toEqual(["ann: one", "ann: two"]);
    // Two lines of one turn: one batch, encoded once for the quoted user.
    expect(framing.batchesEncoded - before).toBe(1);
    bob.send("/quit\n");
    expect(await bob.line()).toBe("> * bye");
    expect(await bob.line()).toBeNull();
    expect(closes).toEqual(["quit"]);
    for (const client of [ann, cat]) client.close();
  });

  test("a late joiner of another framing gets the tail of the batch after its own join notice", async () => {
    const framing = new QuotedFraming();
    // A bus that gathers 100 ms of lines into one batch: ann's line, bob's join and ann's next line in one.
    const bus = new GatheringBus(100);
    const room = new ChatRoom(OPTIONS, { bus });
    bus.room = room;
    const port = serveMixed(room, framing, []);
    const ann = await LineClient.connect(port);
    ann.send("CONNECT ann\n");
    await ann.line();
    await Bun.sleep(150); // her join notice's batch has gone by (a joiner does not get its own notice)
    const bob = await LineClient.connect(port);
    ann.send("before\n");
    bob.send("CONNECT bob\n");
    expect(await bob.line()).toBe("> OK welcome bob, 2 users online");
    ann.send("after\n");
    expect(await ann.line()).toBe("ann: before");
    expect(bus.batchSizes).toEqual([1, 3]);
    expect(await bob.line()).toBe("> ann: after");
    ann.close();
    bob.close();
  });
});

/**
 * The store tests, run against every implementation of `src/store/types.ts`: `store.test.ts`
 * (SQLite) and `store-postgres.test.ts` (PostgreSQL) call {@link storeSuite}. Every test opens a
 * fresh, empty store and closes it at the end.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { isConstraintViolation, type Repos, type RunRow, type Store } from "../../src/store/types.ts";
import { dataJsonOf, type RunEvent, type RunStatus } from "../../src/protocol/events.ts";
import type { BatchEvent } from "../../src/protocol/batches.ts";
import { ConflictError, NotFoundError, ValidationError } from "../../src/errors.ts";

/** Inserts a run with defaults (`shell`, `queued`, now). */
export function insertRun(repos: Repos, id: string, user_id: string, over: Partial<Pick<RunRow, "agent" | "status" | "created_at">> & { batch_id?: string } = {}): Promise<RunRow> {
  return repos.runs.insert({
    id,
    user_id,
    agent: over.agent ?? "shell",
    status: over.status ?? "queued",
    input: { text: `prompt ${id}` },
    metadata: { agent_type: over.agent ?? "shell" },
    cwd: `/ws/${id}`,
    created_at: over.created_at ?? new Date().toISOString(),
    ...(over.batch_id !== undefined ? { batch_id: over.batch_id } : {}),
  });
}

/** A caller-numbered `log` event. */
export function logEvent(run_id: string, id: number, text = `line ${id}`): RunEvent {
  return { id, run_id, ts: new Date().toISOString(), type: "log", data: { stream: "stdout", text } };
}

/** A `log` draft for `events.append`. */
function logDraft(text: string): Pick<RunEvent, "ts" | "type" | "data"> {
  return { ts: new Date().toISOString(), type: "log", data: { stream: "stdout", text } };
}

const isConstraint = (err: unknown): boolean => isConstraintViolation(err);

/**
 * Registers the store tests under `describe(name)`.
 * @param open makes a fresh, empty store (a new file or database each call)
 * @param close ends a store made by `open` (default `store.close()`)
 */
export function storeSuite(name: string, open: () => Promise<Store>, close: (store: Store) => Promise<void> = (s) => s.close()): void {
  const withStore = async (fn: (store: Store) => Promise<void>): Promise<void> => {
    const store = await open();
    try {
      await fn(store);
    } finally {
      await close(store);
    }
  };

  describe(`store (${name})`, () => {
    describe("users and api keys", () => {
      test("create, look up, list, unique username", () =>
        withStore(async (store) => {
          assert.ok(name.startsWith(store.kind), `kind ${store.kind}`);
          assert.equal(await store.users.count(), 0);
          const a = await store.users.create({ username: "alice", password_hash: "ha", role: "admin" });
          const b = await store.users.create({ username: "bob", password_hash: "hb", role: "user" });
          assert.match(a.id, /^usr_[0-9A-HJKMNP-TV-Z]{26}$/);
          assert.equal(await store.users.count(), 2);
          assert.deepEqual(await store.users.getById(a.id), a);
          assert.deepEqual(await store.users.getByUsername("bob"), b);
          assert.equal(await store.users.getByUsername("carol"), undefined);
          assert.equal(await store.users.getById("usr_none"), undefined);
          assert.deepEqual((await store.users.list()).map((u) => u.username), ["alice", "bob"]);
          await assert.rejects(store.users.create({ username: "alice", password_hash: "x", role: "user" }), (err) => {
            assert.ok(err instanceof ConflictError);
            assert.equal(err.code, "username_taken");
            assert.match(err.message, /username alice is taken/);
            return true;
          });
          assert.equal(await store.users.count(), 2);
        }));

      test("a taken username inside a transaction undoes only that insert when caught", () =>
        withStore(async (store) => {
          await store.users.create({ username: "alice", password_hash: "h", role: "user" });
          const made = await store.transaction(async (tx) => {
            const bob = await tx.users.create({ username: "bob", password_hash: "h", role: "user" });
            await assert.rejects(tx.users.create({ username: "alice", password_hash: "x", role: "user" }), ConflictError);
            await tx.users.create({ username: "carol", password_hash: "h", role: "user" });
            return bob;
          });
          assert.deepEqual(await store.users.getById(made.id), made);
          assert.deepEqual((await store.users.list()).map((u) => u.username), ["alice", "bob", "carol"]);
        }));

      test("api keys: active lookup, revoke only own and only once, touch", () =>
        withStore(async (store) => {
          const a = await store.users.create({ username: "alice", password_hash: "h", role: "user" });
          const b = await store.users.create({ username: "bob", password_hash: "h", role: "user" });
          const k = await store.apiKeys.create({ user_id: a.id, name: "ci", prefix: "or_ab12", key_hash: "f".repeat(64) });
          assert.match(k.id, /^key_[0-9A-Z]{26}$/);
          assert.equal(k.revoked_at, null);
          assert.equal(k.last_used_at, null);
          assert.deepEqual(await store.apiKeys.getActiveByHash("f".repeat(64)), k);
          await store.apiKeys.touch(k.id, "2030-01-01T00:00:00.000Z");
          assert.equal((await store.apiKeys.listByUser(a.id))[0]?.last_used_at, "2030-01-01T00:00:00.000Z");
          assert.deepEqual(await store.apiKeys.listByUser(b.id), []);
          assert.equal(await store.apiKeys.revoke(k.id, b.id), false);
          assert.equal(await store.apiKeys.revoke(k.id, a.id), true);
          assert.equal(await store.apiKeys.revoke(k.id, a.id), false);
          assert.equal(await store.apiKeys.getActiveByHash("f".repeat(64)), undefined);
          assert.notEqual((await store.apiKeys.listByUser(a.id))[0]?.revoked_at, null);
          const made: string[] = [];
          for (let i = 0; i < 20; i++) made.push((await store.apiKeys.create({ user_id: b.id, name: `k${i}`, prefix: "or_x", key_hash: `h${i}` })).id);
          assert.deepEqual((await store.apiKeys.listByUser(b.id)).map((k) => k.id), made, "listed in creation order");
          await assert.rejects(store.apiKeys.create({ user_id: b.id, name: "dup", prefix: "or_x", key_hash: "h0" }), isConstraint, "key_hash is unique");
          await assert.rejects(store.apiKeys.create({ user_id: "usr_none", name: "k", prefix: "or_x", key_hash: "orphan" }), isConstraint, "the user must exist");
        }));

      test("deleting a user removes their api keys, runs and events, and nobody else's", () =>
        withStore(async (store) => {
          const a = await store.users.create({ username: "alice", password_hash: "h", role: "user" });
          const b = await store.users.create({ username: "bob", password_hash: "h", role: "user" });
          await store.apiKeys.create({ user_id: a.id, name: "k", prefix: "or_1", key_hash: "1" });
          await store.apiKeys.create({ user_id: b.id, name: "k", prefix: "or_2", key_hash: "2" });
          await insertRun(store, "run_a", a.id);
          await insertRun(store, "run_b", b.id);
          await store.events.insertBatch([logEvent("run_a", 1), logEvent("run_a", 2), logEvent("run_b", 1)]);

          assert.equal(await store.users.delete(a.id), true);
          assert.equal(await store.users.delete(a.id), false);
          assert.equal(await store.users.getById(a.id), undefined);
          assert.equal(await store.apiKeys.getActiveByHash("1"), undefined);
          assert.equal(await store.runs.get("run_a"), undefined);
          assert.deepEqual(await store.events.list("run_a", 0, 10), []);
          assert.ok(await store.apiKeys.getActiveByHash("2"));
          assert.ok(await store.runs.get("run_b"));
          assert.equal((await store.events.list("run_b", 0, 10)).length, 1);
        }));
    });

    describe("runs", () => {
      test("insert and get round-trip JSON columns; update patches only the given fields", () =>
        withStore(async (store) => {
          const u = await store.users.create({ username: "u", password_hash: "h", role: "user" });
          const run = await insertRun(store, "run_1", u.id);
          assert.deepEqual(run.input, { text: "prompt run_1" });
          assert.deepEqual(run.metadata, { agent_type: "shell" });
          assert.equal(run.last_event_id, 0);
          assert.equal(run.usage, null);
          assert.equal(run.batch_id, null);
          assert.deepEqual(await store.runs.get("run_1"), run);
          assert.equal(await store.runs.get("run_none"), undefined);

          await store.runs.update("run_1", { status: "running", started_at: "2030-01-01T00:00:00.000Z" });
          await store.runs.update("run_1", { usage: { input_tokens: 3, output_tokens: 4 }, error: { code: "internal", message: "x" }, session_id: undefined });
          const got = (await store.runs.get("run_1"))!;
          assert.equal(got.status, "running");
          assert.equal(got.started_at, "2030-01-01T00:00:00.000Z");
          assert.deepEqual(got.usage, { input_tokens: 3, output_tokens: 4 });
          assert.deepEqual(got.error, { code: "internal", message: "x" });
          assert.equal(got.session_id, null);
          assert.deepEqual(got.input, run.input);
          assert.equal(got.cwd, run.cwd);
          await store.runs.update("run_1", { error: null });
          assert.equal((await store.runs.get("run_1"))!.error, null);
          await store.runs.update("run_1", { result: "done 'quoted' \\ ✓", exit_code: 3, ended_at: "2030-01-01T00:01:00.000Z", last_event_id: 7, metadata: { b: 1, a: [2] } });
          const ended = (await store.runs.get("run_1"))!;
          assert.equal(ended.result, "done 'quoted' \\ ✓");
          assert.equal(ended.exit_code, 3);
          assert.equal(ended.last_event_id, 7);
          assert.deepEqual(ended.metadata, { b: 1, a: [2] });
          await store.runs.update("run_1", {});
          await store.runs.update("run_none", { status: "failed" });
          await assert.rejects(store.runs.update("run_1", { nope: 1 } as never), (err) => err instanceof TypeError && /not an updatable column/.test(err.message));
          await assert.rejects(store.runs.update("run_1", { batch_id: "bat_x" } as never), TypeError);
          await assert.rejects(insertRun(store, "run_1", u.id), isConstraint, "a taken run id");
          await assert.rejects(insertRun(store, "run_orphan", "usr_none"), isConstraint, "the user must exist");
        }));

      test("list pages newest first with filters, no duplicates, opaque cursor", () =>
        withStore(async (store) => {
          const a = await store.users.create({ username: "a", password_hash: "h", role: "user" });
          const b = await store.users.create({ username: "b", password_hash: "h", role: "user" });
          const statuses: RunStatus[] = ["queued", "running", "completed"];
          const base = Date.parse("2030-01-01T00:00:00.000Z");
          // 60 runs; every 3 share a created_at so the id tie-break matters.
          for (let i = 0; i < 60; i++) {
            const created_at = new Date(base + Math.floor(i / 3) * 1000).toISOString();
            const id = `run_${String(i).padStart(3, "0")}`;
            await insertRun(store, id, i % 2 === 0 ? a.id : b.id, { created_at, status: statuses[i % 3], agent: i % 4 < 2 ? "shell" : "codex" });
          }
          const collect = async (q: { user_id?: string; status?: RunStatus; agent?: string }, limit: number): Promise<RunRow[]> => {
            const all: RunRow[] = [];
            let cursor: string | undefined;
            for (let pages = 0; pages < 100; pages++) {
              const page = await store.runs.list({ ...q, cursor, limit });
              assert.ok(page.runs.length <= limit);
              all.push(...page.runs);
              if (page.next_cursor === null) return all;
              assert.match(page.next_cursor, /^[A-Za-z0-9_-]+$/);
              cursor = page.next_cursor;
            }
            assert.fail("pagination did not end");
          };
          const newestFirst = (rows: RunRow[]) =>
            [...rows].sort((x, y) => (x.created_at === y.created_at ? (x.id < y.id ? 1 : -1) : x.created_at < y.created_at ? 1 : -1));

          const everything = await collect({}, 7);
          assert.equal(everything.length, 60);
          assert.equal(new Set(everything.map((r) => r.id)).size, 60);
          assert.deepEqual(everything.map((r) => r.id), newestFirst(everything).map((r) => r.id));
          assert.equal(everything[0]?.id, "run_059");

          const filtered = await collect({ user_id: a.id, status: "queued", agent: "shell" }, 2);
          const expected = newestFirst(everything.filter((r) => r.user_id === a.id && r.status === "queued" && r.agent === "shell"));
          assert.ok(expected.length > 2, "the filter must need several pages");
          assert.deepEqual(filtered.map((r) => r.id), expected.map((r) => r.id));

          const exact = await store.runs.list({ agent: "codex", limit: 30 });
          assert.equal(exact.runs.length, 30);
          assert.equal(exact.next_cursor, null, "a page that ends exactly at the last run has no next cursor");
          assert.deepEqual(await store.runs.list({ status: "failed", limit: 5 }), { runs: [], next_cursor: null });
          await assert.rejects(store.runs.list({ cursor: "not-a-cursor", limit: 5 }), (err) => err instanceof ValidationError && err.code === "invalid_cursor");
          const notPair = Buffer.from(JSON.stringify(["2030-01-01T00:00:00.000Z", 5])).toString("base64url");
          await assert.rejects(store.runs.list({ cursor: notPair, limit: 5 }), (err) => err instanceof ValidationError && err.code === "invalid_cursor");
          const page = await store.runs.list({ limit: 2 });
          assert.deepEqual(JSON.parse(Buffer.from(page.next_cursor!, "base64url").toString("utf8")), [page.runs[1]!.created_at, page.runs[1]!.id], "cursor: base64url JSON [created_at, id]");
        }));

      test("ties on created_at are broken by id compared as bytes, whatever the database's collation", () =>
        withStore(async (store) => {
          const u = await store.users.create({ username: "u", password_hash: "h", role: "user" });
          const at = "2030-01-01T00:00:00.000Z";
          const ids = ["run_a", "run_B", "run-c", "runZ", "run_10", "run_9", "RUN_x", "run_ä"];
          for (const id of ids) await insertRun(store, id, u.id, { created_at: at });
          const bytes = [...ids].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))).reverse();
          assert.deepEqual((await store.runs.list({ limit: 100 })).runs.map((r) => r.id), bytes);
          const paged: string[] = [];
          let cursor: string | undefined;
          do {
            const page = await store.runs.list({ limit: 1, cursor });
            paged.push(...page.runs.map((r) => r.id));
            cursor = page.next_cursor ?? undefined;
          } while (cursor);
          assert.deepEqual(paged, bytes, "the cursor compares the same way");
          assert.deepEqual((await store.runs.listNonTerminal()).map((r) => r.id), [...bytes].reverse(), "oldest first, ids as bytes");
        }));

      test("listNonTerminal and delete (with its events)", () =>
        withStore(async (store) => {
          const u = await store.users.create({ username: "u", password_hash: "h", role: "user" });
          await insertRun(store, "run_q", u.id, { status: "queued" });
          await insertRun(store, "run_r", u.id, { status: "running" });
          await insertRun(store, "run_c", u.id, { status: "completed" });
          await insertRun(store, "run_t", u.id, { status: "timed_out" });
          assert.deepEqual((await store.runs.listNonTerminal()).map((r) => r.id).sort(), ["run_q", "run_r"]);
          await store.events.insertBatch([logEvent("run_r", 1), logEvent("run_r", 2), logEvent("run_c", 1)]);
          assert.equal(await store.runs.delete("run_r"), true);
          assert.equal(await store.runs.delete("run_r"), false);
          assert.equal(await store.runs.get("run_r"), undefined);
          assert.equal(await store.events.lastId("run_r"), 0);
          assert.deepEqual(await store.events.list("run_r", 0, 10), []);
          assert.equal(await store.events.lastId("run_c"), 1);
        }));
    });

    describe("events", () => {
      test("insertBatch across several runs; list ascending after N with a limit", () =>
        withStore(async (store) => {
          const u = await store.users.create({ username: "u", password_hash: "h", role: "user" });
          await insertRun(store, "run_x", u.id);
          await insertRun(store, "run_y", u.id);
          const batch: RunEvent[] = [];
          for (let i = 1; i <= 5; i++) batch.push(logEvent("run_x", i), logEvent("run_y", i));
          batch.push({ id: 6, run_id: "run_x", ts: new Date().toISOString(), type: "tool.call", data: { call_id: "c1", name: "bash", input: { cmd: "ls", n: [1, 2] } } });
          await store.events.insertBatch(batch);
          await store.events.insertBatch([]);

          assert.deepEqual((await store.events.list("run_x", 0, 100)).map((e) => e.id), [1, 2, 3, 4, 5, 6]);
          assert.deepEqual((await store.events.list("run_x", 2, 2)).map((e) => e.id), [3, 4]);
          assert.deepEqual(await store.events.list("run_y", 5, 10), []);
          assert.deepEqual(await store.events.list("run_x", 0, 0), []);
          const last = (await store.events.list("run_x", 5, 1))[0]!;
          assert.deepEqual(last, batch.at(-1));
          assert.equal(await store.events.lastId("run_x"), 6);
          assert.equal(await store.events.lastId("run_y"), 5);
          assert.equal(await store.events.lastId("run_none"), 0);
          assert.equal((await store.runs.get("run_x"))!.last_event_id, 6);
          assert.equal((await store.runs.get("run_y"))!.last_event_id, 5);
          assert.equal(await store.events.countByType("run_x", "log"), 5);
          assert.equal(await store.events.countByType("run_x", "tool.call"), 1);
          assert.equal(await store.events.countByType("run_y", "tool.call"), 0);
        }));

      test("event data comes back as the exact JSON text stored (key order, escapes, non-ASCII)", () =>
        withStore(async (store) => {
          const u = await store.users.create({ username: "u", password_hash: "h", role: "user" });
          await insertRun(store, "run_j", u.id);
          const text = "nul\u0000 tab\t quote' dq\" backslash\\ emoji 😀 ü \u2028";
          const e: RunEvent = { id: 1, run_id: "run_j", ts: "2030-01-01T00:00:00.000Z", type: "tool.call", data: { name: "z", call_id: "a", input: { z: 1, a: [text, null, 1.5, 1e21, { y: true, b: false }] } } };
          await store.events.insertBatch([e]);
          const [got] = await store.events.list("run_j", 0, 10);
          assert.deepEqual(got, e);
          assert.equal(dataJsonOf(got!), JSON.stringify(e.data));
          assert.equal(JSON.stringify(got!.data), JSON.stringify(e.data), "key order kept");
          const [appended] = await store.events.append("run_j", [{ ts: e.ts, type: "log", data: { stream: "stderr", text } }]);
          assert.equal(dataJsonOf((await store.events.list("run_j", 1, 10))[0]!), dataJsonOf(appended!));
        }));

      test("insertBatch is one transaction: a duplicate id stores nothing of the batch", () =>
        withStore(async (store) => {
          const u = await store.users.create({ username: "u", password_hash: "h", role: "user" });
          await insertRun(store, "run_x", u.id);
          await store.events.insertBatch([logEvent("run_x", 1)]);
          await assert.rejects(store.events.insertBatch([logEvent("run_x", 2), logEvent("run_x", 3), logEvent("run_x", 1, "again")]), isConstraint);
          assert.deepEqual((await store.events.list("run_x", 0, 10)).map((e) => e.id), [1]);
          assert.equal((await store.runs.get("run_x"))!.last_event_id, 1);
          await assert.rejects(store.events.insertBatch([logEvent("run_unknown", 1)]), (err) => isConstraintViolation(err) && /foreign key/i.test((err as Error).message));
          await assert.rejects(store.events.insertBatch([logEvent("run_x", 2), logEvent("run_unknown", 1)]), isConstraint);
          assert.equal(await store.events.lastId("run_x"), 1, "nothing of a batch with a missing run");
          assert.equal(isConstraintViolation(new Error("boom")), false);
          assert.equal(isConstraintViolation(undefined), false);
        }));

      test("append numbers after last_event_id without gaps; NotFoundError for a missing run", () =>
        withStore(async (store) => {
          const u = await store.users.create({ username: "u", password_hash: "h", role: "user" });
          await insertRun(store, "run_a", u.id);
          await insertRun(store, "run_b", u.id);
          const first = await store.events.append("run_a", [logDraft("one"), logDraft("two")]);
          assert.deepEqual(first.map((e) => [e.id, e.run_id, e.type]), [[1, "run_a", "log"], [2, "run_a", "log"]]);
          assert.deepEqual(first.map((e) => e.data), [{ stream: "stdout", text: "one" }, { stream: "stdout", text: "two" }]);
          assert.deepEqual(await store.events.list("run_a", 0, 10), first, "resolves the stored events");
          assert.equal((await store.runs.get("run_a"))!.last_event_id, 2);
          assert.deepEqual(await store.events.append("run_a", []), []);
          await store.events.insertBatch([logEvent("run_a", 3)]);
          const more = await store.events.append("run_a", [logDraft("four")]);
          assert.deepEqual(more.map((e) => e.id), [4], "after caller-numbered events");
          assert.deepEqual((await store.events.append("run_b", [logDraft("b")])).map((e) => e.id), [1], "numbered per run");
          await assert.rejects(store.events.append("run_none", [logDraft("x")]), NotFoundError);
          assert.equal(await store.events.lastId("run_none"), 0);

          const concurrent = await Promise.all(Array.from({ length: 20 }, (_, i) => store.events.append("run_a", Array.from({ length: (i % 3) + 1 }, () => logDraft(`c${i}`)))));
          const ids = concurrent.flat().map((e) => e.id).sort((x, y) => x - y);
          assert.deepEqual(ids, Array.from({ length: ids.length }, (_, i) => i + 5), "concurrent appends: unique, gap-free");
          for (const group of concurrent) assert.deepEqual(group.map((e) => e.id), group.map((_, i) => group[0]!.id + i), "one append's events are consecutive");
          const listed = await store.events.list("run_a", 0, 1000);
          assert.deepEqual(listed.map((e) => e.id), Array.from({ length: listed.length }, (_, i) => i + 1));
          assert.equal((await store.runs.get("run_a"))!.last_event_id, listed.length);
          assert.equal(await store.events.lastId("run_a"), listed.length);
        }));

      test("append inside a transaction: a rollback gives its numbers back", () =>
        withStore(async (store) => {
          const u = await store.users.create({ username: "u", password_hash: "h", role: "user" });
          await insertRun(store, "run_a", u.id);
          await store.events.append("run_a", [logDraft("1")]);
          const boom = new Error("boom");
          await assert.rejects(
            store.transaction(async (tx) => {
              assert.deepEqual((await tx.events.append("run_a", [logDraft("2"), logDraft("3")])).map((e) => e.id), [2, 3]);
              assert.equal(await tx.events.lastId("run_a"), 3, "visible inside the transaction");
              throw boom;
            }),
            (err) => err === boom,
          );
          assert.equal((await store.runs.get("run_a"))!.last_event_id, 1);
          assert.deepEqual((await store.events.append("run_a", [logDraft("2 again")])).map((e) => e.id), [2]);
          const inTx = await store.transaction(async (tx) => {
            const a = await tx.events.append("run_a", [logDraft("3")]);
            const b = await tx.events.append("run_a", [logDraft("4"), logDraft("5")]);
            return [...a, ...b].map((e) => e.id);
          });
          assert.deepEqual(inTx, [3, 4, 5]);
          assert.deepEqual((await store.events.list("run_a", 0, 10)).map((e) => e.data), ["1", "2 again", "3", "4", "5"].map((text) => ({ stream: "stdout", text })));
          await assert.rejects(store.transaction((tx) => tx.events.append("run_none", [logDraft("x")])), NotFoundError);
        }));
    });

    describe("transactions", () => {
      test("commit together or not at all; the rejection is passed on", () =>
        withStore(async (store) => {
          const u = await store.users.create({ username: "u", password_hash: "h", role: "user" });
          const boom = new Error("boom");
          await assert.rejects(
            store.transaction(async (tx) => {
              await insertRun(tx, "run_tx", u.id);
              await tx.events.insertBatch([logEvent("run_tx", 1)]);
              await tx.users.create({ username: "in_tx", password_hash: "h", role: "user" });
              throw boom;
            }),
            (err) => err === boom,
          );
          assert.equal(await store.runs.get("run_tx"), undefined);
          assert.equal(await store.users.getByUsername("in_tx"), undefined);
          assert.equal(await store.users.count(), 1);
          const n = await store.transaction(async (tx) => {
            await insertRun(tx, "run_tx", u.id);
            await tx.events.insertBatch([logEvent("run_tx", 1)]);
            return tx.events.lastId("run_tx");
          });
          assert.equal(n, 1);
          assert.equal(await store.events.lastId("run_tx"), 1);
        }));

      test("a failing write inside a transaction rejects it whole (with a constraint violation)", () =>
        withStore(async (store) => {
          const u = await store.users.create({ username: "u", password_hash: "h", role: "user" });
          await insertRun(store, "run_x", u.id);
          await store.events.insertBatch([logEvent("run_x", 1)]);
          await assert.rejects(
            store.transaction(async (tx) => {
              await tx.runs.update("run_x", { status: "running" });
              await tx.events.insertBatch([logEvent("run_x", 2), logEvent("run_x", 1, "again")]);
            }),
            isConstraint,
          );
          assert.equal((await store.runs.get("run_x"))!.status, "queued");
          assert.equal(await store.events.lastId("run_x"), 1);
          await assert.rejects(
            store.transaction((tx) => tx.events.insertBatch([logEvent("run_gone", 1)])),
            isConstraint,
          );
        }));

      test("nested transactions are savepoints: an inner failure rolls back only its own writes", () =>
        withStore(async (store) => {
          const u = await store.users.create({ username: "u", password_hash: "h", role: "user" });
          const inner = new Error("inner");
          const out = await store.transaction(async (tx) => {
            await insertRun(tx, "run_outer", u.id);
            await tx.events.insertBatch([logEvent("run_outer", 1)]);
            await assert.rejects(
              tx.transaction(async (t2) => {
                await insertRun(t2, "run_inner", u.id);
                await t2.events.append("run_outer", [logDraft("inner")]);
                await t2.runs.update("run_outer", { status: "running" });
                throw inner;
              }),
              (err) => err === inner,
            );
            // A constraint error inside a savepoint also leaves the outer transaction usable.
            await assert.rejects(tx.transaction((t2) => t2.events.insertBatch([logEvent("run_outer", 1, "dup")])), isConstraint);
            const kept = await tx.transaction(async (t2) => {
              const deeper = await t2.transaction(async (t3) => (await t3.events.append("run_outer", [logDraft("kept")]))[0]!.id);
              await assert.rejects(t2.transaction(async (t3) => {
                await t3.events.append("run_outer", [logDraft("dropped")]);
                throw inner;
              }));
              return deeper;
            });
            assert.equal(kept, 2);
            return tx.events.lastId("run_outer");
          });
          assert.equal(out, 2);
          assert.equal(await store.runs.get("run_inner"), undefined);
          const outer = (await store.runs.get("run_outer"))!;
          assert.equal(outer.status, "queued");
          assert.equal(outer.last_event_id, 2);
          assert.deepEqual((await store.events.list("run_outer", 0, 10)).map((e) => e.data), [{ stream: "stdout", text: "line 1" }, { stream: "stdout", text: "kept" }]);

          // A savepoint that committed is undone with the transaction around it.
          await assert.rejects(
            store.transaction(async (tx) => {
              await tx.transaction(async (t2) => void (await insertRun(t2, "run_sp", u.id)));
              assert.ok(await tx.runs.get("run_sp"));
              throw inner;
            }),
          );
          assert.equal(await store.runs.get("run_sp"), undefined);
        }));

      test("close is safe to call twice", async () => {
        const store = await open();
        await store.users.create({ username: "u", password_hash: "h", role: "user" });
        await store.close();
        await store.close();
        await close(store);
      });
    });

    describe("webhooks", () => {
      test("create, get, list oldest first, delete only own (with deliveries)", () =>
        withStore(async (store) => {
          const a = await store.users.create({ username: "a", password_hash: "h", role: "user" });
          const b = await store.users.create({ username: "b", password_hash: "h", role: "user" });
          const events = ["run.completed", "permission.request"];
          const w = await store.webhooks.create({ user_id: a.id, url: "https://example.test/hook", events, secret: "s3cret" });
          assert.match(w.id, /^wh_[0-9A-Z]{26}$/);
          assert.deepEqual(w.events, events);
          assert.notEqual(w.events, events, "a copy");
          assert.deepEqual(await store.webhooks.get(w.id), w);
          assert.equal(await store.webhooks.get("wh_none"), undefined);
          const made = [w.id];
          for (let i = 0; i < 5; i++) made.push((await store.webhooks.create({ user_id: a.id, url: `https://example.test/${i}`, events: [], secret: "s" })).id);
          assert.deepEqual((await store.webhooks.listByUser(a.id)).map((h) => h.id), made);
          assert.deepEqual(await store.webhooks.listByUser(b.id), []);
          const d = await store.webhooks.insertDelivery({ webhook_id: w.id, run_id: "run_x", event_type: "run.completed", event_id: 9, status: "pending" });
          assert.equal(await store.webhooks.delete(w.id, b.id), false);
          assert.equal(await store.webhooks.delete(w.id, a.id), true);
          assert.equal(await store.webhooks.delete(w.id, a.id), false);
          assert.equal(await store.webhooks.get(w.id), undefined);
          assert.deepEqual(await store.webhooks.listDeliveries(w.id, 10), []);
          await assert.rejects(store.webhooks.recordAttempt({ delivery_id: d.id, attempt: 1, at: new Date().toISOString(), status_code: 200, error: null, duration_ms: 1 }), isConstraint);
          await assert.rejects(store.webhooks.create({ user_id: "usr_none", url: "https://x.test", events: [], secret: "s" }), isConstraint);
        }));

      test("deliveries: attempts, status updates, newest first, prune, abandon", () =>
        withStore(async (store) => {
          const a = await store.users.create({ username: "a", password_hash: "h", role: "user" });
          const w = await store.webhooks.create({ user_id: a.id, url: "https://example.test/hook", events: ["log"], secret: "s" });
          const other = await store.webhooks.create({ user_id: a.id, url: "https://example.test/other", events: ["log"], secret: "s" });
          // No foreign key on run_id: a delivery outlives its run.
          const d1 = await store.webhooks.insertDelivery({ webhook_id: w.id, run_id: "run_gone", event_type: "run.completed", event_id: 12, status: "pending" });
          assert.match(d1.id, /^whd_[0-9A-Z]{26}$/);
          assert.deepEqual({ ...d1, created_at: undefined, updated_at: undefined }, {
            id: d1.id, webhook_id: w.id, run_id: "run_gone", event_type: "run.completed", event_id: 12, status: "pending", attempts: 0, created_at: undefined, updated_at: undefined,
          });
          assert.equal(d1.created_at, d1.updated_at);
          await store.webhooks.recordAttempt({ delivery_id: d1.id, attempt: 1, at: "2030-01-01T00:00:01.000Z", status_code: 500, error: null, duration_ms: 12 });
          await store.webhooks.recordAttempt({ delivery_id: d1.id, attempt: 2, at: "2030-01-01T00:00:02.000Z", status_code: null, error: "timeout", duration_ms: 5000 });
          await assert.rejects(store.webhooks.recordAttempt({ delivery_id: d1.id, attempt: 2, at: "2030-01-01T00:00:03.000Z", status_code: 200, error: null, duration_ms: 1 }), isConstraint);
          let [got] = await store.webhooks.listDeliveries(w.id, 10);
          assert.equal(got!.attempts, 2);
          assert.equal(got!.updated_at, "2030-01-01T00:00:02.000Z");
          assert.deepEqual(got!.attempt_log, [
            { delivery_id: d1.id, attempt: 1, at: "2030-01-01T00:00:01.000Z", status_code: 500, error: null, duration_ms: 12 },
            { delivery_id: d1.id, attempt: 2, at: "2030-01-01T00:00:02.000Z", status_code: null, error: "timeout", duration_ms: 5000 },
          ]);
          await store.webhooks.updateDelivery(d1.id, { status: "delivered", attempts: 1 });
          [got] = await store.webhooks.listDeliveries(w.id, 10);
          assert.equal(got!.status, "delivered");
          assert.equal(got!.attempts, 2, "attempts never goes down");
          await store.webhooks.updateDelivery(d1.id, { status: "failed", attempts: 5 });
          await store.webhooks.updateDelivery(d1.id, { status: "failed" });
          [got] = await store.webhooks.listDeliveries(w.id, 10);
          assert.deepEqual([got!.status, got!.attempts], ["failed", 5]);
          await assert.rejects(store.webhooks.updateDelivery(d1.id, { status: "bogus" as never }), isConstraint, "status is checked");

          const later: string[] = [d1.id];
          for (let i = 0; i < 4; i++) later.push((await store.webhooks.insertDelivery({ webhook_id: w.id, run_id: "run_x", event_type: "log", event_id: i, status: "pending" })).id);
          await store.webhooks.insertDelivery({ webhook_id: other.id, run_id: "run_x", event_type: "log", event_id: 1, status: "pending" });
          await store.webhooks.recordAttempt({ delivery_id: later[1]!, attempt: 1, at: new Date().toISOString(), status_code: 502, error: null, duration_ms: 3 });
          assert.deepEqual((await store.webhooks.listDeliveries(w.id, 10)).map((d) => d.id), [...later].reverse(), "newest first");
          assert.deepEqual((await store.webhooks.listDeliveries(w.id, 2)).map((d) => d.id), later.slice(-2).reverse());
          assert.equal(await store.webhooks.pruneDeliveries(w.id, 2), 3);
          assert.equal(await store.webhooks.pruneDeliveries(w.id, 2), 0);
          assert.deepEqual((await store.webhooks.listDeliveries(w.id, 10)).map((d) => d.id), later.slice(-2).reverse(), "the newest are kept");
          assert.equal((await store.webhooks.listDeliveries(other.id, 10)).length, 1, "another webhook's deliveries are not pruned");

          assert.equal(await store.webhooks.abandonPending(), 3);
          assert.equal(await store.webhooks.abandonPending(), 0);
          assert.deepEqual((await store.webhooks.listDeliveries(w.id, 10)).map((d) => d.status), ["abandoned", "abandoned"]);
        }));
    });

    describe("batches", () => {
      test("insert, get, the batch's runs in insertion order, its event stream", () =>
        withStore(async (store) => {
          const u = await store.users.create({ username: "u", password_hash: "h", role: "user" });
          const batch = { id: "bat_1", user_id: u.id, created_at: "2030-01-01T00:00:00.000Z" };
          const inserted = await store.batches.insert(batch);
          assert.deepEqual(inserted, batch);
          assert.notEqual(inserted, batch);
          assert.deepEqual(await store.batches.get("bat_1"), batch);
          assert.equal(await store.batches.get("bat_none"), undefined);
          await assert.rejects(store.batches.insert(batch), isConstraint);
          await store.batches.insert({ id: "bat_2", user_id: u.id, created_at: batch.created_at });
          const at = "2030-01-01T00:00:00.000Z";
          for (const id of ["run_c", "run_a", "run_d", "run_b"]) await insertRun(store, id, u.id, { created_at: at, batch_id: id === "run_d" ? "bat_2" : "bat_1" });
          await insertRun(store, "run_loose", u.id);
          await store.runs.update("run_a", { status: "running" });
          assert.deepEqual(await store.batches.runs("bat_1"), [
            { id: "run_c", status: "queued" },
            { id: "run_a", status: "running" },
            { id: "run_b", status: "queued" },
          ]);
          assert.deepEqual(await store.batches.runs("bat_none"), []);
          assert.equal((await store.runs.get("run_a"))!.batch_id, "bat_1");
          assert.deepEqual((await store.runs.list({ batch_id: "bat_1", limit: 10 })).runs.map((r) => r.id), ["run_c", "run_b", "run_a"]);
          await assert.rejects(insertRun(store, "run_nobatch", u.id, { batch_id: "bat_none" }), isConstraint);

          assert.equal(await store.batches.lastEventId("bat_1"), 0);
          const events: BatchEvent[] = [
            { id: 1, batch_id: "bat_1", ts: at, type: "run.status", data: { run_id: "run_a", status: "running", prev: "queued" } },
            { id: 2, batch_id: "bat_1", ts: at, type: "run.status", data: { run_id: "run_c", status: "completed", prev: null } },
            { id: 3, batch_id: "bat_1", ts: at, type: "batch.done", data: { counts: { queued: 0, preparing: 0, running: 0, waiting: 0, completed: 3, failed: 0, cancelled: 0, timed_out: 0 } } },
          ];
          for (const e of events) await store.batches.appendEvent(e);
          await store.batches.appendEvent({ ...events[0]!, batch_id: "bat_2" });
          await assert.rejects(store.batches.appendEvent(events[0]!), isConstraint);
          assert.deepEqual(await store.batches.listEvents("bat_1", 0, 10), events);
          assert.deepEqual(await store.batches.listEvents("bat_1", 1, 1), [events[1]]);
          assert.deepEqual(await store.batches.listEvents("bat_1", 3, 10), []);
          assert.equal(await store.batches.lastEventId("bat_1"), 3);
          assert.equal(await store.batches.lastEventId("bat_2"), 1);

          // Deleting the user takes batches, runs and batch events with it.
          assert.equal(await store.users.delete(u.id), true);
          assert.equal(await store.batches.get("bat_1"), undefined);
          assert.deepEqual(await store.batches.listEvents("bat_1", 0, 10), []);
          assert.equal(await store.runs.get("run_a"), undefined);
        }));
    });

    describe("native sessions", () => {
      test("save creates or replaces model and messages, keeps run and parent; goes with its run", () =>
        withStore(async (store) => {
          const u = await store.users.create({ username: "u", password_hash: "h", role: "user" });
          await insertRun(store, "run_1", u.id);
          await insertRun(store, "run_2", u.id);
          assert.equal(await store.nativeSessions.get("ses_1"), undefined);
          const messages = [{ role: "user", content: "hi 😀" }, { role: "assistant", content: [{ type: "text", text: "hello" }] }];
          await store.nativeSessions.save({ session_id: "ses_1", run_id: "run_1", parent_id: null, model: "openai/gpt-x", messages });
          const first = (await store.nativeSessions.get("ses_1"))!;
          assert.deepEqual({ ...first, updated_at: "" }, { session_id: "ses_1", run_id: "run_1", parent_id: null, model: "openai/gpt-x", messages, updated_at: "" });
          assert.ok(!Number.isNaN(Date.parse(first.updated_at)));
          const longer = [...messages, { role: "user", content: "more" }];
          await store.nativeSessions.save({ session_id: "ses_1", run_id: "run_2", parent_id: "ses_0", model: "anthropic/claude-x", messages_json: JSON.stringify(longer) });
          const second = (await store.nativeSessions.get("ses_1"))!;
          assert.deepEqual([second.run_id, second.parent_id, second.model, second.messages], ["run_1", null, "anthropic/claude-x", longer]);
          await store.nativeSessions.save({ session_id: "ses_2", run_id: "run_2", parent_id: "ses_1", model: "m/x", messages: [] });
          assert.equal((await store.nativeSessions.get("ses_2"))!.parent_id, "ses_1");
          await assert.rejects(store.nativeSessions.save({ session_id: "ses_3", run_id: "run_none", parent_id: null, model: "m/x", messages: [] }), isConstraint);
          assert.equal(await store.runs.delete("run_1"), true);
          assert.equal(await store.nativeSessions.get("ses_1"), undefined);
          assert.ok(await store.nativeSessions.get("ses_2"));
        }));
    });
  });
}

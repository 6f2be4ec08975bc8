/**
 * Webhook target checks (src/webhooks/ip.ts, target.ts) and signatures
 * (signing.ts): address classification, the host allowlist, DNS answers with
 * internal addresses, and the Stripe-style signature.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { AppError } from "../../src/errors.ts";
import { internalReason, parseIp, sameIp } from "../../src/webhooks/ip.ts";
import { computeSignature, generateWebhookSecret, signatureHeader, verifyWebhookSignature } from "../../src/webhooks/signing.ts";
import { checkWebhookUrl, hostAllowed, resolveWebhookTarget, type LookupAll } from "../../src/webhooks/target.ts";
import { backoffMs } from "../../src/webhooks/dispatcher.ts";
import { loadConfig } from "../../src/config/load.ts";
import os from "node:os";

async function rejectsWith(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  const run = typeof p === "function" ? Promise.resolve().then(p) : p;
  await assert.rejects(run, (err: unknown) => err instanceof AppError && err.status === 400 && err.code === code);
}

describe("ip classification", () => {
  test("parses v4, v6, compressed v6 and embedded dotted quads", () => {
    assert.deepEqual([...parseIp("10.1.2.3")!], [10, 1, 2, 3]);
    assert.deepEqual([...parseIp("::1")!], [...Array(15).fill(0), 1]);
    assert.deepEqual([...parseIp("::ffff:127.0.0.1")!].slice(10), [0xff, 0xff, 127, 0, 0, 1]);
    assert.deepEqual([...parseIp("2001:db8::8a2e:370:7334")!].slice(0, 4), [0x20, 0x01, 0x0d, 0xb8]);
    assert.equal(parseIp("example.com"), null);
    assert.equal(parseIp("fe80::1%eth0"), null);
    assert.ok(sameIp("::1", "0:0:0:0:0:0:0:1"));
    assert.ok(!sameIp("127.0.0.1", "::ffff:127.0.0.1"));
  });

  test("internal addresses are named, public ones are null", () => {
    const internal: Record<string, string> = {
      "127.0.0.1": "loopback",
      "127.255.0.9": "loopback",
      "10.0.0.1": "private",
      "172.16.5.4": "private",
      "172.31.255.255": "private",
      "192.168.1.1": "private",
      "169.254.169.254": "link-local",
      "100.64.0.1": "shared (CGNAT)",
      "0.0.0.0": "unspecified",
      "224.0.0.1": "multicast",
      "255.255.255.255": "reserved",
      "::": "unspecified",
      "::1": "loopback",
      "::ffff:127.0.0.1": "IPv4-mapped",
      "::ffff:7f00:1": "IPv4-mapped",
      "::ffff:8.8.8.8": "IPv4-mapped",
      "fc00::1": "unique-local",
      "fd12:3456::1": "unique-local",
      "fe80::1": "link-local",
      "ff02::1": "multicast",
      "64:ff9b::7f00:1": "NAT64",
      "2002:7f00:1::": "6to4",
      "not-an-ip": "invalid",
    };
    for (const [a, reason] of Object.entries(internal)) assert.equal(internalReason(a), reason, a);
    for (const a of ["8.8.8.8", "93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "2a00:1450:4001::200e"]) assert.equal(internalReason(a), null, a);
  });
});

describe("webhook target checks", () => {
  const policy = { allowed_hosts: ["hooks.example.com", "*.corp.example", "127.0.0.1"], allow_private: false };
  const lookupTo =
    (...addresses: string[]): LookupAll =>
    async () =>
      addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));

  test("the allowlist: exact names, *.suffix for subdomains, IP literals, * for any", () => {
    assert.ok(hostAllowed("hooks.example.com", policy.allowed_hosts));
    assert.ok(hostAllowed("a.b.corp.example", policy.allowed_hosts));
    assert.ok(!hostAllowed("corp.example", policy.allowed_hosts), "*.suffix is for subdomains only");
    assert.ok(!hostAllowed("evilcorp.example", policy.allowed_hosts));
    assert.ok(!hostAllowed("hooks.example.com.evil.net", policy.allowed_hosts));
    assert.ok(hostAllowed("127.0.0.1", policy.allowed_hosts));
    assert.ok(!hostAllowed("127.0.0.2", policy.allowed_hosts));
    assert.ok(hostAllowed("anything.net", ["*"]));
    assert.ok(!hostAllowed("anything.net", []));
  });

  test("URL form: http(s) only, no user info, host listed", async () => {
    await rejectsWith(() => checkWebhookUrl("ftp://hooks.example.com/x", policy), "webhook_url_invalid");
    await rejectsWith(() => checkWebhookUrl("not a url", policy), "webhook_url_invalid");
    await rejectsWith(() => checkWebhookUrl("https://user:pw@hooks.example.com/x", policy), "webhook_url_invalid");
    await rejectsWith(() => checkWebhookUrl("https://other.example.com/x", policy), "webhook_target_not_allowed");
    await rejectsWith(() => checkWebhookUrl("https://hooks.example.com/x", { allowed_hosts: [], allow_private: false }), "webhook_target_not_allowed");
    assert.equal(checkWebhookUrl("https://HOOKS.example.com./x?a=1", policy).hostname, "hooks.example.com");
  });

  test("DNS answers: every address must be public unless allowed; the first is returned", async () => {
    const ok = await resolveWebhookTarget("https://hooks.example.com/in", policy, lookupTo("93.184.216.34", "2606:4700::1"));
    assert.equal(ok.address, "93.184.216.34");
    assert.equal(ok.family, 4);
    assert.equal(ok.hostname, "hooks.example.com");
    await rejectsWith(resolveWebhookTarget("https://hooks.example.com/in", policy, lookupTo("10.0.0.7")), "webhook_target_not_allowed");
    await rejectsWith(resolveWebhookTarget("https://hooks.example.com/in", policy, lookupTo("93.184.216.34", "::ffff:10.0.0.7")), "webhook_target_not_allowed");
    await rejectsWith(resolveWebhookTarget("https://x.corp.example/in", policy, lookupTo("169.254.169.254")), "webhook_target_not_allowed");
    const privateOk = await resolveWebhookTarget("https://x.corp.example/in", { ...policy, allow_private: true }, lookupTo("10.0.0.7"));
    assert.equal(privateOk.address, "10.0.0.7");
    await rejectsWith(resolveWebhookTarget("https://hooks.example.com/in", policy, async () => Promise.reject(Object.assign(new Error("nx"), { code: "ENOTFOUND" }))), "webhook_target_unresolvable");
  });

  test("an IP literal: listed by IP may be private; otherwise refused; never looked up", async () => {
    const noLookup: LookupAll = async () => assert.fail("an IP literal is not looked up");
    assert.equal((await resolveWebhookTarget("http://127.0.0.1:8080/x", policy, noLookup)).address, "127.0.0.1");
    await rejectsWith(resolveWebhookTarget("http://[::1]:8080/x", { allowed_hosts: ["*"], allow_private: false }, noLookup), "webhook_target_not_allowed");
    await rejectsWith(resolveWebhookTarget("http://10.1.1.1/x", { allowed_hosts: ["*"], allow_private: false }, noLookup), "webhook_target_not_allowed");
    assert.equal((await resolveWebhookTarget("http://[::1]:8080/x", { allowed_hosts: ["[::1]"], allow_private: false }, noLookup)).family, 6);
  });
});

describe("webhook signatures", () => {
  test("sign and verify; a changed body, secret or stale timestamp fails", () => {
    const secret = generateWebhookSecret();
    assert.match(secret, /^whsec_[A-Za-z0-9_-]{43}$/);
    const body = JSON.stringify({ id: "whd_1", type: "run.completed" });
    const t = 1_800_000_000;
    const header = signatureHeader(secret, t, body);
    assert.equal(header, `t=${t},v1=${computeSignature(secret, t, body)}`);
    assert.ok(verifyWebhookSignature(secret, header, body, { nowS: t + 10 }));
    assert.ok(!verifyWebhookSignature(secret, header, `${body} `, { nowS: t }));
    assert.ok(!verifyWebhookSignature("whsec_other", header, body, { nowS: t }));
    assert.ok(!verifyWebhookSignature(secret, header, body, { nowS: t + 301 }));
    assert.ok(!verifyWebhookSignature(secret, undefined, body));
    assert.ok(!verifyWebhookSignature(secret, "v1=abc", body));
  });

  test("backoff doubles from the base, is capped, and jitters within the upper half", () => {
    assert.equal(backoffMs(1, 1000, 60_000, () => 0), 500);
    assert.equal(backoffMs(1, 1000, 60_000, () => 1), 1000);
    assert.equal(backoffMs(3, 1000, 60_000, () => 1), 4000);
    assert.equal(backoffMs(20, 1000, 60_000, () => 1), 60_000);
    assert.equal(backoffMs(20, 1000, 60_000, () => 0), 30_000);
  });
});

describe("webhook and permission settings", () => {
  test("defaults, and OPENRUNNER_WEBHOOKS_ALLOWED_HOSTS as a comma list", () => {
    const dflt = loadConfig({ env: {}, cwd: os.tmpdir() });
    assert.deepEqual(dflt.permissions, { default_policy: "ask", timeout_secs: 300, timeout_decision: "reject" });
    assert.deepEqual(dflt.webhooks.allowed_hosts, []);
    assert.equal(dflt.webhooks.allow_private, false);
    const env = loadConfig({ env: { OPENRUNNER_WEBHOOKS_ALLOWED_HOSTS: " hooks.example.com, *.corp.example ,," }, cwd: os.tmpdir() });
    assert.deepEqual(env.webhooks.allowed_hosts, ["hooks.example.com", "*.corp.example"]);
  });
});

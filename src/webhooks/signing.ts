/**
 * Webhook signatures, in the form Stripe uses: the header
 * `X-OpenRunner-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
 * The timestamp inside the signed text lets a receiver refuse replays of an old
 * delivery; {@link verifyWebhookSignature} is what a receiver runs (the tests use it).
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** Header names of a delivery. */
export const WEBHOOK_HEADERS = {
  signature: "X-OpenRunner-Signature",
  event: "X-OpenRunner-Event",
  delivery: "X-OpenRunner-Delivery",
} as const;

/** A new webhook secret: `whsec_` and 32 random bytes, base64url. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString("base64url")}`;
}

/** The hex HMAC-SHA256 of `"<t>.<body>"` under `secret`. `t` in unix seconds. */
export function computeSignature(secret: string, t: number, body: string): string {
  return createHmac("sha256", secret).update(`${t}.${body}`).digest("hex");
}

/** The signature header value for `body` sent at `t` (unix seconds). */
export function signatureHeader(secret: string, t: number, body: string): string {
  return `t=${t},v1=${computeSignature(secret, t, body)}`;
}

/**
 * Checks a signature header against the raw body: any `v1` value matches (in
 * constant time) and `t` is within `toleranceS` of `nowS`.
 * @returns true when valid
 * @example
 * verifyWebhookSignature(secret, req.headers["x-openrunner-signature"], rawBody) // true
 */
export function verifyWebhookSignature(secret: string, header: string | undefined, body: string, opts: { toleranceS?: number; nowS?: number } = {}): boolean {
  if (!header) return false;
  let t: number | undefined;
  const sigs: string[] = [];
  for (const part of header.split(",")) {
    const [k, v] = part.split("=", 2).map((x) => x.trim());
    if (k === "t" && v && /^\d{1,12}$/.test(v)) t = Number(v);
    else if (k === "v1" && v && /^[0-9a-f]{64}$/.test(v)) sigs.push(v);
  }
  if (t === undefined || sigs.length === 0) return false;
  const now = opts.nowS ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - t) > (opts.toleranceS ?? 300)) return false;
  const expected = Buffer.from(computeSignature(secret, t, body), "hex");
  return sigs.some((s) => timingSafeEqual(Buffer.from(s, "hex"), expected));
}

/**
 * Request and response schemas of the webhook API (`/api/webhooks`), shared
 * by the routes (`src/api/routes/webhooks.ts`), the dispatcher and the typed
 * client. Deliveries are signed as `src/webhooks/signing.ts` describes.
 */
import { Type, type Static } from "@sinclair/typebox";

/** The event types a webhook can subscribe to: permission requests and decisions, and the terminal run events. */
export const WEBHOOK_EVENT_TYPES = ["permission.request", "permission.decision", "run.completed", "run.failed", "run.cancelled", "run.timed_out"] as const;
/** One of {@link WEBHOOK_EVENT_TYPES}. */
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** Most webhooks one user may register. */
export const MAX_WEBHOOKS_PER_USER = 25;

const EventType = Type.Union(WEBHOOK_EVENT_TYPES.map((t) => Type.Literal(t)));

/** Body of `POST /api/webhooks`. */
export const CreateWebhookBody = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 2048, description: "http(s) URL; its host must be in the server's webhooks.allowed_hosts" }),
    events: Type.Array(EventType, { minItems: 1, maxItems: WEBHOOK_EVENT_TYPES.length, uniqueItems: true }),
    secret: Type.Optional(Type.String({ minLength: 16, maxLength: 256, description: "HMAC key; generated (`whsec_…`) when absent" })),
  },
  { additionalProperties: false },
);

/** A webhook as listings show it (never its secret). */
export const WebhookView = Type.Object({
  id: Type.String(),
  url: Type.String(),
  events: Type.Array(Type.String()),
  created_at: Type.String({ format: "date-time" }),
});
export const CreatedWebhookResponse = Type.Composite([WebhookView, Type.Object({ secret: Type.String({ description: "signs deliveries; shown once" }) })]);
export const WebhookListResponse = Type.Object({ webhooks: Type.Array(WebhookView) });

export const AttemptView = Type.Object({
  attempt: Type.Integer({ minimum: 1 }),
  at: Type.String({ format: "date-time" }),
  status_code: Type.Union([Type.Integer(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  duration_ms: Type.Integer({ minimum: 0 }),
});
export const DeliveryView = Type.Object({
  id: Type.String({ description: "the `id` of the delivered body and the X-OpenRunner-Delivery header" }),
  run_id: Type.String(),
  event_type: Type.String(),
  event_id: Type.Integer(),
  status: Type.Union(["pending", "delivered", "failed", "dropped", "abandoned"].map((s) => Type.Literal(s))),
  attempts: Type.Array(AttemptView),
  created_at: Type.String({ format: "date-time" }),
  updated_at: Type.String({ format: "date-time" }),
});
export const DeliveryListResponse = Type.Object({ deliveries: Type.Array(DeliveryView) });
export const DeliveriesQuery = Type.Object({ limit: Type.Optional(Type.String({ pattern: "^[0-9]{1,3}$" })) }, { additionalProperties: false });

export type CreateWebhookBody = Static<typeof CreateWebhookBody>;
export type WebhookView = Static<typeof WebhookView>;
export type CreatedWebhookResponse = Static<typeof CreatedWebhookResponse>;
export type DeliveryView = Static<typeof DeliveryView>;
export type DeliveryListResponse = Static<typeof DeliveryListResponse>;

/**
 * The signed-in session: one {@link OpenRunnerClient} for the page's origin,
 * whose JWT (from `POST /api/auth/login`) is kept in `sessionStorage` (this
 * tab only, gone when it closes) and sent as an `Authorization` header,
 * never in a URL.
 */
import { OpenRunnerClient } from "openrunner/client";

const TOKEN_KEY = "openrunner.token";

/** Reads the stored token, if any (storage can be unavailable: then none). */
function storedToken(): string | undefined {
  try {
    return window.sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

/** Creates the page's client, with the token of an earlier sign-in of this tab. */
export function createSessionClient(): OpenRunnerClient {
  return new OpenRunnerClient({ baseUrl: window.location.origin, token: storedToken(), timeoutMs: 30_000 });
}

/** Keeps (or with `undefined` forgets) the token for this tab, and sets it on the client. */
export function saveToken(client: OpenRunnerClient, token: string | undefined): void {
  client.setToken(token);
  try {
    if (token) window.sessionStorage.setItem(TOKEN_KEY, token);
    else window.sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage unavailable: the session lasts as long as the page
  }
}

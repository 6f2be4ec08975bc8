/** The session every page reads: the API client, the signed-in user, and sign-out. */
import { createContext, useContext } from "react";
import type { MeResponse, OpenRunnerClient } from "openrunner/client";

/** What {@link useSession} returns. */
export interface Session {
  client: OpenRunnerClient;
  me: MeResponse;
  /** Forgets the token and shows the sign-in page. */
  signOut: () => void;
}

export const SessionContext = createContext<Session | undefined>(undefined);

/** The signed-in session (only inside the signed-in part of the app). */
export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside a signed-in page");
  return s;
}

/**
 * The dashboard: sign-in, then the navigation and the page of the current
 * path (`/runs`, `/runs/new`, `/runs/:id`, `/agents`, `/keys`, `/users`).
 * A 401 from any call ends the session (back to sign-in).
 */
import { useCallback, useEffect, useMemo, useState } from "react";
import type { MeResponse } from "openrunner/client";
import { SessionContext, type Session } from "./context.ts";
import { describeError, isUnauthorized } from "./errors.ts";
import { Link, navigate, useLocation } from "./router.tsx";
import { createSessionClient, saveToken } from "./session.ts";
import { AgentsPage } from "./pages/agents.tsx";
import { ApiKeysPage } from "./pages/api-keys.tsx";
import { LoginPage } from "./pages/login.tsx";
import { NewRunPage } from "./pages/new-run.tsx";
import { RunPage } from "./pages/run.tsx";
import { RunsPage } from "./pages/runs.tsx";
import { UsersPage } from "./pages/users.tsx";

/** The page for a path. */
function Page({ path }: { path: string }) {
  if (path === "/runs/new") return <NewRunPage />;
  const run = /^\/runs\/([^/]+)$/.exec(path);
  if (run) return <RunPage runId={decodeURIComponent(run[1]!)} />;
  if (path === "/runs") return <RunsPage />;
  if (path === "/agents") return <AgentsPage />;
  if (path === "/keys") return <ApiKeysPage />;
  if (path === "/users") return <UsersPage />;
  return (
    <section>
      <h1>Not found</h1>
      <p>
        No page at <code>{path}</code>. <Link to="/runs">Runs</Link>
      </p>
    </section>
  );
}

const NAV: Array<{ to: string; label: string; admin?: boolean }> = [
  { to: "/runs", label: "Runs" },
  { to: "/runs/new", label: "New run" },
  { to: "/agents", label: "Agents" },
  { to: "/keys", label: "API keys" },
  { to: "/users", label: "Users", admin: true },
];

export function App() {
  const client = useMemo(createSessionClient, []);
  const loc = useLocation();
  const [me, setMe] = useState<MeResponse | null | undefined>(client.token ? undefined : null);
  const [bootError, setBootError] = useState<string>();

  const signOut = useCallback(() => {
    saveToken(client, undefined);
    setMe(null);
  }, [client]);

  useEffect(() => {
    if (me !== undefined) return;
    const ac = new AbortController();
    client.me({ signal: ac.signal }).then(setMe, (err) => {
      if (ac.signal.aborted) return;
      if (isUnauthorized(err)) signOut();
      else setBootError(describeError(err));
    });
    return () => ac.abort();
  }, [client, me, signOut]);

  useEffect(() => {
    if (me && (loc.path === "/" || loc.path === "/login")) navigate("/runs", { replace: true });
  }, [me, loc.path]);

  const session: Session | undefined = useMemo(() => (me ? { client, me, signOut } : undefined), [client, me, signOut]);

  if (me === null) return <LoginPage client={client} onSignedIn={(m) => setMe(m)} />;
  if (!session)
    return (
      <main className="boot" aria-busy={!bootError}>
        {bootError ? <p role="alert">Cannot reach the server: {bootError}</p> : <p>Loading…</p>}
      </main>
    );
  const current = NAV.filter((n) => loc.path === n.to || (n.to === "/runs" && /^\/runs\/(?!new$)/.test(loc.path))).at(-1)?.to;
  return (
    <SessionContext.Provider value={session}>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">OpenRunner</span>
        <nav aria-label="Main">
          <ul>
            {NAV.filter((n) => !n.admin || me!.role === "admin").map((n) => (
              <li key={n.to}>
                <Link to={n.to} aria-current={current === n.to ? "page" : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <span className="who">
          {me!.username}
          {me!.role === "admin" ? <span className="badge">admin</span> : null}
        </span>
        <button type="button" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <Page path={loc.path} />
      </main>
    </SessionContext.Provider>
  );
}

/** Sign in: username and password to `POST /api/auth/login`; the token is kept for this tab only. */
import { useState, type FormEvent } from "react";
import type { MeResponse, OpenRunnerClient } from "openrunner/client";
import { describeError } from "../errors.ts";
import { saveToken } from "../session.ts";

export function LoginPage({ client, onSignedIn }: { client: OpenRunnerClient; onSignedIn: (me: MeResponse) => void }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const res = await client.login({ username, password });
      saveToken(client, res.token);
      onSignedIn(await client.me());
    } catch (err) {
      saveToken(client, undefined);
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="login" id="main">
      <form onSubmit={submit} aria-labelledby="login-title" noValidate>
        <h1 id="login-title">Sign in to OpenRunner</h1>
        <label>
          Username
          <input name="username" autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} required autoFocus />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
        </label>
        {error ? (
          <p role="alert" className="error">
            {error}
          </p>
        ) : null}
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}

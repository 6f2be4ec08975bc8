/** The caller's own API keys (`/api/api-keys`): list, create (the key is shown once), revoke. */
import { useState, type FormEvent } from "react";
import type { CreatedApiKeyResponse } from "openrunner/client";
import { useSession } from "../context.ts";
import { describeError, fieldProblems } from "../errors.ts";
import { formatTime } from "../format.ts";
import { usePoll } from "../use-poll.ts";

export function ApiKeysPage() {
  const { client, signOut } = useSession();
  const { data, error, refresh } = usePoll((signal) => client.listApiKeys({ signal }), () => 30_000, [client], signOut);
  const [name, setName] = useState("");
  const [created, setCreated] = useState<CreatedApiKeyResponse>();
  const [formError, setFormError] = useState<string>();

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(undefined);
    try {
      setCreated(await client.createApiKey({ name }));
      setName("");
      refresh();
    } catch (err) {
      const p = fieldProblems(err).get("/name");
      setFormError(p ? `${p.code} ${p.path}: ${p.message}` : describeError(err));
    }
  };
  const revoke = async (id: string) => {
    try {
      await client.deleteApiKey(id);
      refresh();
    } catch (err) {
      setFormError(describeError(err));
    }
  };

  return (
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">Your API keys</h1>
      <form className="inline" onSubmit={create} noValidate>
        <label>
          Name
          <input name="key-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="ci" aria-invalid={!!formError} aria-describedby={formError ? "key-error" : undefined} />
        </label>
        <button type="submit">Create key</button>
        {formError ? (
          <small id="key-error" className="error" role="alert">
            {formError}
          </small>
        ) : null}
      </form>
      {created ? (
        <div className="once" role="status">
          <p>
            The key <strong>{created.name}</strong>, shown only now: copy it.
          </p>
          <output className="secret" data-testid="new-key">
            {created.key}
          </output>
          <button type="button" onClick={() => setCreated(undefined)}>
            Done
          </button>
        </div>
      ) : null}
      {error ? <p className="error">Could not load: {describeError(error)}</p> : null}
      {data && data.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Prefix</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {data.map((k) => (
              <tr key={k.id}>
                <td>{k.name}</td>
                <td>
                  <code>{k.prefix}…</code>
                </td>
                <td>{formatTime(k.created_at)}</td>
                <td>{formatTime(k.last_used_at)}</td>
                <td>
                  {k.revoked_at ? (
                    <span className="muted">revoked</span>
                  ) : (
                    <button type="button" className="danger" onClick={() => void revoke(k.id)}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : data ? (
        <p>No keys yet.</p>
      ) : null}
    </section>
  );
}

/** Users (admins only, `/api/users`): list, create with a role, delete. */
import { useState, type FormEvent } from "react";
import { useSession } from "../context.ts";
import { describeError, fieldProblems } from "../errors.ts";
import { formatTime } from "../format.ts";
import { usePoll } from "../use-poll.ts";

export function UsersPage() {
  const { client, me, signOut } = useSession();
  const { data, error, refresh } = usePoll((signal) => client.listUsers({ signal }), () => 30_000, [client], signOut);
  const [form, setForm] = useState({ username: "", password: "", role: "user" as "user" | "admin" });
  const [formError, setFormError] = useState<string>();

  if (me.role !== "admin")
    return (
      <section>
        <h1>Users</h1>
        <p>Only administrators manage users.</p>
      </section>
    );

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(undefined);
    try {
      await client.createUser(form);
      setForm({ username: "", password: "", role: "user" });
      refresh();
    } catch (err) {
      const p = [...fieldProblems(err).values()];
      setFormError(p.length > 0 ? p.map((x) => `${x.code} ${x.path}: ${x.message}`).join("; ") : describeError(err));
    }
  };
  const remove = async (id: string, username: string) => {
    if (!window.confirm(`Delete ${username} with their keys, runs and events?`)) return;
    try {
      await client.deleteUser(id);
      refresh();
    } catch (err) {
      setFormError(describeError(err));
    }
  };

  return (
    <section aria-labelledby="users-title">
      <h1 id="users-title">Users</h1>
      <form className="inline" onSubmit={create} noValidate>
        <label>
          Username
          <input name="new-username" value={form.username} onChange={(e) => setForm({ ...form, username: e.target.value })} autoComplete="off" />
        </label>
        <label>
          Password
          <input name="new-password" type="password" value={form.password} onChange={(e) => setForm({ ...form, password: e.target.value })} autoComplete="new-password" />
        </label>
        <label>
          Role
          <select name="new-role" value={form.role} onChange={(e) => setForm({ ...form, role: e.target.value as "user" | "admin" })}>
            <option value="user">user</option>
            <option value="admin">admin</option>
          </select>
        </label>
        <button type="submit">Create user</button>
        {formError ? (
          <small className="error" role="alert">
            {formError}
          </small>
        ) : null}
      </form>
      {error ? <p className="error">Could not load: {describeError(error)}</p> : null}
      {data ? (
        <table>
          <thead>
            <tr>
              <th scope="col">User</th>
              <th scope="col">Role</th>
              <th scope="col">Id</th>
              <th scope="col">Created</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {data.map((u) => (
              <tr key={u.id}>
                <td>{u.username}</td>
                <td>{u.role}</td>
                <td>
                  <code>{u.id}</code>
                </td>
                <td>{formatTime(u.created_at)}</td>
                <td>
                  {u.id === me.id ? (
                    <span className="muted">you</span>
                  ) : (
                    <button type="button" className="danger" onClick={() => void remove(u.id, u.username)}>
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

// The JSON API with the session cookie. State-changing requests carry the session's CSRF token.

export const session = { csrf: null, role: null, projectName: null };

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onSignedOut = () => {};

/** Called when the server answers 401: the session ended. */
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = { accept: "application/json" };
  if (method !== "GET") {
    headers["x-csrf-token"] = session.csrf || "";
  }
  if (body !== undefined) {
    headers["content-type"] = "application/json";
  }
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    // `{"error": {"message"}}`, or `{"error": "text"}`.
    const error = data && data.error;
    const message = typeof error === "string" ? error : error && error.message ? error.message : `HTTP ${response.status}`;
    if (response.status === 401 && !path.startsWith("/ui/")) onSignedOut();
    throw new ApiError(response.status, message);
  }
  return data;
}

function remember(data) {
  session.csrf = data.csrf_token;
  session.role = data.role;
  session.projectName = data.project_name;
}

/** Restores the session of a reloaded page; false when not signed in. */
export async function restoreSession() {
  try {
    remember(await api("/ui/session"));
    return true;
  } catch (error) {
    if (error.status === 401) return false;
    throw error;
  }
}

export async function signIn(token) {
  remember(await api("/ui/login", { method: "POST", body: { token } }));
}

export async function signOut() {
  try {
    await api("/ui/logout", { method: "POST" });
  } finally {
    session.csrf = session.role = session.projectName = null;
  }
}

/** Query string from an object, leaving out empty values. */
export function query(parameters) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(parameters)) {
    if (value !== null && value !== undefined && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** RFC 3339 of `now - seconds`. */
export function ago(seconds) {
  return new Date(Date.now() - seconds * 1000).toISOString();
}

/** The time ranges the pickers offer: label, seconds, bucket for charts. */
export const RANGES = [
  { id: "1h", label: "Last hour", seconds: 3600, bucket: "1m" },
  { id: "6h", label: "Last 6 hours", seconds: 6 * 3600, bucket: "5m" },
  { id: "24h", label: "Last 24 hours", seconds: 86400, bucket: "30m" },
  { id: "7d", label: "Last 7 days", seconds: 7 * 86400, bucket: "6h" },
  { id: "30d", label: "Last 30 days", seconds: 30 * 86400, bucket: "1d" },
];

/** A view's fragment with its parameters: `#/traces?filter=…`. Only null and undefined are left out. */
export function viewHash(view, parameters = {}) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(parameters)) {
    if (value !== null && value !== undefined) search.set(name, value);
  }
  const text = search.toString();
  return `#/${view}${text ? `?${text}` : ""}`;
}

/**
 * Keeps a view's parameters in the URL, so that a reload or a link shows the same thing and Back
 * returns to the previous ones: a new history entry, without the re-render of a hash change.
 */
export function keepInUrl(view, parameters) {
  const hash = viewHash(view, parameters);
  if (location.hash !== hash) history.pushState(null, "", hash);
}

/** The names of the trace context of the filter language (SPEC §7), suggested while typing. */
const TRACE_FIELDS = [
  "status", "duration_ms", "total_cost", "total_token_count", "prompt_token_count",
  "completion_token_count", "llm_call_count", "tool_call_count", "tool_call_error_count", "user_id",
  "session_id", "pipeline_id", "service_name", "root_span_name", "input", "output", "span_count",
  "model", "tags", 'HasTag("', 'metadata["', 'scores["', 'span.attributes["',
  'span.resource.attributes["', "span.name", "span.status", "span.duration_ms",
];

/** The names of the span context (`GET /api/v1/spans?filter=`). */
const SPAN_FIELDS = [
  "name", "kind", "status", "duration_ms", "service_name", 'attributes["', 'resource.attributes["',
  "llm.model", "llm.provider", "llm.operation", "llm.prompt_tokens", "llm.completion_tokens",
  "llm.cost", "llm != nil",
];

/**
 * What to suggest in a filter of `context` ("trace" or "span"): the language's names, and the
 * attribute, metadata and score keys the project has seen (`GET /api/v1/filter/keys`). Without
 * that answer, the language's names alone.
 */
export async function filterSuggestions(context) {
  const keys = await api("/api/v1/filter/keys").catch(() => ({}));
  const quoted = (prefix, names) => (Array.isArray(names) ? names : []).map((name) => `${prefix}[${JSON.stringify(String(name))}]`);
  const names = context === "span"
    ? [...SPAN_FIELDS, ...(keys.span_fields || []), ...quoted("attributes", keys.attributes),
      ...quoted("resource.attributes", keys.resource_attributes)]
    : [...TRACE_FIELDS, ...(keys.trace_fields || []), ...quoted("span.attributes", keys.attributes),
      ...quoted("span.resource.attributes", keys.resource_attributes), ...quoted("metadata", keys.metadata),
      ...quoted("scores", keys.scores)];
  // The server writes a path that takes a key as `metadata["…"]`: suggested as its beginning.
  return [...new Set(names.map((name) => String(name).replace('["…"]', '["')))];
}

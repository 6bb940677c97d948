// The public REST API v1, called with the operator's key. The key lives in
// sessionStorage only: gone when the tab closes, never in a cookie or a URL.
const KEY = "ese.apiKey";

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || [];
  }
}

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set(key) { sessionStorage.setItem(KEY, key); },
  clear() { sessionStorage.removeItem(KEY); },
};

let onUnauthorized = () => {};
export function whenUnauthorized(handler) { onUnauthorized = handler; }

function describe(body, status) {
  const error = body && body.error;
  if (!error) return new ApiError(status, "http_" + status, `The API answered ${status}.`);
  let message = error.message || error.code;
  const details = (error.details || [])
    .map((d) =>
      d.error
        ? [d.field || d.path, d.error].filter(Boolean).join(": ")
        : Object.entries(d).map(([k, v]) => `${k.replace(/_/g, " ")}: ${v}`).join(", "),
    )
    .filter(Boolean);
  const news = details.filter((d) => !message.includes(d.split(": ").pop()));
  if (news.length) message += " (" + news.join("; ") + ")";
  return new ApiError(status, error.code, message, error.details);
}

// One call: JSON in and out; any other body (a file) is sent as is.
export async function api(method, path, { json, body, contentType, query, key } = {}) {
  const headers = { Authorization: "Bearer " + (key || session.key || "") };
  let payload = body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(json);
  } else if (contentType) {
    headers["Content-Type"] = contentType;
  }
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") params.set(k, v);
    const text = params.toString();
    if (text) url += "?" + text;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body: payload, credentials: "same-origin", cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, "network", "The API could not be reached: " + err.message);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!response.ok) {
    const error = describe(data, response.status);
    if (response.status === 401 && !key) onUnauthorized(error);
    throw error;
  }
  return data;
}

export const phonePath = (phone) => encodeURIComponent(phone.trim());

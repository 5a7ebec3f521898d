/**
 * The session cookie: `__Host-gh_session` when secure (which forces `Secure`, `Path=/` and no
 * `Domain`), `gh_session` on plain-HTTP development; always `HttpOnly` and `SameSite=Lax`.
 */
export interface SessionCookieOptions {
  /** `false` only for plain-HTTP development. Default true. */
  readonly secure?: boolean;
}

export function sessionCookieName(secure: boolean): string {
  return secure ? '__Host-gh_session' : 'gh_session';
}

/** `Set-Cookie` for a session token, living as long as the session can (its absolute expiry). */
export function sessionCookie(token: string, expiresAtMs: number, secure: boolean): string {
  const maxAgeSeconds = Math.max(0, Math.floor((expiresAtMs - Date.now()) / 1000));
  return [
    `${sessionCookieName(secure)}=${token}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Lax',
    `Max-Age=${String(maxAgeSeconds)}`,
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

/** `Set-Cookie` that removes the session cookie. */
export function clearedSessionCookie(secure: boolean): string {
  return [
    `${sessionCookieName(secure)}=`,
    'Path=/',
    'HttpOnly',
    'SameSite=Lax',
    'Max-Age=0',
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

/**
 * The value of cookie `name` in a `Cookie` header, or undefined. The first occurrence wins;
 * values are taken as sent (session tokens are base64url and need no decoding).
 */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header || header.length > 16_384) return undefined;
  for (const part of header.split(';')) {
    const separator = part.indexOf('=');
    if (separator === -1) continue;
    if (part.slice(0, separator).trim() === name) return part.slice(separator + 1).trim();
  }
  return undefined;
}

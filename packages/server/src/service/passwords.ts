/**
 * Passwords: Argon2id (the OWASP-recommended parameters of @node-rs/argon2: 19 MiB, 2 passes),
 * and a dummy hash to verify against for unknown emails, so a sign-in takes as long whether or
 * not the account exists.
 */
import { hash, verify } from '@node-rs/argon2';

/** Passwords shorter than this are refused at sign-up. */
export const MIN_PASSWORD_LENGTH = 12;
/** Longer inputs are refused before hashing: hashing megabytes is a denial of service. */
export const MAX_PASSWORD_LENGTH = 1024;

/** Argon2id: @node-rs/argon2's default algorithm (its enum is const, so it is not named here). */
export function hashPassword(password: string): Promise<string> {
  return hash(password);
}

export class PasswordVerifier {
  private dummy: Promise<string> | undefined;

  /** True when `password` matches `passwordHash`; with no hash, verifies against a dummy and returns false. */
  async verify(passwordHash: string | null, password: string): Promise<boolean> {
    if (passwordHash === null) {
      this.dummy ??= hashPassword("gatehouse dummy password, never anyone's");
      await verify(await this.dummy, password).catch(() => false);
      return false;
    }
    try {
      return await verify(passwordHash, password);
    } catch {
      return false;
    }
  }

  /** Computes the dummy hash ahead of the first sign-in, so that one is not faster. */
  async warmUp(): Promise<void> {
    this.dummy ??= hashPassword("gatehouse dummy password, never anyone's");
    await this.dummy;
  }
}

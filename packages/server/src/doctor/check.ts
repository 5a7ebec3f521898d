/**
 * What a check is (an id, a title and what it runs) and how one runs: every error a check throws
 * becomes its result, a refused command a `needs-rights` result naming the read-only auditor user
 * that could run it.
 */
import { CommandRefusedError, errorText } from './errors.js';
import type { NodeSession } from './node-session.js';
import type { DoctorCheck, Outcome } from './report.js';

/**
 * A read-only ACL user that can run every check. One line for an ACL file; the same rules
 * work with `ACL SETUSER gh-auditor on >PASSWORD ...`.
 */
export const AUDITOR_ACL_LINE =
  'user gh-auditor on >PASSWORD ~* &* -@all +info +config|get +acl|whoami +acl|list +acl|getuser +acl|dryrun +cluster|info +cluster|nodes +scan +pttl +type +ping';

const AUDITOR_FIX = `run the doctor as a read-only auditor ACL user; add this line to the ACL file (or the same rules with ACL SETUSER): ${AUDITOR_ACL_LINE}`;

/** Everything a per-server check may use. */
export interface NodeContext {
  readonly node: NodeSession;
  readonly keyPrefix: string;
  /** The ACL user the app logs in as, when it is not the audit user. */
  readonly appUser: string | undefined;
  readonly sampleKeys: number;
  readonly timeoutMs: number;
}

/** A check: an id for machines, a title for people, and what it does. */
export interface CheckDefinition<C> {
  readonly id: string;
  readonly title: string;
  readonly run: (context: C) => Promise<Outcome>;
}

/** What a refused command means for a check: it was not audited, and how to change that. */
export function refusedOutcome(error: CommandRefusedError): Outcome {
  return error.kind === 'not-permitted'
    ? {
        status: 'needs-rights',
        reason: `not audited: the ACL user may not run ${error.command} (NOPERM)`,
        fix: AUDITOR_FIX,
      }
    : {
        status: 'needs-rights',
        reason: `not audited: ${error.command} is unknown or disabled on this server (renamed with rename-command, or an older Redis)`,
        fix: `make ${error.command} available to the audit, or ${AUDITOR_FIX}`,
      };
}

/** Runs one check; every error it throws is turned into its result, never passed on. */
export async function runCheck<C>(definition: CheckDefinition<C>, context: C): Promise<DoctorCheck> {
  let outcome: Outcome;
  try {
    outcome = await definition.run(context);
  } catch (error) {
    outcome =
      error instanceof CommandRefusedError
        ? refusedOutcome(error)
        : {
            status: 'warn',
            reason: `could not complete the check: ${errorText(error)}`,
            fix: 'run the doctor again; if it persists, check the server log and the network',
          };
  }
  return {
    id: definition.id,
    title: definition.title,
    status: outcome.status,
    reason: outcome.reason,
    ...(outcome.fix === undefined ? {} : { fix: outcome.fix }),
  };
}

/**
 * `first()`, or `second()` when the first command is refused; when both are refused, one
 * refusal naming both commands.
 */
export async function eitherOf<T>(first: () => Promise<T>, second: () => Promise<T>): Promise<T> {
  try {
    return await first();
  } catch (error) {
    if (!(error instanceof CommandRefusedError)) throw error;
    try {
      return await second();
    } catch (again) {
      if (!(again instanceof CommandRefusedError)) throw again;
      const kind = error.kind === 'unknown' && again.kind === 'unknown' ? 'unknown' : 'not-permitted';
      throw new CommandRefusedError(`${error.command} or ${again.command}`, kind, again.message);
    }
  }
}

export function pass(reason: string): Outcome {
  return { status: 'pass', reason };
}

/** For a list that cannot be empty: there is always a node to audit. */
export function noNodeToAudit(): never {
  throw new Error('no node to audit');
}

/**
 * What `gatehouse doctor` reports: the status of each check, the check as printed, and the whole
 * report. Every part of the doctor speaks these types; they depend on nothing.
 */

/**
 * `pass`: meets the checklist. `warn`: worth fixing, not a failure. `fail`: fix before storing
 * health data. `needs-rights`: not audited, because the audit user may not run the command.
 */
export type DoctorStatus = 'pass' | 'warn' | 'fail' | 'needs-rights';

/** One item of the checklist. */
export interface DoctorCheck {
  /** Stable identifier, e.g. `maxmemory-policy`. */
  readonly id: string;
  readonly title: string;
  readonly status: DoctorStatus;
  /** What was found; never contains a password. */
  readonly reason: string;
  /** What to do about it, for anything but `pass`. */
  readonly fix?: string;
}

export interface DoctorReport {
  /** What was audited: `host:port` (seed nodes for Cluster, Sentinels for Sentinel); never a password. */
  readonly target: string;
  readonly checks: readonly DoctorCheck[];
  /** Counts by status; `skipped` counts `needs-rights` checks. */
  readonly summary: {
    readonly pass: number;
    readonly warn: number;
    readonly fail: number;
    readonly skipped: number;
  };
}

/** The result of a check before it is named. */
export interface Outcome {
  readonly status: DoctorStatus;
  readonly reason: string;
  readonly fix?: string;
}
